"""RFC 8785 (JCS) canonical JSON, and a parser that accepts nothing else.

Serialisation is delegated to the ``rfc8785`` package. Parsing uses the
standard library with hooks that refuse duplicate object keys and the
non-JSON constants NaN and Infinity, then re-serialises and compares: input
is accepted only if it is byte for byte the canonical form of what it
parses to. This also enforces JCS's integer range (|n| < 2^53).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from secmark.errors import EncodingError

__all__ = ["canonical_json", "parse_canonical_json"]


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises:
        EncodingError: ``value`` holds something JCS cannot represent
            (NaN, infinities, integers of magnitude 2^53 or more, non-string
            keys, objects other than dict, list, str, int, float, bool, None).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as error:
        raise EncodingError(f"value cannot be encoded as canonical JSON: {error}") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EncodingError(f"duplicate JSON object key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise EncodingError(f"{name} is not valid JSON")


def parse_canonical_json(data: bytes, *, max_size: int, what: str = "document") -> Any:
    """Parse ``data``, which must be canonical JSON of at most ``max_size`` bytes.

    Raises:
        EncodingError: oversized input, invalid UTF-8, invalid JSON, duplicate
            keys, or bytes that differ from the canonical encoding.
    """
    if not isinstance(data, bytes):
        raise EncodingError(f"{what} must be bytes")
    if len(data) > max_size:
        raise EncodingError(f"{what} is {len(data)} bytes, over the limit of {max_size}")
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except UnicodeDecodeError:
        raise EncodingError(f"{what} is not valid UTF-8") from None
    except RecursionError:
        raise EncodingError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise EncodingError(f"{what} is not valid JSON: {error.msg} at byte {error.pos}") from None
    try:
        canonical = canonical_json(value)
    except EncodingError as error:
        raise EncodingError(f"{what} holds a value outside canonical JSON: {error}") from None
    if canonical != data:
        raise EncodingError(f"{what} is not in RFC 8785 canonical form")
    return value
