"""``secmark arbiter serve`` as a process of its own, for the crash test:
the command :func:`secmark.cli.service.add_serve_command` adds, opening the
folder as ``secmark arbiter`` does (until the lead registers it there)."""

from __future__ import annotations

import argparse
import sys

from secmark.cli.arbiter import _open_arbiter
from secmark.cli.service import add_serve_command


def main() -> int:
    parser = argparse.ArgumentParser(prog="secmark arbiter")
    add_serve_command(parser.add_subparsers(required=True), _open_arbiter)
    args = parser.parse_args()
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
