"""Each attack on its own: what it must do to the model, and what it must not."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from secmark.errors import EncodingError
from secmark.evaluate import (
    ATTACKS,
    AttackedModel,
    AttackSettings,
    ThiefData,
    apply_attack,
    derive_triggers,
    load_task,
    prune_weights,
    quantize_weights,
)
from secmark.evaluate.datasets import Task
from secmark.evaluate.models import weight_layers


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task("breast_cancer")


@pytest.fixture(scope="module")
def thief(task: Task) -> ThiefData:
    from dataclasses import replace

    small = replace(task, triggers=16)
    return ThiefData(
        small,
        task.train_inputs[:64],
        task.train_targets[:64],
        derive_triggers(small, role="thief", seed=1),
        AttackSettings(finetune_epochs=1, fineprune_epochs=1, overwrite_epochs=1),
        seed=1,
    )


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [layer.weight.detach().clone() for layer in weight_layers(model)]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_leaves_the_stolen_model_alone(
    name: str, task: Task, thief: ThiefData
) -> None:
    stolen = task.new_model(3)
    before = copy.deepcopy(stolen.state_dict())
    strength = {
        "prune": 0.5,
        "fine_prune": 0.5,
        "quantize": 4,
        "input_noise": 0.1,
        "distill": 0.01,
    }.get(name, 1e-3)
    attacked = apply_attack(name, stolen, thief, strength)
    assert isinstance(attacked, AttackedModel)
    assert attacked.model is not stolen
    after = stolen.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    answers = attacked.answer(task, task.test_inputs)
    assert answers.shape == (len(task.test_inputs),)


def test_global_pruning_zeroes_the_smallest_weights_over_all_layers(task: Task) -> None:
    model = task.new_model(1)
    everything = torch.cat([w.reshape(-1).abs() for w in weights(model)])
    prune_weights(model, 0.7)
    pruned = torch.cat([w.reshape(-1) for w in weights(model)])
    zero = pruned == 0
    assert abs(int(zero.sum()) - round(0.7 * len(pruned))) <= 1
    # Global ranking: every pruned weight was no larger than every kept one.
    assert everything[zero].max() <= everything[~zero].min()
    assert "weight_orig" not in " ".join(model.state_dict())  # pruning made permanent


def test_fine_pruning_keeps_pruned_weights_at_zero(task: Task, thief: ThiefData) -> None:
    stolen = task.new_model(1)
    attacked = apply_attack("fine_prune", stolen, thief, 0.8)
    flat = torch.cat([w.reshape(-1) for w in weights(attacked.model)])
    assert float((flat == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    moved = any(not torch.equal(a, b) for a, b in zip(weights(attacked.model), weights(stolen)))
    assert moved  # the surviving weights were trained


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantisation_uses_at_most_2_to_the_bits_minus_1_levels(task: Task, bits: int) -> None:
    model = task.new_model(1)
    original = weights(model)
    quantize_weights(model, bits)
    for before, after in zip(original, weights(model)):
        levels = torch.unique(after)
        assert len(levels) <= 2**bits - 1
        scale = float(before.abs().max()) / (2 ** (bits - 1) - 1)
        assert float((after - before).abs().max()) <= scale / 2 + 1e-6


def test_int8_barely_moves_the_weights(task: Task) -> None:
    model = task.new_model(1)
    original = weights(model)
    quantize_weights(model, 8)
    for before, after in zip(original, weights(model)):
        assert float((after - before).abs().max()) <= float(before.abs().max()) / 254 + 1e-7


def test_input_noise_is_seeded_per_query(task: Task, thief: ThiefData) -> None:
    stolen = task.new_model(1)
    noisy = apply_attack("input_noise", stolen, thief, 2.0)
    first = noisy.answer(task, task.test_inputs)
    assert np.array_equal(first, noisy.answer(task, task.test_inputs))
    clean = AttackedModel(stolen).answer(task, task.test_inputs)
    assert not np.array_equal(first, clean)  # noise of std 2 changes some answers


def test_distillation_reports_its_queries_and_starts_from_another_model(
    task: Task, thief: ThiefData
) -> None:
    stolen = task.new_model(1)
    attacked = apply_attack("distill", stolen, thief, 0.01)
    assert attacked.extra["queries"] == len(thief.inputs)


def test_overwriting_reports_the_thiefs_own_watermark(task: Task, thief: ThiefData) -> None:
    attacked = apply_attack("overwrite", task.new_model(1), thief, 1e-3)
    assert 0.0 <= attacked.extra["thief_watermark_accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("name", "strength"),
    [
        ("prune", 1.0),
        ("prune", -0.1),
        ("quantize", 1),
        ("quantize", 4.5),
        ("finetune_all", 0.0),
        ("input_noise", -1.0),
        ("distill", 0.0),
        ("overwrite", float("nan")),
    ],
)
def test_strengths_out_of_range_are_refused(
    name: str, strength: float, task: Task, thief: ThiefData
) -> None:
    with pytest.raises(EncodingError):
        apply_attack(name, task.new_model(1), thief, strength)


def test_unknown_attack_is_refused(task: Task, thief: ThiefData) -> None:
    with pytest.raises(EncodingError, match="unknown attack"):
        apply_attack("sharpie", task.new_model(1), thief, 1.0)
