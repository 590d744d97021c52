"""The evaluation loop: the survival rule, aggregation over seeds, determinism."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.evaluate import (
    ATTACKS,
    AttackRecord,
    AttackSweep,
    EvaluationConfig,
    EvaluationResult,
    Measurement,
    default_config,
    load_task,
    quick_config,
    removes_watermark,
    run_evaluation,
)
from secmark.evaluate.harness import thief_share

from .conftest import tiny_config


@pytest.mark.parametrize(
    ("detected", "drop", "removed"),
    [
        (True, 0.0, False),  # verdict holds: nothing removed
        (True, 0.5, False),  # verdict holds even on a ruined model
        (False, 0.0, True),  # verdict lost, model intact: removed
        (False, 0.05, True),  # exactly at the 5-point margin still counts
        (False, 0.0501, False),  # verdict lost only by ruining the model
        (False, -0.02, True),  # the attack even improved the model
    ],
)
def test_removal_needs_a_lost_verdict_and_a_useful_model(
    detected: bool, drop: float, removed: bool
) -> None:
    assert removes_watermark(detected=detected, clean_drop=drop, max_clean_drop=0.05) is removed


def measurement(matches: int, *, clean: float, detected: bool, log2_p: float) -> Measurement:
    return Measurement(
        clean_score=clean,
        watermark_accuracy=matches / 128,
        challenged=128,
        matches=matches,
        threshold=53,
        detected=detected,
        p_value=2.0**log2_p,
        log2_p_value=log2_p,
    )


def record(seed: int, matches: int, *, detected: bool, clean: float, log2_p: float) -> AttackRecord:
    drop = 0.99 - clean
    return AttackRecord(
        dataset="digits",
        attack="prune",
        strength=0.9,
        data_fraction=0.5,
        seed=seed,
        original_score=0.99,
        measurement=measurement(matches, clean=clean, detected=detected, log2_p=log2_p),
        removed=removes_watermark(detected=detected, clean_drop=drop, max_clean_drop=0.05),
        seconds=0.0,
    )


def test_summary_reports_the_worst_seed_and_survives_only_if_no_seed_removed() -> None:
    config = EvaluationConfig(
        datasets=("digits",), seeds=(1, 2, 3), sweeps=(AttackSweep("prune", (0.9,)),)
    )
    records = (
        record(1, 120, detected=True, clean=0.98, log2_p=-300.0),
        record(2, 40, detected=False, clean=0.60, log2_p=-20.0),  # broken model, not a removal
        record(3, 90, detected=True, clean=0.97, log2_p=-150.0),
    )
    result = EvaluationResult(config, (), (), records, (), 0.0)
    (row,) = result.summary()
    assert (row.worst_matches, row.worst_log2_p_value, row.detected, row.removed) == (
        40,
        -20.0,
        2,
        0,
    )
    assert row.survives
    assert row.worst_clean_drop == pytest.approx(0.39)
    assert row.clean_mean == pytest.approx((0.98 + 0.60 + 0.97) / 3)
    removed = dataclasses.replace(
        records[2],
        measurement=measurement(30, clean=0.97, detected=False, log2_p=-5.0),
        removed=True,
    )
    (row,) = EvaluationResult(config, (), (), (records[0], records[1], removed), (), 0.0).summary()
    assert not row.survives and row.removed == 1 and row.worst_log2_p_value == -5.0


def test_tiny_run_measures_every_attack_on_every_data_set(tiny_result: EvaluationResult) -> None:
    seen = {(r.dataset, r.attack) for r in tiny_result.attacks}
    assert seen == {(d, a) for d in ("digits", "breast_cancer", "diabetes") for a in ATTACKS}
    for baseline in tiny_result.baselines:
        assert not baseline.unmarked.detected  # no false claim against the unmarked model
        assert baseline.watermarked.challenged == 24
    for info in tiny_result.tasks:
        assert (info.triggers, info.challenges) == (48, 24)
    for row in tiny_result.summary():
        assert row.survives == (row.removed == 0)
        assert 0.0 <= row.worst_watermark_accuracy <= 1.0
    regression = [r for r in tiny_result.attacks if r.dataset == "diabetes"]
    assert all(-10 < r.measurement.clean_score <= 1 for r in regression)  # R², not accuracy


def test_each_evasion_filter_gets_a_row_with_its_figures(tiny_result: EvaluationResult) -> None:
    evasion = [name for name, attack in ATTACKS.items() if attack.evasion]
    assert set(evasion) == {"ood_background", "ood_reconstruction", "disagreement_filter"}
    rows = {(r.dataset, r.attack): r for r in tiny_result.summary() if r.attack in evasion}
    assert set(rows) == {(d, a) for d in ("digits", "breast_cancer", "diabetes") for a in evasion}
    for row in rows.values():
        # matches kept, the thief's clean cost, the verdict, and the answers replaced
        assert 0 <= row.worst_matches <= row.challenged == 24
        assert row.worst_clean_drop == pytest.approx(row.original_mean - row.clean_mean)
        assert 0 <= row.detected <= row.seeds and row.survives == (row.removed == 0)
        assert 0.0 <= row.extra["replaced_holdout"] <= 1.0
    for name in ("ood_background", "ood_reconstruction"):
        digits = rows[("digits", name)]
        # Every noise trigger is flagged and answered at random: far below the threshold.
        assert digits.worst_matches < digits.threshold and digits.detected == 0
        assert digits.extra["flagged_own"] <= 0.02 and digits.worst_clean_drop <= 0.05


def comparable(result: EvaluationResult, dataset: str) -> list[tuple[object, ...]]:
    return (
        [
            (r.attack, r.strength, r.data_fraction, r.seed, r.measurement, dict(r.extra))
            for r in result.attacks
            if r.dataset == dataset
        ]
        + [(b.seed, b.unmarked, b.watermarked) for b in result.baselines if b.dataset == dataset]
        + [s for s in result.safety if s.dataset == dataset]
    )


@pytest.mark.parametrize("dataset", ["digits", "diabetes"])
def test_the_same_seed_gives_the_same_figures(tiny_result: EvaluationResult, dataset: str) -> None:
    again = run_evaluation(tiny_config((dataset,)), progress=False)
    assert comparable(again, dataset) == comparable(tiny_result, dataset)


def test_the_thiefs_budgets_are_nested_and_seeded() -> None:
    task = load_task("digits")
    small, _ = thief_share(task, 0.1, seed=4)
    large, _ = thief_share(task, 0.5, seed=4)
    assert len(small) == round(0.1 * len(task.train_inputs))
    assert {row.tobytes() for row in small} <= {row.tobytes() for row in large}
    other, _ = thief_share(task, 0.1, seed=5)
    assert not np.array_equal(small, other)


def test_recipe_overrides_reach_the_owners_recipe_for_the_family() -> None:
    from secmark.evaluate import Recipe
    from secmark.evaluate.harness import prepare_task

    recipe = Recipe(7, 1e-3, 32, 4)
    for family in ("noise", "pool"):
        config = EvaluationConfig(
            datasets=("digits",),
            seeds=(1,),
            sweeps=(),
            recipes=(("digits", recipe),),
            family=family,  # type: ignore[arg-type]
        )
        task = prepare_task("digits", config)
        assert task.owner_recipe(family) == recipe
        # The thief's training always follows the task's own recipe.
        assert (task.recipe == recipe) is (family == "noise")
    tiny = prepare_task("digits", tiny_config(("digits",)))
    assert tiny.recipe.epochs == tiny.pool_recipe.epochs == 4


def test_augmented_copies_enlarge_the_owners_clean_set_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from secmark.evaluate import Recipe, Task
    from secmark.evaluate import training as training_module

    seen: list[tuple[Task, np.ndarray, np.ndarray]] = []

    def record(
        task: Task, model: object, inputs: np.ndarray, targets: np.ndarray, **_: object
    ) -> float:
        seen.append((task, inputs, targets))
        return 0.0

    monkeypatch.setattr(training_module, "fit", record)
    task = load_task("digits")
    recipe = Recipe(1, 1e-3, 32, 4, augment=2)
    for seed in (1, 1, 2):
        training_module.fit_by_recipe(task, task.new_model(1), seed, recipe=recipe)
    (used, inputs, targets), (_, again, _), (_, other, _) = seen
    n = len(task.train_inputs)
    assert used.recipe == recipe and inputs.shape == (3 * n, *task.train_inputs.shape[1:])
    assert np.array_equal(inputs[:n], task.train_inputs)
    assert np.array_equal(
        targets, np.concatenate([task.train_targets, np.repeat(task.train_targets, 2)])
    )
    # The same copies for both models of a seed, other copies for another seed.
    assert np.array_equal(again, inputs) and not np.array_equal(other, inputs)
    training_module.fit_by_recipe(task, task.new_model(1), 1)
    assert len(seen[-1][1]) == n and seen[-1][0].recipe == task.recipe


def test_configurations_refuse_nonsense() -> None:
    with pytest.raises(EncodingError):
        AttackSweep("erase", (1.0,))
    with pytest.raises(EncodingError):
        AttackSweep("prune", (0.5,), (0.0,))
    with pytest.raises(EncodingError):
        EvaluationConfig(datasets=("mnist",), seeds=(1,), sweeps=())
    with pytest.raises(EncodingError):
        EvaluationConfig(datasets=("digits",), seeds=(), sweeps=())
    with pytest.raises(EncodingError):
        EvaluationConfig(datasets=("digits",), seeds=(1,), sweeps=(), triggers=8, challenges=16)


def test_default_grid_covers_the_issue_targets() -> None:
    config = default_config()
    points = {(s.attack, strength) for s in config.sweeps for strength, _ in s.points()}
    assert {
        ("finetune_all", 1e-3),
        ("finetune_all", 1e-4),
        ("fine_prune", 0.9),
        ("quantize", 8),
        ("quantize", 4),
    } <= points
    assert config.settings.finetune_epochs == 30 and config.settings.fineprune_epochs == 5
    assert len(config.seeds) == 3 and config.alpha == Fraction(1, 2**64)
    assert quick_config().points < config.points


def test_a_pool_family_run_records_its_family_in_every_row_and_the_json() -> None:
    from secmark.evaluate.report import summary_json, summary_markdown

    config = dataclasses.replace(
        tiny_config(("digits",)),
        sweeps=(AttackSweep("prune", (0.5,)), AttackSweep("ood_reconstruction", (0.02,))),
        family="pool",
        safety=False,
    )
    result = run_evaluation(config, progress=False)
    (task,) = result.tasks
    assert task.family_name == "pool" and task.family.startswith("pool of 4096")
    # The owner trains (and the thief draws his share) without the held-out inputs,
    # with the pool family's own recipe.
    digits = load_task("digits")
    assert task.train_size == len(digits.train_inputs) - digits.candidates.reserve
    assert task.recipe == dataclasses.replace(digits.pool_recipe, epochs=4)
    rows = result.summary()
    assert [row.attack for row in rows] == ["prune", "ood_reconstruction"]
    assert all(row.family == "pool" for row in rows)
    assert all(record.family == "pool" for record in result.attacks)
    data = summary_json(result)
    assert data["family"] == data["config"]["family"] == "pool"
    assert {row["family"] for row in data["summary"]} == {"pool"}
    markdown = summary_markdown(result)
    assert "# secmark robustness summary: pool triggers" in markdown
    assert "## digits (pool triggers)" in markdown
    # In-distribution triggers: the PCA filter replaces about as few of them as
    # of the holdout split, unlike noise triggers (all flagged, tiny run above).
    ood = rows[1]
    assert ood.extra["flagged_own"] <= 0.02 and ood.extra["replaced_holdout"] < 0.1
    # The arbiter's labelled decoys are scored before and after every attack.
    (baseline,) = result.baselines
    assert set(baseline.decoy_accuracy) == {"unmarked", "watermarked"}
    assert all(0 <= record.extra["decoy_accuracy"] <= 1 for record in result.attacks)
    assert "| watermarked on decoys |" in markdown
