"""Canonical JSON, strict base64 and times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secmark.encoding import (
    b64_decode,
    b64_encode,
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_time,
    parse_canonical_json,
    parse_time,
)
from secmark.errors import EncodingError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(min_value=-(2.0**52), max_value=2.0**52)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips(value: object) -> None:
    data = canonical_json(value)
    assert canonical_json(parse_canonical_json(data, max_size=1 << 20)) == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a":1,"a":1}', "duplicate"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":1.0}', "canonical"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":Infinity}', "Infinity"),
        (b'{"a":9007199254740993}', "outside canonical JSON"),
        (b'{"a":"\\u0041"}', "canonical"),
        (b"\xff", "UTF-8"),
        (b'{"a":', "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply|over the limit"),
    ],
)
def test_non_canonical_json_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(EncodingError, match=reason):
        parse_canonical_json(data, max_size=150000)


def test_size_limit() -> None:
    with pytest.raises(EncodingError, match="over the limit"):
        parse_canonical_json(b'"' + b"a" * 100 + b'"', max_size=50)


@given(st.binary(max_size=100))
def test_base64_round_trips(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data
    assert b64_decode(b64_encode(data)) == data


@pytest.mark.parametrize("text", ["AR", "AQ==", "A", "AQ=", "A+", "A/", "AQ\n", " AQ"])
def test_non_canonical_base64url_is_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        b64url_decode(text)


@pytest.mark.parametrize("text", ["AR==", "AQ", "AQ=", "A-==", "A_==", "AQ==\n"])
def test_non_canonical_base64_is_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        b64_decode(text)


def test_base64url_size_is_enforced() -> None:
    with pytest.raises(EncodingError, match="exactly 32 bytes"):
        b64url_decode(b64url_encode(bytes(31)), size=32)


def test_times_have_one_spelling() -> None:
    moment = datetime(2026, 3, 1, 12, 30, 5, 123, tzinfo=timezone(timedelta(hours=2)))
    text = format_time(moment)
    assert text == "2026-03-01T10:30:05Z"
    assert parse_time(text) == moment.replace(microsecond=0)
    for bad in ["2026-03-01T10:30:05+00:00", "2026-03-01 10:30:05Z", "2026-02-30T10:30:05Z"]:
        with pytest.raises(EncodingError):
            parse_time(bad)
    with pytest.raises(EncodingError, match="timezone"):
        format_time(datetime(2026, 1, 1))
