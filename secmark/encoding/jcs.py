"""RFC 8785 (JCS) canonical JSON, and a parser that accepts nothing else.

Serialisation is delegated to the ``rfc8785`` package. Parsing uses the
standard library with hooks that refuse duplicate object keys and the
non-JSON constants NaN and Infinity, then re-serialises and compares: input
is accepted only if it is byte for byte the canonical form of what it
parses to.

JCS numbers are IEEE binary64 values. Python's ints below 2^53 in magnitude
are written as integers; a float is written in the ECMAScript form, which
spells an integral value below 10^21 with its digits and no exponent (1e17
as ``100000000000000000``). So the reader takes an integer literal of 2^53
or more as the float whose ECMAScript form it is, and refuses one that is no
float's form (``9007199254740993``): everything the writer writes is read
back to an equal value that re-encodes to the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from secmark.errors import EncodingError

__all__ = [
    "canonical_json",
    "parse_canonical_json",
    "reject_duplicate_keys",
    "reject_json_constant",
]


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


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` that refuses a repeated key
    (two readers may keep different copies of it).

    Raises:
        EncodingError: a key repeats (named, cut to 80 characters).
    """
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EncodingError(f"duplicate key {key[:80]!r} in a JSON object")
        result[key] = value
    return result


def reject_json_constant(name: str) -> Any:
    """``parse_constant`` for ``json.loads``: ``NaN`` and ``Infinity`` are not JSON.

    Raises:
        EncodingError: always.
    """
    raise EncodingError(f"{name} is not JSON")


# Integers the writer writes as such: |n| < 2^53 (RFC 8785 section 3.2.2.3).
_MAX_SAFE_INTEGER = (1 << 53) - 1
# The ECMAScript form of a binary64 value has no exponent below 10^21, so at
# most 21 digits; a longer integer literal is no number's canonical form (and
# int() refuses literals of over 4300 digits with a bare ValueError).
_MAX_INTEGER_DIGITS = 21


def _parse_integer(text: str) -> int | float:
    """An integer literal: an int below 2^53 in magnitude, else the float
    whose canonical (ECMAScript) form it is."""
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        shown = text if len(text) <= 32 else f"{text[:24]}... ({len(text)} characters)"
        raise EncodingError(
            f"the integer {shown} has more than {_MAX_INTEGER_DIGITS} digits: "
            "no canonical JSON number is written so"
        )
    value = int(text)
    if abs(value) <= _MAX_SAFE_INTEGER:
        return value
    nearest = float(value)
    if rfc8785.dumps(nearest) != text.encode("ascii"):
        raise EncodingError(
            f"the integer {text} is outside canonical JSON: it is 2^53 or more and not "
            "the canonical form of a binary64 number (JSON numbers are IEEE doubles)"
        )
    return nearest


class _CompareSink:
    """A write-only stream that compares what is written with ``expected``,
    so the canonical form is checked without being held in memory."""

    def __init__(self, expected: bytes) -> None:
        self._expected = memoryview(expected)
        self._position = 0
        self.equal = True

    def write(self, chunk: bytes) -> int:
        end = self._position + len(chunk)
        if self.equal and self._expected[self._position : end] != chunk:
            self.equal = False
        self._position = end
        return len(chunk)

    def complete(self) -> bool:
        return self.equal and self._position == len(self._expected)


def _is_canonical(value: Any, data: bytes) -> bool:
    """Whether ``data`` is exactly the canonical encoding of ``value``."""
    sink = _CompareSink(data)
    try:
        rfc8785.dump(value, sink)  # type: ignore[arg-type]
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as error:
        raise EncodingError(f"value cannot be encoded as canonical JSON: {error}") from None
    return sink.complete()


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
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=reject_duplicate_keys,
            parse_constant=reject_json_constant,
            parse_int=_parse_integer,
        )
    except UnicodeDecodeError:
        raise EncodingError(f"{what} is not valid UTF-8") from None
    except RecursionError:
        raise EncodingError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise EncodingError(f"{what} is not valid JSON: {error.msg} at byte {error.pos}") from None
    # Compared as it is written: a second copy of the document is never held.
    try:
        canonical = _is_canonical(value, data)
    except EncodingError as error:
        raise EncodingError(f"{what} holds a value outside canonical JSON: {error}") from None
    if not canonical:
        raise EncodingError(f"{what} is not in RFC 8785 canonical form")
    return value
