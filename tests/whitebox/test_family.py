"""The weights family: what a commitment may fix, and how its rows are derived."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.crypto import IdentityKeys
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, KeyMaterialError, ProofError
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.commitment import create_commitment, open_commitment
from secmark.messages.families import MAX_TRIGGER_ELEMENTS, WeightsFamily
from secmark.messages.labels import ClassLabels, RegressionLabels
from secmark.triggers import derive_trigger, generate_decoys, iter_triggers, verify_trigger
from secmark.triggers.generate import rademacher_row
from secmark.triggers.sampling import KeyStream, stream_keys
from tests.conftest import VECTORS
from tests.test_schemas import validator
from tests.test_vectors import check_weights_derivation
from tests.whitebox.conftest import FAMILY, commit


def test_the_weights_vector_reproduces() -> None:
    check_weights_derivation(
        json.loads((VECTORS / "triggers" / "weights.json").read_text(encoding="utf-8"))
    )


def test_projected_size_follows_the_reduction() -> None:
    assert FAMILY.projected_size == 512
    assert WeightsFamily("features.2.weight", (32, 16, 3, 3)).projected_size == 16 * 3 * 3
    assert WeightsFamily("classifier.1.weight", (64, 512), "flatten").projected_size == 64 * 512
    assert WeightsFamily("classifier.1.bias", (64,), "flatten").projected_size == 64


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("", (64, 512)), "parameter name"),
        (("x" * 513, (64, 512)), "parameter name"),
        (("bad\nname", (64, 512)), "parameter name"),
        (("w", ()), "dimensions"),
        (("w", (64, 0)), "dimensions"),
        (("w", (2,) * 9), "dimensions"),
        (("w", (1 << 21, 1 << 20)), "more than"),
        (("w", (64, 512), "mean-in"), "reduction"),
        (("w", (64, 512), "mean-out", "gaussian"), "projection"),
        (("w", (64,), "mean-out"), "2 or more dimensions"),
        (("w", (64, 1), "mean-out"), "projected size"),
        (("w", (2, MAX_TRIGGER_ELEMENTS + 1), "mean-out"), "projected size"),
    ],
)
def test_inconsistent_families_are_refused(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        WeightsFamily(*arguments)


@pytest.mark.parametrize(
    "labels", [ClassLabels(3), ClassLabels(10), RegressionLabels(0.0, 1.0, 0.1)]
)
def test_a_weights_commitment_needs_two_classes(owner_keys: IdentityKeys, labels: Any) -> None:
    with pytest.raises(EncodingError, match="ClassLabels\\(2\\)"):
        create_commitment(owner_keys, family=FAMILY, labels=labels, size=64, model_label="m")


def test_a_weights_commitment_round_trips_and_matches_its_schema(owner_keys: IdentityKeys) -> None:
    signed = commit(owner_keys, "round trip")
    opened = open_commitment(signed.to_json(), owner_key_id=owner_keys.key_id)
    assert opened.document.family == FAMILY
    assert opened.document.labels == ClassLabels(2)
    payload = json.loads(signed.payload)
    validator("commitment").validate(payload)
    payload["labels"] = {"kind": "classes", "num_classes": 10}
    assert not validator("commitment").is_valid(payload)


def test_a_received_commitment_with_other_labels_is_refused(owner_keys: IdentityKeys) -> None:
    """The label rule holds when a commitment is read, not only when made:
    a payload re-signed by its owner with ten classes does not open."""
    payload = json.loads(commit(owner_keys, "relabelled").payload)
    payload["labels"]["num_classes"] = 10
    resigned = Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), owner_keys).to_json()
    with pytest.raises(EncodingError, match="ClassLabels\\(2\\)"):
        open_commitment(resigned)


def test_rows_follow_the_bit_rule() -> None:
    """Value j is +1 when bit j % 8 (least significant first) of byte j // 8 is set."""
    key = hashlib.sha256(b"rows").digest()
    raw = KeyStream(key).read(2).tobytes()
    row = rademacher_row(KeyStream(key), 13)
    expected = [1 if (raw[j // 8] >> (j % 8)) & 1 else -1 for j in range(13)]
    assert row.dtype == np.int8 and row.tolist() == expected
    # The unused bits of the last byte are consumed: the next read starts after it.
    stream = KeyStream(key)
    rademacher_row(stream, 13)
    assert stream.read(1).tobytes() == KeyStream(key).read(3).tobytes()[2:]


def test_triggers_are_rows_and_bits(owner_keys: IdentityKeys) -> None:
    signed = commit(owner_keys, "triggers", size=64)
    trigger = derive_trigger(owner_keys, signed, 5)
    input_key, label_key = stream_keys(trigger.beta)
    assert trigger.input.shape == (512,) and trigger.input.dtype == np.int8
    assert np.array_equal(trigger.input, rademacher_row(KeyStream(input_key), 512))
    assert trigger.label == KeyStream(label_key).read(1)[0] & 1
    batch = next(iter_triggers(owner_keys, signed, range(64)))
    assert batch.inputs.shape == (64, 512) and set(np.unique(batch.inputs)) == {-1, 1}
    assert set(batch.labels.tolist()) == {0, 1}
    assert verify_trigger(signed, 5, trigger.proof) == trigger


def test_decoys_are_rows_of_fresh_randomness(owner_keys: IdentityKeys) -> None:
    signed = commit(owner_keys, "decoys", size=64)
    decoys = generate_decoys(signed.document, 32)
    assert decoys.shape == (32, 512) and decoys.dtype == np.int8
    assert set(np.unique(decoys)) == {-1, 1}
    assert len({row.tobytes() for row in decoys}) == 32


def test_a_revealed_row_for_another_index_is_refused(owner_keys: IdentityKeys) -> None:
    signed = commit(owner_keys, "reveal", size=64)
    proof_of_one = derive_trigger(owner_keys, signed, 1).proof
    with pytest.raises(ProofError, match="trigger 0"):
        verify_trigger(signed, 0, proof_of_one)


def test_a_revealed_row_of_another_commitment_is_refused(owner_keys: IdentityKeys) -> None:
    signed, other = commit(owner_keys, "reveal", size=64), commit(owner_keys, "another", size=64)
    with pytest.raises(ProofError):
        verify_trigger(signed, 0, derive_trigger(owner_keys, other, 0).proof)


def test_a_row_beyond_the_committed_bits_is_refused(owner_keys: IdentityKeys) -> None:
    from secmark.triggers import trigger_alpha

    signed = commit(owner_keys, "reveal", size=64)
    beyond = owner_keys.vrf.prove(trigger_alpha(bytes.fromhex(signed.digest), 64))
    with pytest.raises(ProofError, match="outside the committed set"):
        verify_trigger(signed, 64, beyond)


def test_only_the_owner_derives_rows(owner_keys: IdentityKeys, other_keys: IdentityKeys) -> None:
    with pytest.raises(KeyMaterialError):
        derive_trigger(other_keys, commit(owner_keys, "keys", size=8), 0)


def test_the_weights_vector_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    """vectors/triggers/generate.py is deterministic: its weights case
    writes exactly the committed file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", VECTORS / "triggers" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    setattr(module, "HERE", tmp_path)  # noqa: B010  (the generator writes beside HERE)
    keys, seeds = module.owner()
    module.weights(keys, seeds)
    assert (tmp_path / "weights.json").read_bytes() == (
        VECTORS / "triggers" / "weights.json"
    ).read_bytes()
