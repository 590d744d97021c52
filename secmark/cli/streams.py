"""``-`` for standard input and output where a command reads or writes a document.

A command declares each argument that may be ``-`` with :func:`add_input` or
:func:`add_output`; everywhere else ``-`` is an ordinary file name. The
declaration is recorded in the parser's defaults, so the parsed arguments say
which of them are streams, and :func:`check_streams` refuses, before any work
is done, a command line that names standard input twice (the second reader
would get nothing) or standard output twice (two documents would run into
each other). One input and one output may both be ``-``: the command is then
a filter (``... | secmark timestamp - --import TOKEN --out - | ...``).

Reads from standard input have the same bounds as reads of a file, and stop
one byte past the bound rather than reading an endless stream. Standard input
is never read when it is a terminal: a document is not typed by hand, and a
prompt for a key's passphrase needs the terminal. Key files and passphrase
files are never read from standard input.

A document written to standard output is written whole, after every check,
in one piece; the command's readable summary then goes to standard error
(:class:`secmark.cli.output.Output`), so the document on standard output is
exactly the bytes a file would hold.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from secmark.errors import EncodingError, SecmarkError
from secmark.files import MAX_READ_SIZE, PUBLIC_FILE_MODE, read_regular_file, write_atomic

__all__ = [
    "INPUTS",
    "OUTPUTS",
    "STDIO",
    "UsageError",
    "add_input",
    "add_output",
    "check_streams",
    "describe",
    "is_stdio",
    "read_file",
    "read_input",
    "stdout_carries_document",
    "write_new",
    "write_output",
]

STDIO: Final = "-"
"""The argument that names standard input (where a document is read) or
standard output (where one is written). A file called ``-`` is ``./-``."""

INPUTS: Final = "_stdin_arguments"
OUTPUTS: Final = "_stdout_arguments"
"""Keys of the parsed arguments that list the destinations declared with
:func:`add_input` and :func:`add_output`."""

# Reading in pieces lets a stream over the bound be refused after
# bound + 1 bytes, without first asking for one read of the whole bound.
_CHUNK: Final = 1 << 20


class UsageError(SecmarkError, ValueError):
    """A command line whose arguments cannot all be honoured together, such as
    standard input named twice. Exit status 2, as for any misused option."""

    exit_code = 2


def _document_path(text: str) -> Path:
    """``text`` as a path, keeping ``-`` distinct from a file called ``./-``
    (which :class:`~pathlib.Path` would shorten to ``-``)."""
    if text != STDIO and Path(text) == Path(STDIO):
        return Path(os.path.abspath(text))
    return Path(text)


def _declare(
    container: argparse._ActionsContainer,
    key: str,
    flags: tuple[str, ...],
    stream: str,
    kwargs: dict[str, Any],
) -> argparse.Action:
    help_text = kwargs.pop("help", None)
    suffix = f"'-' for {stream}"
    kwargs["help"] = f"{help_text} ({suffix})" if help_text else suffix
    action = container.add_argument(*flags, type=_document_path, **kwargs)
    name = action.option_strings[-1] if action.option_strings else action.dest.upper()
    # Argument groups share their parser's defaults, so this lands on the
    # (sub)parser and from there in the parsed arguments.
    declared = tuple(container.get_default(key) or ())
    container.set_defaults(**{key: (*declared, (action.dest, name))})
    return action


def add_input(container: argparse._ActionsContainer, *flags: str, **kwargs: Any) -> argparse.Action:
    """``container.add_argument(*flags, **kwargs)`` for a document to read,
    which may be ``-`` for standard input. The value is a :class:`Path`
    (``Path("-")`` for standard input); read it with :func:`read_input`."""
    return _declare(container, INPUTS, flags, "standard input", kwargs)


def add_output(
    container: argparse._ActionsContainer, *flags: str, **kwargs: Any
) -> argparse.Action:
    """``container.add_argument(*flags, **kwargs)`` for a document to write,
    which may be ``-`` for standard output. Write it with :func:`write_output`."""
    return _declare(container, OUTPUTS, flags, "standard output", kwargs)


def is_stdio(path: object) -> bool:
    """Whether ``path`` (a parsed argument: a path, a string or None) is the
    ``-`` that names standard input or output."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path) == STDIO


def describe(path: str | os.PathLike[str], *, output: bool = False) -> str:
    """``path`` for a message: the file name, or "standard input"/"standard output"."""
    if is_stdio(path):
        return "standard output" if output else "standard input"
    return os.fspath(path)


