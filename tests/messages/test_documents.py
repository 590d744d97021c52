"""DSSE envelopes, typed documents and the identity document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError, SecmarkError, SignatureError
from secmark.messages import (
    PAYLOAD_TYPE,
    Envelope,
    Fields,
    Identity,
    create_identity,
    open_document,
    open_identity,
    pae,
    sign_document,
)
from tests.conftest import fixed_keys, flip_byte


@dataclass(frozen=True)
class Note:
    TYPE: ClassVar[str] = "secmark.test-note"
    VERSION: ClassVar[int] = 1

    text: str
    count: int

    def to_fields(self) -> dict[str, Any]:
        return {"count": self.count, "text": self.text}

    @classmethod
    def from_fields(cls, fields: Fields) -> Note:
        return cls(fields.text("text"), fields.integer("count", minimum=0, maximum=10))


def test_pae_matches_the_dsse_specification_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_document_round_trip(owner_keys: IdentityKeys) -> None:
    signed = sign_document(Note("hello", 3), owner_keys)
    opened = open_document(signed.to_json(), Note, owner_keys.public_keys)
    assert opened.document == Note("hello", 3)
    assert opened.digest == signed.digest
    assert opened.payload == b'{"count":3,"text":"hello","type":"secmark.test-note","version":1}'


def test_signature_by_another_key_is_refused(
    owner_keys: IdentityKeys, other_keys: IdentityKeys
) -> None:
    signed = sign_document(Note("hello", 3), other_keys)
    with pytest.raises(SignatureError, match="not signed by the expected key"):
        open_document(signed.to_json(), Note, owner_keys.public_keys)


def test_field_rules_are_enforced_after_the_signature(owner_keys: IdentityKeys) -> None:
    signed = sign_document(Note("hello", 11), owner_keys)
    with pytest.raises(EncodingError, match="'count' must be an integer in \\[0, 10\\]"):
        open_document(signed.to_json(), Note, owner_keys.public_keys)


def test_bool_is_not_an_integer(owner_keys: IdentityKeys) -> None:
    envelope = Envelope.sign(
        PAYLOAD_TYPE,
        b'{"count":true,"text":"x","type":"secmark.test-note","version":1}',
        owner_keys,
    )
    with pytest.raises(EncodingError, match="count"):
        open_document(envelope.to_json(), Note, owner_keys.public_keys)


def test_envelope_size_limit(owner_keys: IdentityKeys) -> None:
    signed = sign_document(Note("x" * 2000, 1), owner_keys)
    with pytest.raises(EncodingError, match="over the limit"):
        open_document(signed.to_json(), Note, owner_keys.public_keys, max_size=1000)


def test_too_many_signatures_are_refused(owner_keys: IdentityKeys) -> None:
    envelope = Envelope.sign(PAYLOAD_TYPE, b"{}", owner_keys)
    crowded = Envelope(envelope.payload_type, envelope.payload, envelope.signatures * 5)
    with pytest.raises(EncodingError, match="1 to 4 signatures"):
        Envelope.from_json(crowded.to_json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_to_an_envelope_is_rejected(position: int, mask: int) -> None:
    keys = fixed_keys("owner")
    data = sign_document(Note("hello", 3), keys).to_json()
    with pytest.raises(SecmarkError):
        open_document(flip_byte(data, position % len(data), mask), Note, keys.public_keys)


def test_identity_round_trip_and_self_signature(owner_keys: IdentityKeys) -> None:
    signed = create_identity(owner_keys, "Owner Ltd")
    opened = open_identity(signed.to_json())
    assert opened.document.key_id == owner_keys.key_id
    assert opened.document.name == "Owner Ltd"
    # The identity is an ordinary document, verifiable with the known keys too.
    assert open_document(signed.to_json(), Identity, owner_keys.public_keys).digest == signed.digest


def test_identity_substituted_keys_are_refused(
    owner_keys: IdentityKeys, other_keys: IdentityKeys
) -> None:
    # A document carrying the other identity's keys but signed by the owner.
    forged = Identity(
        "Owner Ltd", create_identity(owner_keys, "x").document.created, other_keys.public_keys
    )
    envelope = sign_document(forged, owner_keys).to_json()
    with pytest.raises(SignatureError):
        open_identity(envelope)


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_identity_name_bounds(owner_keys: IdentityKeys, name: str) -> None:
    with pytest.raises(EncodingError):
        create_identity(owner_keys, name)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_to_an_identity_is_rejected(position: int, mask: int) -> None:
    data = create_identity(fixed_keys("owner"), "Owner Ltd").to_json()
    with pytest.raises(SecmarkError):
        open_identity(flip_byte(data, position % len(data), mask))


def test_identity_with_an_empty_name_is_refused_on_reading(owner_keys: IdentityKeys) -> None:
    import json

    from secmark.encoding import canonical_json

    payload = json.loads(create_identity(owner_keys, "x").payload)
    payload["name"] = ""
    envelope = Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), owner_keys)
    with pytest.raises(EncodingError, match="must not be empty"):
        open_identity(envelope.to_json())
