"""The commitment document: parameters, validation, signature, id."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from secmark.crypto import IdentityKeys
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, SecmarkError, SignatureError
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.commitment import create_commitment, open_commitment
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily, TokensFamily
from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
from tests.conftest import flip_byte

NOISE = NoiseFamily((3, 8, 8), "uint8", 0, 255)
ROOT = "ab" * 32


def make(keys: IdentityKeys, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "family": NOISE,
        "labels": ClassLabels(10),
        "size": 256,
        "model_label": "digits cnn v1",
        "nonce": bytes(32),
        "created": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    arguments.update(overrides)
    return create_commitment(keys, **arguments).to_json()


@pytest.mark.parametrize(
    ("family", "labels", "pool_root"),
    [
        (NOISE, ClassLabels(10), None),
        (NoiseFamily((16,), "float32", -1.5, 2.0), RegressionLabels(0.0, 100.0, 0.5), None),
        (TokensFamily(32, 50000, (0, 1, 2)), TokenLabels(50000, 4), None),
        (PoolFamily(1000, (1, 8, 8), "float32"), ClassLabels(2), ROOT),
        (OverlayFamily(1000, (1, 8, 8), "float32", 6, 0.0, 1.0), ClassLabels(10), ROOT),
    ],
)
def test_round_trip_for_every_family(
    owner_keys: IdentityKeys, family: Any, labels: Any, pool_root: str | None
) -> None:
    data = make(owner_keys, family=family, labels=labels, pool_root=pool_root)
    opened = open_commitment(data, owner_key_id=owner_keys.key_id)
    assert opened.document.family == family
    assert opened.document.labels == labels
    assert opened.document.pool_root == pool_root
    assert opened.digest == hashlib.sha256(Envelope.from_json(data).payload).hexdigest()


def test_id_changes_with_the_nonce(owner_keys: IdentityKeys) -> None:
    first = open_commitment(make(owner_keys)).digest
    assert open_commitment(make(owner_keys, nonce=b"\x01" * 32)).digest != first
    assert open_commitment(make(owner_keys)).digest == first


def test_fresh_commitments_get_fresh_nonces(owner_keys: IdentityKeys) -> None:
    common = {"family": NOISE, "labels": ClassLabels(10), "size": 8, "model_label": "m"}
    first = create_commitment(owner_keys, **common).document.nonce
    assert create_commitment(owner_keys, **common).document.nonce != first


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: ClassLabels(1), "num_classes"),
        (lambda: RegressionLabels(1.0, 1.0, 0.1), "lo < hi"),
        (lambda: RegressionLabels(0.0, 1.0, 0.5), "tolerance"),
        (lambda: RegressionLabels(0.0, float("inf"), 0.1), "finite"),
        (lambda: NoiseFamily((3, 0, 8), "uint8", 0, 255), "dimensions"),
        (lambda: NoiseFamily((3, 8, 8), "uint8", 10, 5), "uint8 range"),
        (lambda: NoiseFamily((3, 8, 8), "uint8", 0, 256), "uint8 range"),
        (lambda: NoiseFamily((3, 8, 8), "float32", 1.0, 1.0), "float32 range"),
        (lambda: NoiseFamily((3, 8, 8), "int16", 0, 1), "dtype"),
        (lambda: NoiseFamily((1 << 13, 1 << 12), "uint8", 0, 255), "elements"),
        (lambda: TokensFamily(8, 3, (0, 1)), "two token ids"),
        (lambda: TokensFamily(8, 100, (5, 2)), "sorted"),
        (lambda: TokensFamily(8, 100, (100,)), r"\[0, vocab_size\)"),
        (lambda: OverlayFamily(10, (2, 2), "uint8", 5, 0, 255), "pixels"),
        (lambda: PoolFamily(0, (2, 2), "uint8"), "pool_size"),
    ],
)
def test_inconsistent_parameters_are_refused(build: Any, reason: str) -> None:
    with pytest.raises(EncodingError, match=reason):
        build()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"size": 0}, "set size N"),
        ({"size": (1 << 24) + 1}, "set size N"),
        ({"family": PoolFamily(10, (2, 2), "uint8")}, "Merkle root"),
        ({"pool_root": ROOT}, "no pool"),
        ({"nonce": bytes(31)}, "nonce"),
        ({"model_label": "x" * 1025}, "model label"),
    ],
)
def test_inconsistent_commitments_are_refused(
    owner_keys: IdentityKeys, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(EncodingError, match=reason):
        make(owner_keys, **overrides)


def _resign(keys: IdentityKeys, data: bytes, change: Any) -> bytes:
    payload = json.loads(Envelope.from_json(data).payload)
    change(payload)
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), keys).to_json()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p["family"].update(name="adversarial"), "unknown trigger family"),
        (lambda p: p["labels"].update(kind="free"), "unknown label space"),
        (lambda p: p["labels"].update(num_classes=1), "num_classes"),
        (lambda p: p.update(size=0), "'size'"),
        (lambda p: p.update(suite="secmark-v0"), "unsupported suite"),
        (lambda p: p["family"].update(extra=1), "unexpected fields"),
        (lambda p: p.update(pool_root="AB" * 32), "hex"),
    ],
)
def test_decoding_refuses_what_creation_refuses(
    owner_keys: IdentityKeys, change: Any, reason: str
) -> None:
    data = _resign(owner_keys, make(owner_keys), change)
    with pytest.raises(EncodingError, match=reason):
        open_commitment(data)


def test_owner_substitution_is_refused(owner_keys: IdentityKeys, other_keys: IdentityKeys) -> None:
    # A thief re-signs the owner's commitment with his own key: the owner
    # field still names the owner, so the signature no longer matches.
    payload = Envelope.from_json(make(owner_keys)).payload
    stolen = Envelope.sign(PAYLOAD_TYPE, payload, other_keys).to_json()
    with pytest.raises(SignatureError):
        open_commitment(stolen)


def test_expected_owner_is_enforced(owner_keys: IdentityKeys, other_keys: IdentityKeys) -> None:
    with pytest.raises(SignatureError, match="belongs to"):
        open_commitment(make(owner_keys), owner_key_id=other_keys.key_id)


def test_every_byte_of_a_commitment_matters(owner_keys: IdentityKeys) -> None:
    data = make(owner_keys)
    for position in range(0, len(data), 7):
        with pytest.raises(SecmarkError):
            open_commitment(flip_byte(data, position))
