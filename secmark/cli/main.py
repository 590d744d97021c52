"""Entry point of the ``secmark`` command.

Each sub-command module exposes ``register(subparsers)``, which adds its
parsers and sets ``handler`` to a function taking the parsed arguments and
returning the exit status. Errors the library raises on purpose are printed
as one line and exit with the code of their class; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from secmark import __version__
from secmark.cli import (
    arbiter,
    commit,
    demo,
    derive,
    dispute,
    embedding,
    evaluate,
    keys,
    plan,
    timestamping,
    tsa,
)
from secmark.cli.output import printable
from secmark.errors import SecmarkError

_COMMAND_MODULES = (
    demo,
    keys,
    commit,
    timestamping,
    tsa,
    derive,
    embedding,
    evaluate,
    plan,
    dispute,
    arbiter,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secmark",
        description="Forgery-resistant ownership proofs for machine-learning models.",
    )
    parser.add_argument("--version", action="version", version=f"secmark {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except SecmarkError as error:
        print(f"secmark: error: {printable(str(error))}", file=sys.stderr)
        if getattr(args, "json", False):
            # A script reading --json output learns of the failure there too.
            failure = {"error": type(error).__name__, "exit_code": error.exit_code}
            json.dump({**failure, "message": str(error)}, sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        return error.exit_code
    except KeyboardInterrupt:
        print("secmark: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
