"""Log entries, leaves and client accounts: round trips and strict decoding."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.encoding import b64url_encode, canonical_json
from secmark.errors import EncodingError
from secmark.serving.entry import (
    MAX_ENTRY_SIZE,
    MAX_INPUT_SIZE,
    Leaf,
    LogEntry,
    client_account,
    leaf_of,
    parse_leaf,
)
from tests.serving.conftest import POLICY_ID, make_entry


def test_client_account_is_the_specified_digest() -> None:
    expected = hashlib.sha256(b"secmark-v1 client" + POLICY_ID + "kéy".encode()).hexdigest()
    assert client_account(POLICY_ID, "kéy") == expected
    assert client_account(POLICY_ID, "a") != client_account(bytes(32), "a")
    with pytest.raises(EncodingError):
        client_account(POLICY_ID[:31], "a")
    with pytest.raises(EncodingError):
        client_account(POLICY_ID, "\ud800")  # a lone surrogate has no UTF-8


@given(
    data=st.binary(max_size=200),
    model=st.integers(0, 2**53 - 1),
    served=st.integers(0, 2**53 - 1),
    marked=st.booleans(),
    seconds=st.integers(0, 2**32),
)
@settings(max_examples=60, deadline=None)
def test_entry_round_trip(data: bytes, model: int, served: int, marked: bool, seconds: int) -> None:
    entry = LogEntry(
        policy_id=POLICY_ID,
        client=client_account(POLICY_ID, "k"),
        time=datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds),
        input=data,
        model_answer=model,
        served_answer=served,
        marked=marked,
        proof=bytes(range(80)),
    )
    encoded = entry.to_bytes()
    assert LogEntry.from_bytes(encoded) == entry
    assert entry.digest == hashlib.sha256(encoded).hexdigest()
    assert entry.input_digest == hashlib.sha256(data).hexdigest()
    leaf = parse_leaf(leaf_of(entry))
    assert leaf == Leaf(entry.client, entry.digest, marked)
    assert leaf.to_bytes() == leaf_of(entry)


def test_entry_fields_are_as_specified() -> None:
    entry = make_entry("alice", 3, marked=True)
    fields = json.loads(entry.to_bytes())
    assert fields == {
        "client": client_account(POLICY_ID, "alice"),
        "input": b64url_encode(b"input 3"),
        "input_digest": hashlib.sha256(b"input 3").hexdigest(),
        "marked": True,
        "model_answer": 3,
        "policy_id": POLICY_ID.hex(),
        "proof": b64url_encode(entry.proof),
        "served_answer": 4,
        "time": "2026-03-01T12:00:00Z",
    }
    assert json.loads(leaf_of(entry)) == {
        "client": entry.client,
        "entry": entry.digest,
        "marked": True,
    }


def test_time_is_kept_in_utc_whole_seconds() -> None:
    moment = datetime(2026, 3, 1, 13, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=1)))
    entry = LogEntry(**{**_kwargs(), "time": moment})
    assert entry.time == datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert LogEntry.from_bytes(entry.to_bytes()) == entry


def _kwargs() -> dict[str, Any]:
    entry = make_entry()
    return {name: getattr(entry, name) for name in entry.__dataclass_fields__}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("policy_id", b"short"),
        ("client", "A" * 64),
        ("client", "ab"),
        ("time", datetime(2026, 1, 1)),  # naive
        ("input", bytes(MAX_INPUT_SIZE + 1)),
        ("model_answer", -1),
        ("model_answer", True),
        ("served_answer", 2**53),
        ("served_answer", 1.0),
        ("marked", 1),
        ("proof", bytes(79)),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 16 else type(v).__name__,
)
def test_invalid_entries_cannot_be_built(name: str, value: object) -> None:
    with pytest.raises(EncodingError):
        LogEntry(**{**_kwargs(), name: value})


def _with(change: dict[str, Any], drop: str | None = None) -> bytes:
    fields = {**json.loads(make_entry(marked=True).to_bytes()), **change}
    if drop:
        del fields[drop]
    return canonical_json(fields)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_with({"marked": 1}), id="marked-as-int"),
        pytest.param(_with({"marked": "true"}), id="marked-as-string"),
        pytest.param(_with({"model_answer": True}), id="answer-as-bool"),
        pytest.param(_with({"served_answer": 1.5}), id="answer-as-float"),
        pytest.param(_with({"served_answer": -1}), id="negative-answer"),
        pytest.param(_with({"model_answer": "3"}), id="answer-as-string"),
        pytest.param(_with({"extra": 1}), id="extra-field"),
        pytest.param(_with({}, drop="proof"), id="missing-field"),
        pytest.param(_with({"input_digest": "00" * 32}), id="wrong-input-digest"),
        pytest.param(_with({"input_digest": "AB" * 32}), id="upper-case-digest"),
        pytest.param(_with({"policy_id": "00" * 31}), id="short-policy"),
        pytest.param(_with({"client": "00" * 31}), id="short-client"),
        pytest.param(_with({"time": "2026-03-01T12:00:00+00:00"}), id="time-spelling"),
        pytest.param(_with({"proof": b64url_encode(bytes(81))}), id="long-proof"),
        pytest.param(_with({"input": "aW5wdXQgMw=="}), id="padded-base64"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b"{", id="not-json"),
        pytest.param(make_entry().to_bytes() + b" ", id="trailing-space"),
        pytest.param(
            json.dumps(json.loads(make_entry().to_bytes()), indent=1).encode(),
            id="not-canonical",
        ),
    ],
)
def test_strict_entry_decoding(data: bytes) -> None:
    with pytest.raises(EncodingError):
        LogEntry.from_bytes(data)


def test_oversized_entry_is_refused_before_parsing() -> None:
    with pytest.raises(EncodingError, match="at most|bytes"):
        LogEntry.from_bytes(b" " * (MAX_ENTRY_SIZE + 1))


def test_largest_input_round_trips() -> None:
    entry = make_entry(input_bytes=bytes(MAX_INPUT_SIZE))
    assert len(entry.to_bytes()) <= MAX_ENTRY_SIZE
    assert LogEntry.from_bytes(entry.to_bytes()).input_digest == entry.input_digest


@pytest.mark.parametrize(
    "data",
    [
        canonical_json({"client": "00" * 32, "entry": "11" * 32, "marked": 1}),
        canonical_json({"client": "00" * 32, "entry": "11" * 32}),
        canonical_json({"client": "00" * 32, "entry": "11" * 32, "marked": True, "x": 0}),
        canonical_json({"client": "0" * 63, "entry": "11" * 32, "marked": True}),
        canonical_json({"client": "00" * 32, "entry": "1G" * 32, "marked": False}),
        canonical_json(["00" * 32, "11" * 32, True]),
        b'{"marked":true,"client":"' + b"00" * 32 + b'","entry":"' + b"11" * 32 + b'"}',
        b" " * 300,
    ],
)
def test_strict_leaf_decoding(data: bytes) -> None:
    with pytest.raises(EncodingError):
        parse_leaf(data)