def _values(args: argparse.Namespace, key: str) -> Iterable[tuple[str, object]]:
    """(argument name, value) of each declared argument, once per value of a
    repeatable one."""
    for dest, name in getattr(args, key, ()):
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            yield name, item


def check_streams(args: argparse.Namespace) -> None:
    """Refuse parsed arguments that name standard input, or standard output,
    more than once.

    Raises:
        UsageError: the message names the arguments that are ``-``.
    """
    for key, stream in ((INPUTS, "standard input"), (OUTPUTS, "standard output")):
        named = [dest for dest, value in _values(args, key) if is_stdio(value)]
        if len(named) > 1:
            raise UsageError(
                f"only one argument can be '-' ({stream}), but {' and '.join(named)} are; "
                "give the others as files"
            )


def stdout_carries_document(args: argparse.Namespace) -> bool:
    """Whether one of the parsed arguments writes a document to standard output."""
    return any(is_stdio(value) for _, value in _values(args, OUTPUTS))


def _read_stdin(max_size: int, what: str) -> bytes:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError(f"cannot read the {what} from standard input: it is closed")
    if stream.isatty():
        raise UsageError(
            f"the {what} is to come from standard input ('-'), which is a terminal; "
            f"pipe the {what} in, or give its file name"
        )
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        info = None  # not backed by a descriptor (an embedding program's stream)
    if info is not None and stat.S_ISREG(info.st_mode):
        # A redirected file: its size is known before anything is read.
        try:
            remaining = info.st_size - os.lseek(stream.fileno(), 0, os.SEEK_CUR)
        except OSError:
            remaining = 0
        if remaining > max_size:
            raise EncodingError(
                f"the {what} on standard input is {remaining} bytes, over the limit of {max_size}"
            )
    chunks = []
    total = 0
    try:
        while True:
            chunk = stream.read1(min(_CHUNK, max_size + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_size:
                raise EncodingError(
                    f"the {what} on standard input is over the limit of {max_size} bytes"
                )
    except OSError as error:
        reason = error.strerror or str(error)
        raise SecmarkError(f"cannot read the {what} from standard input: {reason}") from None
    return b"".join(chunks)


def read_input(
    path: str | os.PathLike[str], *, max_size: int = MAX_READ_SIZE, what: str = "document"
) -> bytes:
    """The bytes of the document ``path``: standard input for ``-``, else the
    regular file (:func:`secmark.files.read_regular_file`), at most ``max_size``.

    Call it only for arguments declared with :func:`add_input`; anywhere
    else ``-`` is a file name.

    Raises:
        UsageError: ``-`` while standard input is a terminal or closed.
        EncodingError: more than ``max_size`` bytes (standard input is read
            no further than one byte past the bound).
        SecmarkError: as :func:`~secmark.files.read_regular_file`, or a
            read error.
    """
    if is_stdio(path):
        return _read_stdin(max_size, what)
    return read_regular_file(path, max_size=max_size, what=what)


def write_output(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = PUBLIC_FILE_MODE,
    overwrite: bool = False,
) -> None:
    """Write the document ``data`` to standard output for ``-``, else to the
    file ``path`` (:func:`secmark.files.write_atomic` with ``mode``, refusing
    an existing file unless ``overwrite``).

    On standard output the bytes are written as they are, in one piece,
    after whatever text was printed before them. Call it only for
    arguments declared with :func:`add_output`.

    Raises:
        SecmarkError: as :func:`~secmark.files.write_atomic`.
        BrokenPipeError: standard output was closed by its reader (the
            command line's entry point turns it into a quiet exit).
    """
    if not is_stdio(path):
        write_atomic(path, data, mode=mode, overwrite=overwrite)
        return
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:
        raise SecmarkError("cannot write to standard output: it is not a byte stream")
    binary.write(data)
    binary.flush()


def read_file(path: Path) -> bytes:
    """The bytes of a document the user named (a regular file, refused
    before reading when it is a FIFO, a device or over 1 GiB)."""
    return read_regular_file(path)


def write_new(path: Path, data: bytes) -> None:
    """Write a new public document to ``path``, or to standard output for ``-``."""
    if not is_stdio(path) and path.exists():
        raise SecmarkError(f"{path} already exists; choose another path")
    write_output(path, data)
