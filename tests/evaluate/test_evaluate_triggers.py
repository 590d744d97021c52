"""Trigger sets of the evaluation: the pool family draws committed candidates, the
in-distribution candidates (perturbed copies of inputs the owner holds out of
all training, never in the thief's data) and the decoys drawn from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.evaluate import FamilyName, derive_triggers, draw_decoys, load_task, owner_triggers
from secmark.evaluate.harness import thief_share
from secmark.messages.families import PoolFamily


def test_pool_triggers_are_committed_candidates_with_their_own_labels() -> None:
    task = replace(load_task("digits"), triggers=32)
    pool = task.test_inputs
    family = PoolFamily(len(pool), tuple(pool.shape[1:]), "float32")
    triggers = derive_triggers(task, role="owner", seed=1, family=family, pool=pool)
    assert triggers.bases is not None and np.array_equal(triggers.inputs, triggers.bases)
    candidates = {item.tobytes() for item in pool}
    assert all(item.tobytes() in candidates for item in triggers.inputs)
    assert set(triggers.labels.tolist()) <= set(range(10))
    again = derive_triggers(task, role="owner", seed=1, family=family, pool=pool)
    assert np.array_equal(again.inputs, triggers.inputs)
    with pytest.raises(EncodingError, match="pool family needs its candidate pool"):
        derive_triggers(task, role="owner", seed=1, family=family)


def _keys(items: np.ndarray) -> set[bytes]:
    return {item.tobytes() for item in np.asarray(items, dtype=np.float32)}


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_candidates_are_copies_of_held_out_inputs_that_no_one_trains_on(name: str) -> None:
    from secmark.evaluate import owner_task, pool_candidates, reserved_rows

    task = load_task(name)
    rule = task.candidates
    reserved = reserved_rows(task, 1)
    assert len(reserved) == rule.reserve and np.array_equal(reserved, np.unique(reserved))
    training = owner_task(task, "pool", 1)
    assert len(training.train_inputs) == len(task.train_inputs) - rule.reserve
    assert owner_task(task, "noise", 1) is task
    candidates = pool_candidates(task, 1)
    assert candidates.dtype == np.float32 and candidates.shape[1:] == task.train_inputs.shape[1:]
    assert 0.99 * rule.reserve * rule.variants <= len(candidates) <= rule.reserve * rule.variants
    keys = [item.tobytes() for item in candidates]
    assert len(set(keys)) == len(keys)  # no two candidates share an input
    # No candidate and no reserved input is a training or test input, and the
    # thief's largest share (all of the owner's training split) holds none.
    known = _keys(np.concatenate([training.train_inputs, task.test_inputs]))
    assert not known.intersection(keys) and not known & _keys(task.train_inputs[reserved])
    thiefs, _ = thief_share(training, 1.0, seed=1)
    assert not _keys(thiefs) & (set(keys) | _keys(task.train_inputs[reserved]))
    # Each candidate is a perturbed copy of one reserved input, item by item.
    bases = np.repeat(task.train_inputs[reserved], rule.variants, axis=0)
    if len(candidates) == len(bases):
        moved = np.abs(candidates - bases).reshape(len(bases), -1)
        if task.train_inputs.ndim >= 3:
            assert moved.max() <= rule.spread / 16 + 1e-6
        else:
            # Gaussian noise: the mean absolute move is spread * sqrt(2 / pi).
            assert float(moved.mean()) * np.sqrt(np.pi / 2) == pytest.approx(rule.spread, rel=0.05)
    # Deterministic per seed, another draw for another seed.
    assert np.array_equal(reserved_rows(task, 1), reserved)
    assert np.array_equal(pool_candidates(task, 1), candidates)
    assert not np.array_equal(reserved_rows(task, 2), reserved)
    assert not np.array_equal(pool_candidates(task, 2)[:64], candidates[:64])


def test_digit_candidates_pass_the_evaluation_detectors_and_noise_does_not() -> None:
    from secmark.evaluate import BackgroundDetector, ReconstructionDetector, pool_candidates

    task = load_task("digits")
    candidates = pool_candidates(task, 1)
    # In distribution by the evaluation's own detectors, calibrated to flag 2 % of
    # the training split: they flag every noise trigger and few candidates.
    noise = derive_triggers(replace(task, triggers=64), role="owner", seed=1).inputs
    for detector in (
        BackgroundDetector.calibrate(task.train_inputs, 0.02),
        ReconstructionDetector.calibrate(task.train_inputs, 0.02),
    ):
        assert detector.flags(noise).all()
        assert detector.flags(candidates).mean() < 0.1


def test_perturbed_copies_keep_the_background_and_their_order() -> None:
    from secmark.evaluate import perturb

    task = load_task("digits")
    items = task.train_inputs[:3]
    copies = perturb(task, items, 4, np.random.default_rng(0))
    assert copies.shape == (12, *items.shape[1:]) and copies.dtype == np.float32
    for row, copy in enumerate(copies):
        item = items[row // 4]
        assert np.array_equal(copy[item == 0], item[item == 0])  # background stays
        steps = (copy - item) * 16
        assert np.allclose(steps, np.round(steps), atol=1e-4) and np.abs(steps).max() <= 2
        assert 0 <= copy.min() and copy.max() <= 1
    assert perturb(task, items, 0, np.random.default_rng(0)).shape == (0, *items.shape[1:])
    with pytest.raises(EncodingError, match="copies must be at least 0"):
        perturb(task, items, -1, np.random.default_rng(0))


def test_a_reserve_larger_than_the_unique_inputs_is_refused() -> None:
    from secmark.evaluate import CandidateRule, reserved_rows

    task = load_task("breast_cancer")
    too_many = replace(task, candidates=CandidateRule(len(task.train_inputs) + 1, 2, 0.2))
    with pytest.raises(EncodingError, match="inputs to reserve"):
        reserved_rows(too_many, 1)


@pytest.mark.parametrize("name", ["pool", "overlay"])
def test_decoys_are_non_trigger_candidates_drawn_as_the_arbiter_draws(name: FamilyName) -> None:
    task = replace(load_task("digits"), triggers=64)
    owner = owner_triggers(task, name, 1)
    assert owner.candidates is not None and owner.triggers.bases is not None
    assert owner.family.NAME == name and len(owner.triggers) == 64
    decoys = draw_decoys(task, owner, 1, 32)
    assert decoys.shape == (32, *task.train_inputs.shape[1:])
    taken = {item.tobytes() for item in owner.triggers.inputs}
    taken |= {item.tobytes() for item in owner.triggers.bases}
    candidates = {item.tobytes() for item in owner.candidates}
    # No trigger-decoy collision, and no decoy built on a trigger's base item.
    assert not taken.intersection(item.tobytes() for item in decoys)
    assert len({item.tobytes() for item in decoys}) == 32
    if name == "pool":
        assert {item.tobytes() for item in decoys} <= candidates
    else:
        changed = (decoys != 0).sum(axis=(1, 2, 3))
        assert changed.min() > 0  # an overlay on some candidate, not a blank input


def test_unknown_families_are_refused_with_a_typed_error() -> None:
    from secmark.evaluate import EvaluationConfig, quick_config

    task = load_task("digits")
    with pytest.raises(EncodingError, match="unknown trigger family 'blend'"):
        owner_triggers(task, "blend", 1)  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match="unknown trigger family"):
        quick_config(("digits",), family="blend")  # type: ignore[arg-type]
    assert quick_config(("digits",)).family == "noise"
    assert isinstance(quick_config(("digits",), family="pool"), EvaluationConfig)
    with pytest.raises(EncodingError, match="decoys are drawn from candidates only"):
        draw_decoys(task, owner_triggers(replace(task, triggers=16), "noise", 1), 1, 4)


def test_labelled_decoys_are_the_free_candidates_with_their_reserved_inputs_class() -> None:
    from secmark.evaluate import candidate_targets, pool_candidates, reserved_rows
    from secmark.evaluate.harness import labelled_decoys

    task = replace(load_task("digits"), triggers=64)
    owner = owner_triggers(task, "pool", 1)
    assert owner.candidates is not None
    targets = candidate_targets(task, 1)
    assert len(targets) == len(pool_candidates(task, 1))
    # Copies are item by item: the first copies are of the first reserved input.
    first = reserved_rows(task, 1)[0]
    assert targets[0] == task.train_targets[first]
    inputs, labels = labelled_decoys(task, owner, 1)
    taken = {item.tobytes() for item in owner.triggers.inputs}
    assert not taken & {item.tobytes() for item in inputs}
    assert len(inputs) == len(owner.candidates) - len(taken) == len(labels)
    assert set(labels.tolist()) <= set(task.train_targets[reserved_rows(task, 1)].tolist())
    with pytest.raises(EncodingError, match="labelled decoys need the candidates"):
        labelled_decoys(task, owner_triggers(task, "noise", 1), 1)
