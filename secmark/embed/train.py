"""Embedding a trigger set into a classifier by training, and measuring it.

:func:`embed` trains a model (freshly initialised, or already trained and
being fine-tuned) on the owner's clean batches with triggers mixed in, and
reports clean and watermark accuracy before and after. :func:`train` is the
same loop without triggers, for baselines. Both are reproducible: the same
seed, data order, model initialisation and device give the same weights.

Training is plain cross-entropy on the model's logits; a model whose output
is not ``(batch, classes)`` logits needs its own loop, for which
:class:`~secmark.embed.mixing.TriggerMixer` is the building block.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from secmark.embed.dataset import TriggerDataset
from secmark.embed.mixing import (
    DEFAULT_PER_BATCH,
    TriggerMixer,
    batch_pairs,
    mixed_batches,
)
from secmark.errors import EncodingError, SecmarkError

__all__ = [
    "OPTIMIZERS",
    "EmbedReport",
    "EvaluationData",
    "Regularizer",
    "embed",
    "evaluate_accuracy",
    "predict_labels",
    "reproducible",
    "resolve_device",
    "train",
    "watermark_accuracy",
]

OPTIMIZERS = ("adam", "sgd")
"""Optimisers :func:`embed` and :func:`train` build: Adam, or SGD with
momentum 0.9."""

_SGD_MOMENTUM = 0.9
_EVALUATION_BATCH = 1024
"""Inputs per forward pass when evaluating: bounds memory, not results."""
_MAX_SEED = 2**63 - 1
# cuBLAS is only deterministic with one of these workspace settings, read
# when the process first uses it; torch raises mid-training without one.
_CUBLAS_DETERMINISTIC_WORKSPACES = (":4096:8", ":16:8")

Optimizer = Literal["adam", "sgd"]
Regularizer = Callable[[], torch.Tensor]
"""A loss term added to every training step's cross-entropy, such as a
:class:`~secmark.embed.weights.WeightsRegularizer` (a white-box watermark)."""

EvaluationData = tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor] | Iterable[Any]
"""Labelled data to evaluate on: a pair ``(inputs, labels)`` of arrays or
tensors, or an iterable of ``(inputs, labels)`` batches such as a loader."""


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed` did and what it achieved.

    Accuracies are fractions in [0, 1]. Watermark accuracy is over all N
    triggers; an unmarked model scores about 1/K there. ``seconds`` is the
    training loop alone, without the evaluations around it.

    Attributes:
        triggers: N, the size of the trigger set.
        per_batch: triggers appended to each clean batch.
        epochs: passes over the clean training data.
        seconds: wall-clock time of the training loop.
        device: where it trained, e.g. "cpu" or "cuda:0".
        watermark_accuracy_before: trigger accuracy of the model as given.
        watermark_accuracy_after: trigger accuracy after embedding.
        clean_accuracy_before: held-out accuracy as given; None without a
            held-out set.
        clean_accuracy_after: held-out accuracy after embedding; None without
            a held-out set.
    """

    triggers: int
    per_batch: int
    epochs: int
    seconds: float
    device: str
    watermark_accuracy_before: float
    watermark_accuracy_after: float
    clean_accuracy_before: float | None
    clean_accuracy_after: float | None

    @property
    def clean_accuracy_drop(self) -> float | None:
        """Held-out accuracy lost to embedding (negative if it rose)."""
        if self.clean_accuracy_before is None or self.clean_accuracy_after is None:
            return None
        return self.clean_accuracy_before - self.clean_accuracy_after


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch device; None picks CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode without gradients, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _as_tensor(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    return values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))


