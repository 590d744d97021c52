"""Canonical JSON numbers: whatever the writer writes, the reader reads back.

RFC 8785 numbers are IEEE doubles written in their ECMAScript form, which
spells an integral double below 10^21 with digits only: 1e17 is written
``100000000000000000``. A reader that took every integer literal as an int
and refused those of 2^53 or more refused what the writer wrote, so a
suspect that answered 1e17 once made an upheld bundle unverifiable.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError

MAX = 1 << 20


def _round_trip(value: object) -> object:
    data = canonical_json(value)
    parsed = parse_canonical_json(data, max_size=MAX)
    assert canonical_json(parsed) == data
    return parsed


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_double_is_read_back_to_itself(value: float) -> None:
    parsed = _round_trip(value)
    assert parsed == value
    assert type(parsed) is (int if parsed == int(value) and abs(value) < 2**53 else float)


@given(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1))
def test_every_safe_integer_is_read_back_to_itself(value: int) -> None:
    parsed = _round_trip(value)
    assert parsed == value and type(parsed) is int


@given(st.integers(min_value=53, max_value=1023), st.integers(1, 2**52), st.booleans())
def test_large_integral_doubles_are_read_back(exponent: int, mantissa: int, negative: bool) -> None:
    value = math.ldexp(1 + mantissa / 2**52, exponent) * (-1 if negative else 1)
    parsed = _round_trip({"answer": [value]})
    assert parsed == {"answer": [value]}


@pytest.mark.parametrize(
    "value",
    [1e17, -1e17, 2.0**53, 2.0**60, 1e20, 123456789012345680000.0, 1e21, 1.7976931348623157e308],
)
def test_integral_doubles_the_writer_spells_as_integers(value: float) -> None:
    parsed = _round_trip({"answer": value})
    assert parsed == {"answer": value}
    assert type(parsed["answer"]) is float  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"9007199254740993", "not the canonical form"),  # 2^53 + 1: no double
        (b"123456789012345678901", "not the canonical form"),  # rounds to ...680000
        (b"100000000000000000000000", "more than 21 digits"),
        (b"1" + b"0" * 5000, "more than 21 digits"),  # int() itself refuses these
        (b"1000000000000000000000", "more than 21 digits"),  # 1e21 is written 1e+21
        (b"100000000000000000.0", "canonical form"),
        (b"1E17", "canonical form"),
        (b"1e17", "canonical form"),
        (b"-0", "canonical form"),
    ],
)
def test_other_spellings_of_large_numbers_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(EncodingError, match=reason):
        parse_canonical_json(data, max_size=10_000)


def test_integers_of_2_53_or_more_are_still_not_written() -> None:
    with pytest.raises(EncodingError):
        canonical_json(2**53)
    with pytest.raises(EncodingError):
        canonical_json(2**60)
