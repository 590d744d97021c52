"""How every command prints: readable lines by default, one JSON object with ``--json``.

Readable lines hold text from documents that strangers wrote (an identity's
name, a verdict's reason, a model label): every control character in them
is shown escaped (:func:`printable`), so a document cannot move the cursor,
recolour or rewrite a line, nor start a line that looks like the command's
own (``key id: <the victim's>``). JSON output is escaped by the encoder.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

__all__ = ["add_json_flag", "emit", "printable"]

# C0 and C1 controls, DEL, the line and paragraph separators, the
# bidirectional overrides and isolates, zero-width and other format
# characters, and lone surrogates: nothing a terminal shows as itself.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal would not show as itself
    written as an escape (``\\x1b``, ``\\u202e``); other text unchanged."""
    return _UNSAFE.sub(_escape, text)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of readable text"
    )


def emit(args: argparse.Namespace, lines: list[str], data: dict[str, Any]) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``lines``, each
    with its control characters escaped (:func:`printable`)."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(printable(line))