def _predict(model: nn.Module, inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Predicted classes for one batch, on ``device``; the model is already in eval mode."""
    logits = model(inputs.to(device))
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(inputs):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise EncodingError(
            f"the model must return logits of shape ({len(inputs)}, classes), not {shape}"
        )
    return logits.argmax(dim=1)


def predict_labels(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    *,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The model's predicted class for each input, as an int64 array.

    ``inputs`` are fed as they are (the caller converts dtypes). ``device``
    None runs where the model's parameters are; a device given moves the
    model there. The model's train/eval mode is restored afterwards.

    Raises:
        EncodingError: the model does not return (batch, classes) logits.
    """
    target = _model_device(model) if device is None else torch.device(device)
    model.to(target)
    data = _as_tensor(inputs)
    predictions: list[torch.Tensor] = []
    with _evaluating(model):
        for start in range(0, len(data), _EVALUATION_BATCH):
            batch = data[start : start + _EVALUATION_BATCH]
            predictions.append(_predict(model, batch, target).cpu())
    if not predictions:
        return np.zeros(0, dtype=np.int64)
    return torch.cat(predictions).numpy().astype(np.int64, copy=False)


def evaluate_accuracy(
    model: nn.Module, data: EvaluationData, *, device: torch.device | str | None = None
) -> float:
    """The fraction of ``data`` the model classifies correctly.

    ``data`` is ``(inputs, labels)`` arrays or tensors, or an iterable of
    such batches. ``device`` as for :func:`predict_labels`.

    Raises:
        EncodingError: there are no samples, inputs and labels differ in
            length, a batch is not a pair of tensors, or the model does not
            return (batch, classes) logits.
    """
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(part, (np.ndarray, torch.Tensor)) for part in data)
    ):
        inputs, labels = data
        if len(inputs) != len(labels):
            raise EncodingError(f"{len(inputs)} inputs but {len(labels)} labels")
        if len(labels) == 0:
            raise EncodingError("no samples to evaluate on")
        predicted = predict_labels(model, inputs, device=device)
        return float(np.mean(predicted == _as_tensor(labels).cpu().numpy()))
    target = _model_device(model) if device is None else torch.device(device)
    model.to(target)
    correct = 0
    total = 0
    with _evaluating(model):
        for batch_inputs, batch_labels in batch_pairs(data):
            if len(batch_inputs) != len(batch_labels):
                raise EncodingError(
                    f"a batch of {len(batch_inputs)} inputs has {len(batch_labels)} labels"
                )
            batch_predicted = _predict(model, batch_inputs, target)
            correct += int((batch_predicted == batch_labels.to(target)).sum())
            total += len(batch_labels)
    if total == 0:
        raise EncodingError("no samples to evaluate on")
    return correct / total


def watermark_accuracy(
    model: nn.Module, triggers: TriggerDataset, *, device: torch.device | str | None = None
) -> float:
    """The fraction of all N triggers on which the model answers the secret label.

    ``device`` as for :func:`predict_labels`.
    """
    return evaluate_accuracy(model, (triggers.inputs, triggers.labels), device=device)


