"""How every command prints: readable lines by default, one JSON object with ``--json``.

Readable lines hold text from documents that strangers wrote (an identity's
name, a verdict's reason, a model label): every control character in them
is shown escaped (:func:`printable`), so a document cannot move the cursor,
recolour or rewrite a line, nor start a line that looks like the command's
own (``key id: <the victim's>``). JSON output is escaped by the encoder.

How much is printed, and where, follows from the parsed arguments alone
(:class:`Output`), never from state kept between calls: the global
``--quiet`` and ``--verbose`` (given before the command), a command's own
``--quiet`` (progress bars only), and whether a document is being written to
standard output (``--out -``), in which case the summary goes to standard
error so that standard output holds the document's bytes and nothing else.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from secmark.cli.streams import stdout_carries_document
from secmark.encoding.visible import visible

__all__ = [
    "VERBOSITY",
    "Output",
    "Verbosity",
    "add_json_flag",
    "add_verbosity_options",
    "emit",
    "printable",
    "show_progress",
]

VERBOSITY: Final = "verbosity"
"""Key of the parsed arguments holding the global :class:`Verbosity`."""


class Verbosity(enum.IntEnum):
    """How much a command prints besides what it was asked for."""

    QUIET = -1
    """Errors only (on standard error): no summary lines, no progress bars.
    ``--json`` output and documents written to ``-`` are still written."""
    NORMAL = 0
    VERBOSE = 1
    """Also each command's detail lines, and on an error its class and exit
    status (and, for a failure that is a bug in secmark, the traceback)."""


def printable(text: str) -> str:
    """``text`` with every character a terminal would not show as itself
    written as an escape (``\\x1b``, ``\\u202e``; :func:`~secmark.encoding.visible.visible`)."""
    return visible(text)


@dataclass(frozen=True)
class Output:
    """Where and how much a command prints, as its parsed arguments say.

    Build it with :meth:`from_args` where it is needed; it holds no stream,
    so the streams in use at that moment are the ones written to.
    """

    verbosity: Verbosity = Verbosity.NORMAL
    summary_to_stderr: bool = False
    """A document is written to standard output, so the summary is not."""
    progress: bool = True
    """Progress bars may be shown (on standard error, and only on a terminal)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Output:
        """The output the parsed arguments ask for. Arguments parsed without
        the global options (a command's parser used on its own) give the
        defaults: normal verbosity."""
        verbosity = Verbosity(getattr(args, VERBOSITY, Verbosity.NORMAL))
        # A command's own --quiet silences only its progress bars; the global
        # --quiet silences them too, so it is the default of every command's.
        own_quiet = bool(getattr(args, "quiet", False))
        return cls(
            verbosity=verbosity,
            summary_to_stderr=stdout_carries_document(args),
            progress=verbosity > Verbosity.QUIET and not own_quiet,
        )

    @property
    def summary(self) -> TextIO:
        """The stream for the command's summary, readable or JSON."""
        return sys.stderr if self.summary_to_stderr else sys.stdout


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """The global ``-q/--quiet`` and ``-v/--verbose``, stored as one
    :class:`Verbosity` under :data:`VERBOSITY`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest=VERBOSITY,
        action="store_const",
        const=Verbosity.QUIET,
        default=Verbosity.NORMAL,
        help="print only errors: no summary, no progress bars (--json output and documents "
        "written to '-' are still written; the exit status tells the outcome)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest=VERBOSITY,
        action="store_const",
        const=Verbosity.VERBOSE,
        help="on an error, also print its kind and exit status (for a bug in secmark: the "
        "traceback); commands that have more detail print it",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command may show progress bars: neither the global
    ``--quiet`` nor the command's own ``--quiet`` was given."""
    return Output.from_args(args).progress


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of readable text"
    )


def emit(
    args: argparse.Namespace,
    lines: Sequence[str],
    data: dict[str, Any],
    *,
    details: Sequence[str] = (),
) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``lines`` (and
    ``details`` with ``--verbose``; nothing with ``--quiet``), each with its
    control characters escaped (:func:`printable`).

    Both go to standard output, or to standard error when a document is
    written to standard output (:class:`Output`).
    """
    output = Output.from_args(args)
    stream = output.summary
    if getattr(args, "json", False):
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.write("\n")
    elif output.verbosity > Verbosity.QUIET:
        shown = [*lines, *details] if output.verbosity >= Verbosity.VERBOSE else lines
        for line in shown:
            print(printable(line), file=stream)
