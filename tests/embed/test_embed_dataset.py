"""TriggerDataset: what it accepts, what it refuses, and what it yields."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from secmark.embed import TriggerDataset
from secmark.errors import EncodingError


def noise(count: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((count, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, count)


def test_items_are_float32_inputs_and_int64_labels() -> None:
    inputs, labels = noise()
    triggers = TriggerDataset(inputs, labels.astype(np.uint8), num_classes=10)
    assert len(triggers) == 4
    assert triggers.input_shape == (1, 8, 8)
    assert triggers.num_classes == 10
    x, y = triggers[2]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8)
    assert y.dtype == torch.int64 and y.shape == ()
    assert np.array_equal(x.numpy(), inputs[2]) and int(y) == labels[2]


def test_the_arrays_are_copied() -> None:
    inputs, labels = noise()
    triggers = TriggerDataset(inputs, labels)
    inputs[0] = 5.0
    labels[0] = 9 if labels[0] != 9 else 8
    assert float(triggers.inputs[0].max()) <= 1.0
    assert int(triggers.labels[0]) != labels[0]


def test_float64_inputs_are_stored_as_float32() -> None:
    inputs, labels = noise()
    assert TriggerDataset(inputs.astype(np.float64), labels).inputs.dtype == torch.float32


@pytest.mark.parametrize(
    ("inputs", "labels", "message"),
    [
        (np.zeros((4, 8), dtype=np.uint8), np.zeros(4, dtype=np.int64), "float"),
        (np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.int64), "shape"),
        (np.zeros((0, 8), dtype=np.float32), np.zeros(0, dtype=np.int64), "N >= 1"),
        (np.full((4, 8), np.nan, dtype=np.float32), np.zeros(4, dtype=np.int64), "NaN"),
        (np.zeros((4, 8), dtype=np.float32), np.zeros(4, dtype=np.float32), "integer"),
        (np.zeros((4, 8), dtype=np.float32), np.zeros((4, 1), dtype=np.int64), "1-D"),
        (np.zeros((4, 8), dtype=np.float32), np.zeros(3, dtype=np.int64), "3 labels"),
        (np.zeros((4, 8), dtype=np.float32), np.array([0, 1, -1, 2]), "negative"),
        (np.zeros((2, 8), dtype=np.float32), np.array([1, 2**64 - 1], dtype=np.uint64), "above"),
        ([[0.0] * 8] * 4, np.zeros(4, dtype=np.int64), "numpy arrays"),
    ],
)
def test_malformed_arrays_are_refused(inputs: Any, labels: Any, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        TriggerDataset(inputs, labels)


def test_labels_must_lie_in_the_label_space() -> None:
    inputs, _ = noise()
    with pytest.raises(EncodingError, match="above the largest, 9"):
        TriggerDataset(inputs, np.array([0, 3, 10, 9]), num_classes=10)
    with pytest.raises(EncodingError, match="at least 2"):
        TriggerDataset(inputs, np.zeros(4, dtype=np.int64), num_classes=1)


def test_validation_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        TriggerDataset(np.zeros((1, 2), dtype=np.int32), np.zeros(1, dtype=np.int64))