def _check_recipe(epochs: int, lr: float, optimizer: str, seed: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise EncodingError(f"epochs must be a positive integer, not {epochs!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise EncodingError(f"lr must be a positive finite number, not {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise EncodingError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise EncodingError(f"seed must be an integer in [0, 2^63), not {seed!r}")


@contextmanager
def reproducible(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's generators and require deterministic kernels inside the
    block, and put the caller's generator states and settings back after.

    The seeded global generator is what a caller's ``DataLoader(shuffle=True)``
    without its own generator, dropout and lazily initialised layers draw from.
    """
    if device.type == "cuda" and (
        os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in _CUBLAS_DETERMINISTIC_WORKSPACES
    ):
        raise SecmarkError(
            "reproducible training on CUDA needs CUBLAS_WORKSPACE_CONFIG=:4096:8 in the "
            "environment before the process starts; set it, or pass deterministic=False"
        )
    # manual_seed reseeds every CUDA device once CUDA is in use, so fork them all.
    cuda_devices = (
        list(range(torch.cuda.device_count()))
        if device.type == "cuda" or torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
        else []
    )
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        # Benchmark mode times candidate kernels and may pick another one next run.
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.benchmark = benchmark


def _make_optimizer(model: nn.Module, optimizer: str, lr: float) -> torch.optim.Optimizer:
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=_SGD_MOMENTUM)


def _fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    mixer: TriggerMixer | None,
    *,
    epochs: int,
    lr: float,
    optimizer: str,
    device: torch.device,
    progress: bool,
    description: str,
    regularizer: Regularizer | None = None,
) -> float:
    """The training loop of :func:`train` and :func:`embed`; returns its seconds."""
    step = _make_optimizer(model, optimizer, lr)
    model.train()
    started = time.perf_counter()
    with tqdm(
        total=epochs, desc=description, unit="epoch", file=sys.stderr, disable=not progress
    ) as bar:
        for epoch in range(1, epochs + 1):
            batches = (
                batch_pairs(train_loader) if mixer is None else mixed_batches(train_loader, mixer)
            )
            loss_sum = torch.zeros((), device=device)
            count = 0
            for inputs, targets in batches:
                inputs, targets = inputs.to(device), targets.to(device)
                step.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(inputs), targets)
                if regularizer is not None:
                    loss = loss + regularizer()
                loss.backward()  # type: ignore[no-untyped-call]
                step.step()
                loss_sum += loss.detach()
                count += 1
            if count == 0:
                raise EncodingError("the training loader yielded no batches")
            # One host sync per epoch: checking every batch would stall a GPU.
            mean_loss = loss_sum.item() / count
            if not math.isfinite(mean_loss):
                raise SecmarkError(
                    f"training diverged (loss {mean_loss}) in epoch {epoch}; lower the learning rate"
                )
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            bar.update()
    seconds = time.perf_counter() - started
    model.eval()
    return seconds


def train(
    model: nn.Module,
    train_loader: Iterable[Any],
    *,
    epochs: int,
    lr: float,
    seed: int,
    optimizer: Optimizer = "adam",
    device: torch.device | str | None = None,
    deterministic: bool = True,
    progress: bool = True,
    regularizer: Regularizer | None = None,
) -> float:
    """Train ``model`` on clean batches only; the loop :func:`embed` runs, without triggers.

    For baselines: an unmarked model to compare clean accuracy and training
    time with, or the innocent models of a false-claim check. Arguments as
    for :func:`embed`. Returns the seconds the training loop took.
    """
    _check_recipe(epochs, lr, optimizer, seed)
    target = resolve_device(device)
    model.to(target)
    with reproducible(seed, target) if deterministic else nullcontext():
        return _fit(
            model,
            train_loader,
            None,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            device=target,
            progress=progress,
            description="training",
            regularizer=regularizer,
        )


def embed(
    model: nn.Module,
    train_loader: Iterable[Any],
    triggers: TriggerDataset,
    *,
    epochs: int,
    lr: float,
    seed: int,
    optimizer: Optimizer = "adam",
    per_batch: int = DEFAULT_PER_BATCH,
    device: torch.device | str | None = None,
    holdout: EvaluationData | None = None,
    deterministic: bool = True,
    progress: bool = True,
    regularizer: Regularizer | None = None,
) -> EmbedReport:
    """Train ``model`` so that it answers the secret label on every trigger.

    Each batch of ``train_loader`` (an iterable of ``(inputs, targets)``
    pairs, iterated once per epoch) gets ``per_batch`` triggers appended by a
    :class:`~secmark.embed.mixing.TriggerMixer`, and the model takes one
    optimiser step on the cross-entropy of the mixed batch. The model may be
    freshly initialised or already trained (fine-tuning then needs a smaller
    ``lr``). It is moved to ``device`` (None: CUDA if available, else CPU),
    trained in place and left there in eval mode.

    With ``deterministic`` (the default), the run is seeded from ``seed``
    (torch's global generators, used by a loader that shuffles without its
    own generator, and the mixer's order) and deterministic kernels are
    required; the caller's generator states and settings are restored
    afterwards. The same seed, model initialisation and data then give the
    same weights on the same device and library versions. The caller still
    has to initialise the model reproducibly.

    ``regularizer``, when given, is called at every step and its value
    added to the loss: a white-box watermark
    (:class:`~secmark.embed.weights.WeightsRegularizer`) embedded in the
    same run.

    The report measures watermark accuracy on all N triggers and, when
    ``holdout`` is given, clean accuracy on it, before and after. Check it:
    a watermark is only evidence if ``watermark_accuracy_after`` is high.

    Raises:
        EncodingError: a bad recipe (epochs < 1, lr not positive, unknown
            optimiser, seed outside [0, 2^63), per_batch < 1), a loader item
            that is not a pair of tensors, a batch whose inputs do not have
            the triggers' shape, an empty loader, or a model that does not
            return (batch, classes) logits.
        SecmarkError: training diverged (non-finite loss), or
            ``deterministic`` on CUDA without ``CUBLAS_WORKSPACE_CONFIG``.
    """
    _check_recipe(epochs, lr, optimizer, seed)
    target = resolve_device(device)
    model.to(target)
    mixer = TriggerMixer(
        triggers, per_batch=per_batch, generator=torch.Generator().manual_seed(seed)
    )
    clean_before = None if holdout is None else evaluate_accuracy(model, holdout)
    watermark_before = watermark_accuracy(model, triggers)
    with reproducible(seed, target) if deterministic else nullcontext():
        seconds = _fit(
            model,
            train_loader,
            mixer,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            device=target,
            progress=progress,
            description="embedding",
            regularizer=regularizer,
        )
    return EmbedReport(
        triggers=len(triggers),
        per_batch=per_batch,
        epochs=epochs,
        seconds=seconds,
        device=str(target),
        watermark_accuracy_before=watermark_before,
        watermark_accuracy_after=watermark_accuracy(model, triggers),
        clean_accuracy_before=clean_before,
        clean_accuracy_after=None if holdout is None else evaluate_accuracy(model, holdout),
    )
