"""Mixing trigger samples into an owner's own training loop.

Embedding a watermark is ordinary training on clean batches that each carry
a few trigger samples. How many matters: on the digits example about 8
triggers per batch of 64 reach 100 % trigger accuracy with no measurable cost
in clean accuracy (``benchmarks/digits_embedding.py``), where 2 per batch
reach only about half. :class:`TriggerMixer` appends a fixed number to each
batch, walking through the set in shuffled passes so that every trigger is
seen equally often; :func:`mixed_batches` wraps a loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from secmark.embed.dataset import TriggerDataset
from secmark.errors import EncodingError

__all__ = ["DEFAULT_PER_BATCH", "TriggerMixer", "batch_pairs", "mixed_batches"]

DEFAULT_PER_BATCH = 8
"""Triggers appended to each clean batch: enough for a 256-trigger set to be
learnt fully alongside batches of 64 (2 per batch is not)."""


class TriggerMixer:
    """Appends ``per_batch`` trigger samples to each clean batch.

    Triggers are taken in a random order drawn from ``generator``; when every
    trigger has been taken once, a fresh order is drawn. So over ``b``
    batches each trigger is used ``floor`` or ``ceil`` of
    ``b * per_batch / N`` times. The same generator state gives the same
    sequence.

    ``generator`` must be a CPU generator; the mixer owns it from here on.
    Without one, a generator seeded with 0 is used, so runs still repeat.

    Raises:
        EncodingError: ``per_batch`` is below 1.
    """

    def __init__(
        self,
        triggers: TriggerDataset,
        *,
        per_batch: int = DEFAULT_PER_BATCH,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(per_batch, bool) or not isinstance(per_batch, int) or per_batch < 1:
            raise EncodingError(f"per_batch must be a positive integer, not {per_batch!r}")
        self._triggers = triggers
        self._per_batch = per_batch
        self._generator = torch.Generator().manual_seed(0) if generator is None else generator
        self._order = torch.empty(0, dtype=torch.int64)
        self._position = 0

    @property
    def per_batch(self) -> int:
        """Trigger samples appended to each batch."""
        return self._per_batch

    @property
    def triggers(self) -> TriggerDataset:
        """The trigger set being mixed in."""
        return self._triggers

    def next_indices(self) -> torch.Tensor:
        """The indices of the next ``per_batch`` triggers, advancing the order."""
        taken: list[torch.Tensor] = []
        wanted = self._per_batch
        while wanted:
            if self._position == len(self._order):
                self._order = torch.randperm(len(self._triggers), generator=self._generator)
                self._position = 0
            step = min(wanted, len(self._order) - self._position)
            taken.append(self._order[self._position : self._position + step])
            self._position += step
            wanted -= step
        return taken[0] if len(taken) == 1 else torch.cat(taken)

    def mix(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` and ``targets`` with the next ``per_batch`` triggers appended.

        The triggers are placed after the clean samples, on the device, in
        the dtypes and with the memory layout of the clean batch. The batch's
        loss is then an average over clean and trigger samples alike.

        Raises:
            EncodingError: the clean inputs' per-sample shape differs from the
                triggers', or ``targets`` is not a 1-D integer tensor with one
                class per input.
        """
        shape = tuple(inputs.shape[1:])
        if shape != self._triggers.input_shape:
            raise EncodingError(
                f"clean inputs of shape {shape} cannot be mixed with triggers of shape "
                f"{self._triggers.input_shape}"
            )
        if (
            targets.ndim != 1
            or targets.shape[0] != inputs.shape[0]
            or targets.is_floating_point()
            or targets.is_complex()
        ):
            raise EncodingError(
                "targets must be a 1-D integer tensor of class indices, one per input; "
                f"got {targets.dtype} of shape {tuple(targets.shape)}"
            )
        chosen = self.next_indices()
        trigger_inputs = self._triggers.inputs[chosen].to(inputs.device, inputs.dtype)
        trigger_labels = self._triggers.labels[chosen].to(targets.device, targets.dtype)
        # Kernels choose their code path by memory layout (channels-last
        # pooling on the CPU is many times faster than NCHW), and torch.cat
        # falls back to the default layout when its inputs' layouts differ; so
        # the mixed batch is laid out sample by sample as the clean one is.
        sample = torch.empty_like(inputs[0] if len(inputs) else trigger_inputs[0])
        mixed = torch.empty_strided(
            (len(inputs) + len(trigger_inputs), *shape),
            (sample.numel(), *sample.stride()),
            dtype=inputs.dtype,
            device=inputs.device,
        )
        torch.cat((inputs, trigger_inputs), out=mixed)
        return mixed, torch.cat((targets, trigger_labels))


def mixed_batches(
    batches: Iterable[Any], mixer: TriggerMixer
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each ``(inputs, targets)`` batch of ``batches`` passed through ``mixer``.

    ``batches`` is typically a ``DataLoader``; each item must be a pair (a
    tuple or a list of two tensors), as a loader over a ``TensorDataset`` or
    a labelled image dataset yields. Iterate it once per epoch.

    Raises:
        EncodingError: an item is not a pair of tensors, or see
            :meth:`TriggerMixer.mix`.
    """
    for inputs, targets in batch_pairs(batches):
        yield mixer.mix(inputs, targets)


def batch_pairs(batches: Iterable[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each item of ``batches``, checked to be an ``(inputs, targets)`` pair.

    Raises:
        EncodingError: an item is not a tuple or list of two tensors.
    """
    for batch in batches:
        if (
            not isinstance(batch, (tuple, list))
            or len(batch) != 2
            or not all(isinstance(part, torch.Tensor) for part in batch)
        ):
            raise EncodingError("each batch must be a pair (inputs, targets) of tensors")
        yield batch[0], batch[1]
