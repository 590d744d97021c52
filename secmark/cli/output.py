"""How every command prints: readable lines by default, one JSON object with ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of readable text"
    )


def emit(args: argparse.Namespace, lines: list[str], data: dict[str, Any]) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``lines``."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)
