"""The evaluation tasks and their derived trigger sets."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.evaluate import TASK_NAMES, derive_triggers, load_task
from secmark.messages.labels import RegressionLabels


@pytest.mark.parametrize("name", TASK_NAMES)
def test_tasks_ship_with_scikit_learn_and_fit_their_models(name: str) -> None:
    task = load_task(name)
    assert task.train_inputs.dtype == np.float32 and task.test_inputs.dtype == np.float32
    assert task.challenges <= task.triggers
    model = task.new_model(1)
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(task.test_inputs[:3]))
    assert out.shape[0] == 3
    assert tuple(task.family.shape) == task.train_inputs.shape[1:]


def test_null_probabilities() -> None:
    assert load_task("digits").p0 == Fraction(1, 10)
    assert load_task("breast_cancer").p0 == Fraction(1, 2)
    diabetes = load_task("diabetes")
    assert isinstance(diabetes.labels, RegressionLabels)
    assert diabetes.p0 == Fraction(77, 512)  # specs/statistics.md 2.1


def test_regression_score_is_r_squared() -> None:
    task = load_task("diabetes")
    targets = task.test_targets.astype(np.float64)
    assert task.score(targets, targets) == 1.0
    assert task.score(np.full_like(targets, targets.mean()), targets) == pytest.approx(0.0)


def test_triggers_are_derived_per_role_and_seed_within_the_family_range() -> None:
    task = load_task("breast_cancer")
    owner = derive_triggers(task, role="owner", seed=1)
    assert owner.inputs.shape == (task.triggers, 30)
    assert owner.inputs.min() >= -2.0 and owner.inputs.max() < 2.0
    assert set(np.unique(owner.labels)) == {0, 1}
    assert np.array_equal(owner.inputs, derive_triggers(task, role="owner", seed=1).inputs)
    assert not np.array_equal(owner.inputs, derive_triggers(task, role="owner", seed=2).inputs)
    assert not np.array_equal(owner.inputs, derive_triggers(task, role="thief", seed=1).inputs)


def test_regression_labels_are_uniform_on_the_committed_range() -> None:
    labels = derive_triggers(load_task("diabetes"), role="owner", seed=1).labels
    assert labels.dtype == np.float64 and labels.min() >= 25.0 and labels.max() <= 346.0


def test_unknown_task_is_refused() -> None:
    with pytest.raises(EncodingError, match="unknown data set"):
        load_task("iris")
