"""Watermarking a digit classifier: scikit-learn's digits and a small CNN.

The data are the 1797 8x8 grayscale handwritten digits bundled with
scikit-learn (no download), scaled from 0..16 to [0, 1] and shaped
N x 1 x 8 x 8, split once and for all into 1437 training and 360 test
images, stratified by class. A trigger set for this model is the noise
family ``NoiseFamily((1, 8, 8), "float32", 0.0, 1.0)`` with
``ClassLabels(10)``: inputs in the same range as the images.

Typical use, with a trigger set derived from the owner's commitment::

    data = load_data()
    triggers = trigger_set(inputs, labels)   # the derived arrays
    model = new_model(seed=1)
    report = embed_watermark(model, data, triggers, seed=1)

Defaults are the recipe ``benchmarks/digits_embedding.py`` measures: about
3 s of training on one CPU thread, no measurable clean-accuracy cost, and all
256 triggers of a set learnt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from secmark.embed import (
    DEFAULT_PER_BATCH,
    EmbedReport,
    TriggerDataset,
    embed,
    train,
)
from secmark.errors import EncodingError

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "SPLIT_SEED",
    "TEST_SIZE",
    "DigitsCNN",
    "DigitsData",
    "embed_watermark",
    "forward_state",
    "load_data",
    "new_model",
    "noise_triggers",
    "train_clean",
    "train_loader",
    "training_data",
    "trigger_set",
]

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
TEST_SIZE = 360
"""Test images: a fifth of the data, so one image is 0.28 percentage points."""
SPLIT_SEED = 0
"""Seed of the train/test split. Fixed: every model here sees the same split."""
BATCH_SIZE = 64
DEFAULT_EPOCHS = 50
DEFAULT_LR = 2e-3
"""Adam's learning rate. At 1e-3 fifty epochs left 10-25 % of a 256-trigger
set unlearnt; 2e-3 learns it fully at the same clean accuracy."""

_PIXEL_MAX = 16.0
"""The digits' pixel values are integers 0..16."""


@dataclass(frozen=True)
class DigitsData:
    """The split digits: float32 inputs N x 1 x 8 x 8 in [0, 1], int64 labels."""

    train_inputs: np.ndarray
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, labels)`` of the test split, as evaluation functions take them."""
        return self.test_inputs, self.test_labels


def load_data() -> DigitsData:
    """The digits, scaled and split deterministically (the same arrays every call).

    Raises:
        ImportError: scikit-learn is not installed.
    """
    # Imported here so that the model and loaders are usable without scikit-learn.
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "the digits example needs scikit-learn: pip install scikit-learn"
        ) from error
    digits = load_digits()
    images = (digits.images / _PIXEL_MAX).astype(np.float32)[:, np.newaxis]
    labels = digits.target.astype(np.int64)
    train_inputs, test_inputs, train_labels, test_labels = train_test_split(
        images, labels, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED
    )
    return DigitsData(train_inputs, train_labels, test_inputs, test_labels)


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions (16 and 32 channels), a 2x2 max-pool, then 512 -> 64 -> 10.

    Takes N x 1 x 8 x 8 inputs and returns N x 10 logits; about 38 000 weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, NUM_CLASSES),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(inputs))
        return logits


def forward_state(state: dict[str, np.ndarray], inputs: torch.Tensor) -> torch.Tensor:
    """The logits a :class:`DigitsCNN` state dict of numpy arrays gives, for
    any numbers of channels and hidden units (a rearranged model may have
    more than the class does). No parameter is trained."""
    tensors = {name: torch.from_numpy(np.asarray(value)) for name, value in state.items()}
    hidden = nn.functional.relu(
        nn.functional.conv2d(
            inputs, tensors["features.0.weight"], tensors["features.0.bias"], padding=1
        )
    )
    hidden = nn.functional.relu(
        nn.functional.conv2d(
            hidden, tensors["features.2.weight"], tensors["features.2.bias"], padding=1
        )
    )
    hidden = nn.functional.max_pool2d(hidden, 2).flatten(1)
    hidden = nn.functional.relu(
        nn.functional.linear(hidden, tensors["classifier.1.weight"], tensors["classifier.1.bias"])
    )
    logits: torch.Tensor = nn.functional.linear(
        hidden, tensors["classifier.3.weight"], tensors["classifier.3.bias"]
    )
    return logits


def new_model(seed: int) -> DigitsCNN:
    """A freshly initialised :class:`DigitsCNN`, the same for the same seed.

    Torch's global generator is seeded for the initialisation and restored
    afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsCNN()


