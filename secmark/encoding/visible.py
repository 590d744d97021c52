"""Text as a reader sees it: characters that would not show as themselves escaped."""

from __future__ import annotations

import re

__all__ = ["visible"]

# C0 and C1 controls, DEL, the line and paragraph separators, the
# bidirectional overrides and isolates, zero-width and other format
# characters, and lone surrogates: nothing a terminal or a page shows as itself.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character a reader would not see as itself (a
    control such as ``\\x1b``, a bidirectional override such as ``\\u202e``,
    a zero-width character) written as an escape; other text unchanged. A
    document's free text printed through it cannot reorder, hide or restyle
    what is shown around it."""
    return _UNSAFE.sub(_escape, text)
