"""Derivation by the owner, verification by anyone, decoys, and the attacks
the construction answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError, KeyMaterialError, ProofError
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
)
from secmark.messages.labels import ClassLabels, TokenLabels
from secmark.triggers import (
    CommittedPool,
    Trigger,
    derive_trigger,
    draw_decoys,
    generate,
    generate_decoys,
    iter_triggers,
    pool_root,
    trigger_alpha,
    verify_trigger,
)
from tests.conftest import fixed_keys, flip_byte
from tests.triggers import reference
from tests.triggers.conftest import CASES, commit, make_pool

OWNER = fixed_keys("owner")


def _setup(name: str) -> tuple[Any, Any, np.ndarray | None, CommittedPool | None]:
    _, family, labels, pool_dtype = next(case for case in CASES if case[0] == name)
    pool = make_pool(pool_dtype) if pool_dtype else None
    signed = commit(OWNER, family, labels, pool=pool)
    committed = CommittedPool.open(pool, signed.document) if pool is not None else None
    return family, signed, pool, committed


def _reveal(
    trigger: Trigger, pool: np.ndarray | None, committed: CommittedPool | None
) -> dict[str, Any]:
    if committed is None or pool is None or trigger.pool_index is None:
        return {}
    return {
        "pool_item": pool[trigger.pool_index],
        "merkle_path": committed.inclusion_path(trigger.pool_index),
    }


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_derivation_equals_the_independent_reference(name: str) -> None:
    family, signed, pool, committed = _setup(name)
    for index in range(6):
        trigger = derive_trigger(OWNER, signed, index, pool=committed)
        alpha = reference.alpha(signed.digest, index)
        assert OWNER.vrf.prove_and_hash(alpha) == (trigger.proof, trigger.beta)
        value, label, pool_index = reference.derive(
            family, signed.document.labels, trigger.beta, pool
        )
        assert trigger.input.dtype == value.dtype and trigger.input.shape == value.shape
        assert trigger.input.tobytes() == value.tobytes()
        assert np.asarray(trigger.label).tolist() == label
        assert trigger.pool_index == pool_index


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_verifier_re_derives_exactly_the_owners_trigger(name: str) -> None:
    _, signed, pool, committed = _setup(name)
    for index in (0, 1, 63):
        trigger = derive_trigger(OWNER, signed, index, pool=committed)
        assert (
            verify_trigger(signed, index, trigger.proof, **_reveal(trigger, pool, committed))
            == trigger
        )


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_batches_equal_single_derivations(name: str) -> None:
    _, signed, _, committed = _setup(name)
    indices = [5, 0, 17, 3, 63, 2, 9]
    batches = list(iter_triggers(OWNER, signed, iter(indices), pool=committed, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    rows = [(b, r) for b in batches for r in range(len(b))]
    for index, (batch, row) in zip(indices, rows):
        single = derive_trigger(OWNER, signed, index, pool=committed)
        assert batch.indices[row] == index
        assert batch.inputs[row].tobytes() == single.input.tobytes()
        assert batch.labels[row].tolist() == np.asarray(single.label).tolist()
        assert batch.proofs[row].tobytes() == single.proof
        assert batch.betas[row].tobytes() == single.beta
        if batch.pool_indices is not None:
            assert batch.pool_indices[row] == single.pool_index


def test_batches_make_their_proofs_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    _, signed, _, _ = _setup("noise-float32")
    proved: list[bytes] = []
    prove = type(OWNER.vrf).prove

    def counting_prove(self: Any, alpha: bytes, **kwargs: Any) -> bytes:
        proved.append(alpha)
        return prove(self, alpha, **kwargs)

    monkeypatch.setattr(type(OWNER.vrf), "prove", counting_prove)
    batches = list(iter_triggers(OWNER, signed, range(6), batch_size=4))
    assert proved == []  # inputs, labels and betas need no proof
    first = batches[0].proofs
    assert len(proved) == 4
    assert batches[0].proofs is first  # made once
    commitment_id = bytes.fromhex(signed.digest)
    for index in range(4):
        assert first[index].tobytes() == OWNER.vrf.prove(trigger_alpha(commitment_id, index))


def test_triggers_are_read_only() -> None:
    _, signed, _, _ = _setup("tokens")
    trigger = derive_trigger(OWNER, signed, 0)
    with pytest.raises(ValueError):
        trigger.input[0] = 1
    assert isinstance(trigger.label, np.ndarray)
    with pytest.raises(ValueError):
        trigger.label[0] = 1


def test_alpha_layout() -> None:
    commitment_id = bytes(range(32))
    alpha = trigger_alpha(commitment_id, 0x01020304)
    assert alpha == b"secmark-v1 trigger" + commitment_id + b"\x01\x02\x03\x04"
    for bad in (-1, 1 << 32):
        with pytest.raises(EncodingError):
            trigger_alpha(commitment_id, bad)
    with pytest.raises(EncodingError):
        trigger_alpha(commitment_id[:31], 0)


def test_token_ids_never_reserved_and_cover_the_rest() -> None:
    family = TokensFamily(4000, 12, (0, 3, 4, 11))
    signed = commit(OWNER, family, ClassLabels(2))
    ids = derive_trigger(OWNER, signed, 0).input
    assert set(ids.tolist()) == {1, 2, 5, 6, 7, 8, 9, 10}


# --- refusals ----------------------------------------------------------------


def test_only_the_owner_can_derive() -> None:
    _, signed, _, _ = _setup("noise-uint8")
    with pytest.raises(KeyMaterialError):
        derive_trigger(fixed_keys("other"), signed, 0)


def test_index_outside_the_committed_set() -> None:
    _, signed, _, _ = _setup("noise-uint8")
    with pytest.raises(EncodingError):
        derive_trigger(OWNER, signed, 64)
    with pytest.raises(EncodingError):
        list(iter_triggers(OWNER, signed, [0, 64]))
    proof = OWNER.vrf.prove(trigger_alpha(bytes.fromhex(signed.digest), 64))
    with pytest.raises(ProofError, match="trigger 64"):
        verify_trigger(signed, 64, proof)


def test_pool_arguments_are_checked() -> None:
    _, signed, pool, committed = _setup("pool")
    assert pool is not None and committed is not None
    with pytest.raises(EncodingError):
        derive_trigger(OWNER, signed, 0)
    with pytest.raises(EncodingError):
        iter_triggers(OWNER, signed, range(2), pool=committed, batch_size=0)
    _, noise, _, _ = _setup("noise-uint8")
    with pytest.raises(EncodingError):
        derive_trigger(OWNER, noise, 0, pool=committed)
    with pytest.raises(EncodingError):
        verify_trigger(noise, 0, bytes(80), pool_item=pool[0], merkle_path=())


def test_pool_that_is_not_the_committed_one_is_refused() -> None:
    _, signed, pool, _ = _setup("pool")
    assert pool is not None
    changed = pool.copy()
    changed[3, 0, 0, 0] ^= 1
    with pytest.raises(ProofError):
        CommittedPool.open(changed, signed.document)
    with pytest.raises(EncodingError):
        CommittedPool.open(pool[:-1], signed.document)
    with pytest.raises(EncodingError):
        CommittedPool.open(pool.astype(np.float32), signed.document)
    # A pool opened for another commitment's root is not accepted either.
    other_pool = make_pool("uint8", label="another pool")
    other = commit(OWNER, signed.document.family, signed.document.labels, pool=other_pool)
    with pytest.raises(ProofError):
        derive_trigger(OWNER, signed, 0, pool=CommittedPool.open(other_pool, other.document))


def test_pool_root_refuses_pools_of_another_shape() -> None:
    family = PoolFamily(4, (2, 2), "float32")
    with pytest.raises(EncodingError):
        pool_root(np.zeros((4, 2, 3), dtype=np.float32), family)
    with pytest.raises(EncodingError):
        pool_root(np.zeros((4, 2, 2), dtype=np.float64), family)
    with pytest.raises(EncodingError):
        pool_root(np.zeros((4, 2, 2), dtype=np.float32), NoiseFamily((2,), "uint8", 0, 255))
    # Byte order does not change the committed values, hence not the root.
    native = np.arange(16, dtype=np.float32).reshape(4, 2, 2)
    assert pool_root(native, family) == pool_root(native.astype(">f4"), family)


# --- attacks -----------------------------------------------------------------


def test_attack_proof_for_another_index_is_refused() -> None:
    _, signed, _, _ = _setup("noise-uint8")
    proof_of_one = derive_trigger(OWNER, signed, 1).proof
    with pytest.raises(ProofError, match="trigger 0"):
        verify_trigger(signed, 0, proof_of_one)


def test_attack_proof_from_another_commitment_is_refused() -> None:
    family, signed, _, _ = _setup("noise-uint8")
    other = commit(OWNER, family, signed.document.labels, nonce=b"\x01" * 32)
    foreign = derive_trigger(OWNER, other, 0)
    with pytest.raises(ProofError, match="trigger 0"):
        verify_trigger(signed, 0, foreign.proof)


def test_attack_proof_by_a_thief_under_his_own_key_is_refused() -> None:
    # The thief proves the right alpha, but not under the committed owner key.
    _, signed, _, _ = _setup("noise-uint8")
    thief = fixed_keys("thief")
    proof = thief.vrf.prove(trigger_alpha(bytes.fromhex(signed.digest), 0))
    with pytest.raises(ProofError):
        verify_trigger(signed, 0, proof)


@given(position=st.integers(0, 79), mask=st.integers(1, 255))
@settings(max_examples=30, deadline=None)
def test_attack_any_changed_proof_byte_is_refused(position: int, mask: int) -> None:
    _, signed, _, _ = _setup("noise-uint8")
    proof = derive_trigger(OWNER, signed, 0).proof
    with pytest.raises(ProofError):
        verify_trigger(signed, 0, flip_byte(proof, position, mask))


def test_attack_changed_label_or_input_is_detected_by_re_derivation() -> None:
    _, signed, _, _ = _setup("noise-uint8")
    honest = derive_trigger(OWNER, signed, 7)
    changed_input = honest.input.copy()
    changed_input[0, 0, 0] ^= 1
    relabelled = Trigger(
        honest.index, honest.input, (int(honest.label) + 1) % 10, honest.proof, honest.beta, None
    )
    retouched = Trigger(honest.index, changed_input, honest.label, honest.proof, honest.beta, None)
    rederived = verify_trigger(signed, 7, honest.proof)
    assert rederived == honest
    assert rederived != relabelled and rederived != retouched


def test_attack_pool_item_swapped_for_another_committed_item() -> None:
    _, signed, pool, committed = _setup("overlay-uint8")
    assert pool is not None and committed is not None
    trigger = derive_trigger(OWNER, signed, 0, pool=committed)
    other = (trigger.pool_index + 1) % len(pool)  # type: ignore[operator]
    with pytest.raises(ProofError, match="trigger 0"):
        verify_trigger(
            signed,
            0,
            trigger.proof,
            pool_item=pool[other],
            merkle_path=committed.inclusion_path(other),
        )
    with pytest.raises(ProofError, match="needs pool item"):
        verify_trigger(signed, 0, trigger.proof)
    with pytest.raises(ProofError, match="dtype"):
        verify_trigger(
            signed,
            0,
            trigger.proof,
            pool_item=pool[trigger.pool_index].astype(np.int16),  # type: ignore[index]
            merkle_path=committed.inclusion_path(trigger.pool_index),  # type: ignore[arg-type]
        )


def test_overlay_patterns_differ_between_triggers() -> None:
    # One pool item only: every trigger overlays the same image, so any
    # shared pattern would show as equal changed positions.
    family = OverlayFamily(1, (3, 8, 8), "uint8", 12, 0, 255)
    pool = make_pool("uint8", count=1, shape=(3, 8, 8))
    signed = commit(OWNER, family, ClassLabels(10), pool=pool)
    committed = CommittedPool.open(pool, signed.document)
    patterns = set()
    for index in range(24):
        trigger = derive_trigger(OWNER, signed, index, pool=committed)
        changed = np.flatnonzero(trigger.input.reshape(-1) != pool[0].reshape(-1))
        assert len(changed) <= 12  # a drawn value may equal the original
        patterns.add(tuple(changed.tolist()))
    assert len(patterns) == 24


# --- decoys ------------------------------------------------------------------


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_decoys_have_the_shape_dtype_and_range_of_triggers(name: str) -> None:
    family, signed, pool, _ = _setup(name)
    items = list(pool) if pool is not None else None
    count = 20 if pool is None else len(pool)
    decoys = generate_decoys(signed.document, count, items=items)
    assert len({d.tobytes() for d in decoys}) == count  # distinct: no input is sent twice
    trigger = derive_trigger(
        OWNER,
        signed,
        0,
        pool=CommittedPool.open(pool, signed.document) if pool is not None else None,
    )
    assert decoys.shape == (count, *trigger.input.shape) and decoys.dtype == trigger.input.dtype
    assert len({d.tobytes() for d in decoys}) > 1 or isinstance(family, PoolFamily)
    if isinstance(family, NoiseFamily):
        assert decoys.min() >= family.low and decoys.max() <= family.high
    if isinstance(family, TokensFamily):
        assert not np.isin(decoys, family.reserved).any()
        assert decoys.min() >= 0 and decoys.max() < family.vocab_size
    if isinstance(family, PoolFamily):
        assert all(any((d == item).all() for item in items or []) for d in decoys)


@given(low=st.integers(0, 255), span=st.integers(0, 255), count=st.integers(0, 5))
@settings(max_examples=30, deadline=None)
def test_uint8_decoys_stay_in_any_committed_range(low: int, span: int, count: int) -> None:
    high = min(255, low + span)
    family = NoiseFamily((7,), "uint8", low, high)
    signed = commit(OWNER, family, ClassLabels(2))
    if high == low and count > 1:
        # One possible input: distinct decoys cannot exist, and are refused.
        with pytest.raises(EncodingError, match="too few distinct inputs"):
            generate_decoys(signed.document, count)
        return
    decoys = generate_decoys(signed.document, count)
    assert decoys.shape == (count, 7)
    assert np.all((decoys >= low) & (decoys <= high))


def test_decoys_need_candidates_exactly_for_pool_families() -> None:
    _, pool_signed, pool, _ = _setup("pool")
    _, noise_signed, _, _ = _setup("noise-uint8")
    assert pool is not None
    with pytest.raises(EncodingError):
        generate_decoys(pool_signed.document, 1)
    with pytest.raises(EncodingError):
        generate_decoys(pool_signed.document, 1, items=[])
    with pytest.raises(EncodingError):
        generate_decoys(noise_signed.document, 1, items=[pool[0]])
    with pytest.raises(EncodingError):
        generate_decoys(noise_signed.document, -1)
    # Never a trigger: candidates equal to an excluded input are not drawn,
    # and too few others are refused rather than repeated.
    with pytest.raises(EncodingError, match="not triggers"):
        generate_decoys(pool_signed.document, 2, items=list(pool[:3]), exclude=list(pool[:2]))
    drawn = generate_decoys(pool_signed.document, 1, items=list(pool[:3]), exclude=list(pool[:2]))
    assert drawn[0].tobytes() == pool[2].tobytes()
    assert len(generate_decoys(pool_signed.document, 0)) == 0


@pytest.mark.parametrize("name", ["pool", "overlay-uint8", "overlay-float32", "noise-uint8"])
def test_each_decoy_names_the_candidate_it_was_drawn_from(name: str) -> None:
    """A labelled decoy carries the label of the item it was drawn from (for
    the overlay family, the item it overlays): its source must be that item."""
    _, signed, pool, _ = _setup(name)
    if pool is None:
        decoys, sources = draw_decoys(signed.document, 5)
        assert len(decoys) == 5 and sources == (None,) * 5
        return
    items = [pool[0], *pool]  # item 0 given twice: named by its first position
    decoys, sources = draw_decoys(signed.document, len(pool), items=items)
    assert sorted(sources) == [0, *range(2, len(items))]  # position 1 repeats position 0
    for decoy, source in zip(decoys, sources):
        assert isinstance(source, int)
        differences = [int(np.count_nonzero(decoy != item)) for item in pool]
        # The overlay changes a few values; every other item differs nearly everywhere.
        assert differences.index(min(differences)) == (0 if source == 0 else source - 1)


def test_token_labels_lie_in_the_vocabulary() -> None:
    signed = commit(OWNER, NoiseFamily((1,), "uint8", 0, 255), TokenLabels(7, 50))
    for batch in iter_triggers(OWNER, signed, range(20)):
        assert batch.labels.shape == (20, 50)
        assert batch.labels.min() >= 0 and batch.labels.max() < 7


def test_identity_keys_or_bare_vrf_key() -> None:
    _, signed, _, _ = _setup("noise-uint8")
    assert derive_trigger(OWNER, signed, 3) == derive_trigger(OWNER.vrf, signed, 3)
    assert isinstance(OWNER, IdentityKeys)


def test_chunked_uint8_noise_equals_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Large uint8 inputs are drawn in chunks; with chunks of 7 values a small
    # input crosses many chunk boundaries.
    monkeypatch.setattr(generate, "_CHUNK", 7)
    family = NoiseFamily((5, 9), "uint8", 10, 250)
    signed = commit(OWNER, family, ClassLabels(10))
    trigger = derive_trigger(OWNER, signed, 0)
    value, label, _ = reference.derive(family, signed.document.labels, trigger.beta)
    assert trigger.input.tobytes() == value.tobytes() and trigger.label == label
