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
from secmark.evaluate.attacks import (
    BackgroundDetector,
    DisagreementGate,
    RandomAnswerGate,
    ReconstructionDetector,
)
from secmark.evaluate.datasets import Task
from secmark.evaluate.harness import thief_share
from secmark.evaluate.models import weight_layers
from secmark.evaluate.training import answers


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
        ("ood_background", 0.6),
        ("ood_reconstruction", -0.01),
        ("disagreement_filter", 0.0),
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


@pytest.fixture(scope="module")
def digits() -> Task:
    from dataclasses import replace

    return replace(load_task("digits"), triggers=64)


@pytest.mark.parametrize("detector", [BackgroundDetector, ReconstructionDetector])
@pytest.mark.parametrize("share", [0.01, 0.02])
def test_ood_filters_flag_noise_triggers_and_few_real_digits(
    digits: Task, detector: type[BackgroundDetector | ReconstructionDetector], share: float
) -> None:
    own, _ = thief_share(digits, 0.5, seed=1)
    calibrated = detector.calibrate(own, share)
    # Calibration bound: at most floor(share * n) of the thief's own inputs.
    assert int(calibrated.flags(own).sum()) <= int(share * len(own))
    assert float(calibrated.flags(digits.test_inputs).mean()) <= 0.05
    noise = derive_triggers(digits, role="owner", seed=1).inputs
    assert calibrated.flags(noise).all()


def test_the_background_is_the_most_common_value(digits: Task) -> None:
    own, _ = thief_share(digits, 0.5, seed=1)
    detector = BackgroundDetector.calibrate(own, 0.02)
    assert detector.background == 0.0 and 0 < detector.threshold < 1


def test_random_answers_replace_flagged_queries_only(digits: Task) -> None:
    own, _ = thief_share(digits, 0.5, seed=1)
    gate = RandomAnswerGate(BackgroundDetector.calibrate(own, 0.02), seed=1)
    noise = derive_triggers(digits, role="owner", seed=1).inputs
    queries = np.concatenate([digits.test_inputs, noise])
    model = digits.new_model(1)
    given = answers(digits, model, queries)
    served = gate(digits, queries, given)
    flagged = gate.flags(digits, queries, given)
    assert np.array_equal(served[~flagged], given[~flagged])
    assert set(served[flagged].tolist()) <= set(range(10))
    # The same query gets the same answer, wherever it stands in a batch.
    assert np.array_equal(gate(digits, noise[::-1], given[-64:][::-1]), served[-64:][::-1])
    # Random answers: about one in ten of the noise triggers keep the model's class.
    assert float(np.mean(served[-64:] == given[-64:])) < 0.4


def test_the_disagreement_filter_changes_answers_only_where_the_clean_model_disagrees(
    task: Task, thief: ThiefData
) -> None:
    stolen = task.new_model(3)
    attacked = apply_attack("disagreement_filter", stolen, thief, 0.05)
    gate = attacked.gate
    assert isinstance(gate, DisagreementGate)
    inputs = np.concatenate([task.test_inputs, thief.triggers.inputs])
    own = answers(task, stolen, inputs)
    theirs = answers(task, gate.clean, inputs)
    served = attacked.answer(task, inputs)
    differ = own != theirs
    assert differ.any() and not differ.all()
    assert np.array_equal(served[~differ], own[~differ])
    assert np.array_equal(served[differ], theirs[differ])
    holdout = answers(task, stolen, task.test_inputs) != answers(task, gate.clean, task.test_inputs)
    assert attacked.extra["replaced_holdout"] == pytest.approx(float(holdout.mean()))


def test_the_disagreement_filter_allows_the_tolerance_in_regression() -> None:
    from dataclasses import replace

    task = replace(load_task("diabetes"), triggers=16)
    clean = task.new_model(2)
    inputs = task.test_inputs
    theirs = answers(task, clean, inputs)
    tolerance = task.labels.tolerance  # type: ignore[union-attr]
    # The stolen model's answers: within the tolerance of the clean model's
    # on the even rows (an agreement), twice it away on the odd rows.
    offset = np.where(np.arange(len(inputs)) % 2 == 0, 0.5, 2.0) * tolerance
    given = theirs + offset
    served = DisagreementGate(clean)(task, inputs, given)
    assert np.array_equal(served[0::2], given[0::2])
    assert np.allclose(served[1::2], theirs[1::2])
