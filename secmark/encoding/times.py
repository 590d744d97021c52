"""Times in documents: RFC 3339 in UTC, whole seconds, with a ``Z``."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from secmark.errors import EncodingError

__all__ = ["format_time", "parse_time", "utc_now"]

_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def utc_now() -> datetime:
    """The current time in UTC, truncated to whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for a timezone-aware ``moment`` (fractions dropped).

    Raises:
        EncodingError: ``moment`` has no timezone.
    """
    if moment.tzinfo is None:
        raise EncodingError("times must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, what: str = "time") -> datetime:
    """Parse the one spelling :func:`format_time` produces.

    Raises:
        EncodingError: any other spelling, or an impossible date.
    """
    if not isinstance(text, str) or not _PATTERN.fullmatch(text):
        raise EncodingError(f"{what} must be an RFC 3339 UTC time like 2026-01-31T12:00:00Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise EncodingError(f"{what} {text!r} is not a valid date and time") from None