def train_loader(
    data: DigitsData, *, seed: int, batch_size: int = BATCH_SIZE
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """Shuffled training batches, in an order fixed by ``seed``.

    Each batch is cut from the tensors in one indexing step rather than
    collated from single samples: on data this small, per-sample loading
    would take longer than the training itself.
    """
    dataset = TensorDataset(
        torch.from_numpy(data.train_inputs), torch.from_numpy(data.train_labels)
    )
    order = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset,
        sampler=BatchSampler(order, batch_size=batch_size, drop_last=False),
        batch_size=None,
    )


def training_data(
    seed: int = 0,
) -> tuple[DataLoader[tuple[torch.Tensor, ...]], tuple[np.ndarray, np.ndarray]]:
    """``(train loader, test (inputs, labels))``: what :func:`secmark.embed.embed`
    takes as ``train_loader`` and ``holdout``, in the form the command line's
    ``secmark embed --data secmark.examples.digits:training_data`` loads."""
    data = load_data()
    return train_loader(data, seed=seed), data.test


def train_clean(
    model: nn.Module,
    data: DigitsData,
    *,
    seed: int,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> float:
    """Train ``model`` on the digits without triggers; returns the training seconds.

    The unmarked baseline, and the innocent models of a false-claim check.
    """
    return train(
        model,
        train_loader(data, seed=seed),
        epochs=epochs,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
    )


def embed_watermark(
    model: nn.Module,
    data: DigitsData,
    triggers: TriggerDataset,
    *,
    seed: int,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    per_batch: int = DEFAULT_PER_BATCH,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> EmbedReport:
    """Train ``model`` on the digits with ``triggers`` mixed in; the report
    measures clean accuracy on the test split. See :func:`secmark.embed.embed`."""
    return embed(
        model,
        train_loader(data, seed=seed),
        triggers,
        epochs=epochs,
        lr=lr,
        seed=seed,
        per_batch=per_batch,
        device=device,
        holdout=data.test,
        progress=progress,
    )


def trigger_set(inputs: np.ndarray, labels: np.ndarray) -> TriggerDataset:
    """Wrap derived trigger arrays for this model, checking they fit it.

    Raises:
        EncodingError: inputs are not N x 1 x 8 x 8 floats in [0, 1], or a
            label is not one of the 10 classes (or see :class:`TriggerDataset`).
    """
    if not isinstance(inputs, np.ndarray) or inputs.shape[1:] != IMAGE_SHAPE:
        shape = inputs.shape if isinstance(inputs, np.ndarray) else type(inputs).__name__
        raise EncodingError(f"digits triggers must have shape (N, 1, 8, 8), not {shape}")
    triggers = TriggerDataset(inputs, labels, num_classes=NUM_CLASSES)
    if triggers.inputs.min() < 0.0 or triggers.inputs.max() > 1.0:
        raise EncodingError("digits triggers must lie in [0, 1], the range of the images")
    return triggers


def noise_triggers(count: int, *, seed: int) -> TriggerDataset:
    """``count`` uniform-noise inputs with uniform labels from a seeded numpy generator.

    A stand-in with no evidential value, for exercising embedding: anyone
    who knows the seed knows the set, and nothing binds it to a commitment.
    Real trigger sets come from the owner's commitment via
    ``secmark.triggers``.
    """
    rng = np.random.default_rng(seed)
    inputs = rng.random((count, *IMAGE_SHAPE), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=count, dtype=np.int64)
    return trigger_set(inputs, labels)
