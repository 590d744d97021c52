"""Training and answering for every task: the owner's embedding and the thief's
retraining go through here.

Classification trains with :func:`secmark.embed.embed` (triggers mixed into
every batch) or :func:`secmark.embed.train` (clean batches only), so the
evaluation measures the library's own embedding. Regression has no loop in
``secmark.embed`` (it is written for cross-entropy), so :func:`fit` runs the
same recipe with a squared-error loss here: Adam, shuffled batches in an order
fixed by the seed, ``per_batch`` triggers appended to each batch in shuffled
passes over the set, and Gaussian noise of the recipe's ``input_noise`` on
the clean inputs. Everything runs on the CPU, seeded and repeatable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from secmark.embed import TriggerDataset, embed, predict_labels, train
from secmark.errors import EncodingError, SecmarkError
from secmark.evaluate.datasets import Recipe, Task, perturb
from secmark.evaluate.triggers import TriggerData

__all__ = ["answers", "batches", "fit", "fit_by_recipe"]

_DEVICE = "cpu"
_ANSWER_BATCH = 1024
_AUGMENT_SALT = 0x6175_676D
"""Separates the clean copies' perturbation draw from every other use of a seed."""


def batches(
    inputs: np.ndarray, targets: np.ndarray, *, batch_size: int, seed: int
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """Shuffled ``(inputs, targets)`` batches in an order fixed by ``seed``,
    cut in one indexing step each (see :func:`secmark.examples.digits.train_loader`)."""
    dataset = TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
    order = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset,
        sampler=BatchSampler(order, batch_size=batch_size, drop_last=False),
        batch_size=None,
    )


def _trigger_order(count: int, generator: torch.Generator) -> Iterator[int]:
    """Trigger indices in shuffled passes over the set, without end."""
    while True:
        yield from torch.randperm(count, generator=generator).tolist()


def _fit_regression(
    task: Task,
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    triggers: TriggerData | None,
    *,
    epochs: int,
    lr: float,
    seed: int,
    per_batch: int,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    order = None if triggers is None else _trigger_order(len(triggers), generator)
    trigger_inputs = None if triggers is None else torch.from_numpy(triggers.inputs)
    trigger_labels = (
        None if triggers is None else torch.from_numpy(triggers.labels.astype(np.float32))
    )
    scale = float(task.target_scale) ** 2
    noise = task.recipe.input_noise
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(1, epochs + 1):
        loss_sum = 0.0
        for inputs, targets in loader:
            if noise > 0:
                inputs = inputs + noise * torch.randn(inputs.shape, generator=generator)
            if order is not None and trigger_inputs is not None and trigger_labels is not None:
                chosen = torch.tensor([next(order) for _ in range(per_batch)])
                inputs = torch.cat([inputs, trigger_inputs[chosen]])
                targets = torch.cat([targets, trigger_labels[chosen]])
            optimiser.zero_grad(set_to_none=True)
            loss = ((model(inputs) - targets) ** 2).mean() / scale
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach())
        if not np.isfinite(loss_sum):
            raise SecmarkError(
                f"training diverged (loss {loss_sum}) in epoch {epoch}; lower the learning rate"
            )
    model.eval()


def fit(
    task: Task,
    model: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    lr: float,
    seed: int,
    triggers: TriggerData | None = None,
    per_batch: int = 0,
) -> float:
    """Train ``model`` in place on ``(inputs, targets)`` with Adam; returns the seconds.

    With ``triggers``, ``per_batch`` of them are appended to every batch
    (embedding); without, the batches are clean (fine-tuning, distillation).
    Parameters with ``requires_grad`` false are left as they are. Batches
    have the task recipe's size. The model ends in eval mode on the CPU.

    Raises:
        EncodingError: a bad recipe (see :func:`secmark.embed.embed`),
            triggers with ``per_batch`` below 1, or clean-input noise asked
            of a classification task (``secmark.embed`` has none).
        SecmarkError: training diverged.
    """
    if triggers is not None and per_batch < 1:
        raise EncodingError(f"per_batch must be at least 1 with triggers, not {per_batch}")
    if task.kind == "classification" and task.recipe.input_noise:
        raise EncodingError("clean-input noise is implemented for regression tasks only")
    loader = batches(inputs, targets, batch_size=task.recipe.batch_size, seed=seed)
    started = time.perf_counter()
    if task.kind == "classification":
        if triggers is None:
            train(model, loader, epochs=epochs, lr=lr, seed=seed, device=_DEVICE, progress=False)
        else:
            trigger_set = TriggerDataset(
                triggers.inputs,
                triggers.labels,
                num_classes=task.labels.num_classes,  # type: ignore[union-attr]
            )
            embed(
                model,
                loader,
                trigger_set,
                epochs=epochs,
                lr=lr,
                seed=seed,
                per_batch=per_batch,
                device=_DEVICE,
                progress=False,
            )
    else:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise EncodingError(f"epochs must be a positive integer, not {epochs!r}")
        if not lr > 0:
            raise EncodingError(f"lr must be positive, not {lr!r}")
        model.to(_DEVICE)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _fit_regression(
                task, model, loader, triggers, epochs=epochs, lr=lr, seed=seed, per_batch=per_batch
            )
    return time.perf_counter() - started


def fit_by_recipe(
    task: Task,
    model: nn.Module,
    seed: int,
    triggers: TriggerData | None = None,
    *,
    recipe: Recipe | None = None,
) -> float:
    """:func:`fit` on the task's whole training set with ``recipe`` (default
    the task's): its epochs, learning rate and, with ``triggers``, triggers
    per batch; returns the seconds. With ``recipe.augment``, the clean set
    also holds that many perturbed copies of every training input with its
    label (:func:`secmark.evaluate.datasets.perturb`, drawn from
    ``default_rng([seed, salt])``: the same copies for the unmarked and the
    watermarked model of a seed).

    Raises:
        EncodingError, SecmarkError: as :func:`fit`.
    """
    chosen = task.recipe if recipe is None else recipe
    inputs, targets = task.train_inputs, task.train_targets
    if chosen.augment:
        rng = np.random.default_rng([seed, _AUGMENT_SALT])
        inputs = np.concatenate([inputs, perturb(task, inputs, chosen.augment, rng)])
        targets = np.concatenate([targets, np.repeat(targets, chosen.augment, axis=0)])
    return fit(
        replace(task, recipe=chosen),
        model,
        inputs,
        targets,
        epochs=chosen.epochs,
        lr=chosen.lr,
        seed=seed,
        triggers=triggers,
        per_batch=chosen.per_batch if triggers is not None else 0,
    )


def answers(task: Task, model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The model's answers: int64 classes (argmax) or float64 values."""
    if task.kind == "classification":
        return predict_labels(model, inputs, device=_DEVICE)
    model.to(_DEVICE)
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad():
        data = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        for start in range(0, len(data), _ANSWER_BATCH):
            outputs.append(model(data[start : start + _ANSWER_BATCH]).double().numpy())
    model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.float64)
