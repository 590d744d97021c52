"""Trigger sets of the evaluation: the pool family draws committed candidates, the
in-distribution candidates and the decoys drawn from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.evaluate import FamilyName, derive_triggers, draw_decoys, load_task, owner_triggers
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


def test_pool_candidates_are_in_distribution_and_never_an_input_of_the_task() -> None:
    from secmark.evaluate import BackgroundDetector, ReconstructionDetector, pool_candidates

    task = load_task("digits")
    candidates = pool_candidates(task, 1)
    assert candidates.dtype == np.float32 and candidates.shape[1:] == task.train_inputs.shape[1:]
    assert len(candidates) > 0.99 * len(task.train_inputs)
    assert 0.0 <= candidates.min() and candidates.max() <= 1.0
    known = {item.tobytes() for item in np.concatenate([task.train_inputs, task.test_inputs])}
    keys = [item.tobytes() for item in candidates]
    # No candidate is an input the thief may hold with its true label; none repeats.
    assert not known.intersection(keys) and len(set(keys)) == len(keys)
    assert np.array_equal(pool_candidates(task, 1), candidates)
    assert not np.array_equal(pool_candidates(task, 2), candidates)
    # In distribution by the evaluation's own detectors, calibrated to flag 2 % of
    # the training split: they flag every noise trigger and few candidates.
    noise = derive_triggers(replace(task, triggers=64), role="owner", seed=1).inputs
    for detector in (
        BackgroundDetector.calibrate(task.train_inputs, 0.02),
        ReconstructionDetector.calibrate(task.train_inputs, 0.02),
    ):
        assert detector.flags(noise).all()
        assert detector.flags(candidates).mean() < 0.1


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
