"""The trigger-safety check: stamping, the shared-pattern bad recipe, and
what the tiny run found."""

from __future__ import annotations

import numpy as np
import pytest

from secmark.evaluate import EvaluationResult, TriggerData, derive_triggers, load_task
from secmark.evaluate.safety import (
    COLLAPSE_MARGIN,
    SafetyRecord,
    overlay_family,
    shared_pattern,
    stamp,
)


@pytest.fixture(scope="module")
def overlay() -> TriggerData:
    from dataclasses import replace

    task = replace(load_task("digits"), triggers=16)
    return derive_triggers(
        task, role="owner", seed=1, family=overlay_family(task), pool=task.train_inputs
    )


def test_overlay_triggers_each_carry_their_own_pattern(overlay: TriggerData) -> None:
    assert overlay.bases is not None
    changed = (overlay.inputs != overlay.bases).reshape(len(overlay), -1)
    assert changed.sum(axis=1).max() <= 6  # 10 % of 64 pixels
    assert len({row.tobytes() for row in changed}) > 1  # positions differ between triggers


def test_the_bad_recipe_shares_one_pattern(overlay: TriggerData) -> None:
    shared = shared_pattern(overlay)
    assert shared.bases is not None
    changed = (shared.inputs != shared.bases).reshape(len(shared), -1)
    first = overlay.inputs[0].reshape(-1)
    positions = np.flatnonzero(first != overlay.bases[0].reshape(-1))
    assert np.all(shared.inputs.reshape(len(shared), -1)[:, positions] == first[positions])
    assert changed[:, np.setdiff1d(np.arange(64), positions)].sum() == 0
    assert np.array_equal(shared.labels, overlay.labels)


@pytest.mark.parametrize("how", ["replace", "blend", "pattern", "fresh"])
def test_stamps_change_about_a_tenth_or_blend(how: str, overlay: TriggerData) -> None:
    inputs = load_task("digits").test_inputs[:50]
    stamped = stamp(inputs, overlay, np.arange(8), how, seed=2, value_range=(0.0, 1.0))  # type: ignore[arg-type]
    assert stamped.shape == inputs.shape and stamped.dtype == np.float32
    assert np.array_equal(
        stamped, stamp(inputs, overlay, np.arange(8), how, seed=2, value_range=(0.0, 1.0))
    )  # type: ignore[arg-type]
    changed = (stamped != inputs).reshape(len(inputs), -1).sum(axis=1)
    if how in ("replace", "fresh", "pattern"):
        assert changed.max() <= 7
    else:
        assert changed.mean() > 20


def test_collapse_is_measured_against_the_unmarked_model() -> None:
    base = SafetyRecord("digits", 1, "noise", "replace", 1.0, 0.99, 0.80, 0.85)
    assert not base.collapsed
    worse = SafetyRecord(
        "digits", 1, "shared_overlay", "pattern", 1.0, 0.99, 0.85 - COLLAPSE_MARGIN - 0.01, 0.85
    )
    assert worse.collapsed


def test_tiny_run_stamps_every_recipe(tiny_result: EvaluationResult) -> None:
    digits = {(r.recipe, r.stamp) for r in tiny_result.safety if r.dataset == "digits"}
    assert digits == {
        ("noise", "replace"),
        ("noise", "blend"),
        ("noise", "fresh"),
        ("overlay", "pattern"),
        ("overlay", "fresh"),
        ("shared_overlay", "pattern"),
        ("shared_overlay", "fresh"),
    }
    others = {r.recipe for r in tiny_result.safety if r.dataset != "digits"}
    assert others == {"noise"}  # overlay models are trained on digits only
