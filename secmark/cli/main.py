"""Entry point of the ``secmark`` command.

Each sub-command module exposes ``register(subparsers)``, which adds its
parsers and sets ``handler`` to a function taking the parsed arguments and
returning the exit status. Errors the library raises on purpose are printed
as one line and exit with the code of their class. Anything else is a bug:
it is reported in one line too, with exit status 70, and ``--verbose`` adds
its traceback. A reader that closes the output early (``secmark ... | head``)
ends the command quietly with status 141, as a shell reports a process
stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence

from secmark import __version__
from secmark.cli import (
    arbiter,
    attest,
    commit,
    demo,
    derive,
    dispute,
    embedding,
    evaluate,
    extraction,
    gateway,
    keys,
    lm,
    plan,
    platform,
    querylog,
    remote,
    report,
    scan,
    serve,
    serving,
    timestamping,
    tsa,
)
from secmark.cli.output import Output, Verbosity, add_verbosity_options, printable
from secmark.cli.passphrase import PASSPHRASE_ENV
from secmark.cli.streams import check_streams
from secmark.errors import SecmarkError

_COMMAND_MODULES = (
    demo,
    keys,
    commit,
    timestamping,
    tsa,
    derive,
    embedding,
    lm,
    evaluate,
    plan,
    dispute,
    remote,
    attest,
    report,
    arbiter,
    serve,
    serving,
    gateway,
    querylog,
    extraction,
    platform,
    scan,
)


EXIT_INTERNAL_ERROR = 70
"""Status of a failure that is a bug in secmark (sysexits' EX_SOFTWARE)."""

EXIT_CLOSED_PIPE = 141
"""Status when the reader of the output went away (128 + SIGPIPE, as a shell
reports a process that SIGPIPE stopped)."""

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (
        PASSPHRASE_ENV,
        (
            "passphrase of an identity's key file, used when no --passphrase-file is given "
            "(else asked on the terminal)"
        ),
    ),
    (
        tsa.PASSPHRASE_ENV,
        (
            "passphrase of a timestamp authority's key (secmark tsa), kept apart from the "
            "identity keys' one"
        ),
    ),
    (
        "the variables you name",
        (
            "with --header-from-env NAME=VARIABLE, or in a suspect config's "
            "headers_from_env: the value of an HTTP header sent to the suspect, such as "
            "Authorization=SECMARK_SUSPECT_TOKEN holding 'Bearer ...' (credentials stay off "
            "the command line)"
        ),
    ),
    (
        "CUBLAS_WORKSPACE_CONFIG",
        (
            "must be :4096:8 or :16:8 before training on CUDA (embed, evaluate, demo): "
            "reproducible training refuses to start otherwise"
        ),
    ),
    (
        "PYTHONPATH",
        (
            "passed on to a model server that secmark starts, its entries made absolute "
            "(so that it reaches your own factory module)"
        ),
    ),
    (
        "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR",
        (
            "honoured when asking TSAs for timestamps (secmark timestamp --tsa); a suspect "
            "is always reached directly, without them"
        ),
    ),
)
"""Every environment variable the command line reads, for ``--help``.
Passphrases are never read from the command line itself, where other users
of the machine could see them."""


def _epilog() -> str:
    lines = ["environment variables:"]
    for name, text in ENVIRONMENT:
        lines.append(f"  {name}")
        lines.extend(textwrap.wrap(text, 80, initial_indent=" " * 6, subsequent_indent=" " * 6))
    lines += [
        "",
        "standard streams:",
        "  Where a command's help says so, '-' reads a document from standard input or",
        "  writes it to standard output (the summary then goes to standard error). One",
        "  argument at most may read standard input, and one write standard output; a",
        "  file called '-' is ./- . Key and passphrase files never come from a pipe.",
        "",
        "exit status:",
        "  0 success; 1 error; 2 wrong usage; 3-9 a refused input, by kind (3 malformed,",
        "  4 signature, 5 proof, 6 key, 7 timestamp, 8 protocol, 9 suspect); commands may",
        "  document others (see verify-bundle --help); 70 a bug in secmark (--verbose",
        f"  shows where); 130 interrupted; {EXIT_CLOSED_PIPE} the reader of the output closed it.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secmark",
        description="Forgery-resistant ownership proofs for machine-learning models.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"secmark {__version__}")
    # Global options come before the command (secmark --quiet check ...): a
    # command's own options, such as the --quiet of its progress bar, stay its own.
    add_verbosity_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def _report(error: SecmarkError, args: argparse.Namespace) -> int:
    output = Output.from_args(args)
    print(f"secmark: error: {printable(str(error))}", file=sys.stderr)
    if output.verbosity >= Verbosity.VERBOSE:
        print(f"secmark: ({type(error).__name__}, exit status {error.exit_code})", file=sys.stderr)
    if getattr(args, "json", False):
        # A script reading --json output learns of the failure there too.
        failure = {"error": type(error).__name__, "exit_code": error.exit_code}
        json.dump({**failure, "message": str(error)}, output.summary, indent=2, sort_keys=True)
        output.summary.write("\n")
    return error.exit_code


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_streams(args)
        status: int = args.handler(args)
    except SecmarkError as error:
        return _report(error, args)
    except KeyboardInterrupt:
        print("secmark: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as error:  # noqa: BLE001 - a bug is reported in one line, not a traceback
        print(
            f"secmark: internal error: {type(error).__name__}: {printable(str(error))}",
            file=sys.stderr,
        )
        if Output.from_args(args).verbosity >= Verbosity.VERBOSE:
            traceback.print_exc(file=sys.stderr)
        else:
            print(
                "secmark: this is a bug in secmark; run again with --verbose (before the "
                "command) to see where it happened, and report it",
                file=sys.stderr,
            )
        return EXIT_INTERNAL_ERROR
    return status


def _discard_output() -> None:
    """Point standard output and error at /dev/null, so that nothing more is
    written to a closed pipe, not even by the interpreter's flush at exit
    (the way the Python documentation's note on SIGPIPE recommends)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(devnull, stream.fileno())
            except (AttributeError, OSError, ValueError):
                pass  # not backed by a descriptor: nothing reaches the pipe
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's) and return the
    exit status. Never raises, except ``SystemExit`` for ``--help``,
    ``--version`` and wrong usage (status 0 or 2)."""
    try:
        try:
            return _run(argv)
        finally:
            # A closed pipe is reported here, while it can still be handled,
            # rather than by the interpreter's flush at exit.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_output()
        return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
