"""A suspect that is an in-process ``torch.nn.Module``.

This is the only module of :mod:`secmark.models` that imports torch, and
:mod:`secmark.models` does not import it: an arbiter that only queries remote
endpoints installs secmark without torch (``pip install secmark[torch]`` adds
it for this adapter).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secmark.errors import SecmarkError, SuspectError
from secmark.models.base import (
    Output,
    check_answers,
    check_batch,
    check_batch_size,
    check_output,
    check_reference,
)
from secmark.models.reference import MAX_LABEL_LENGTH, arbiter_label

__all__ = ["DEFAULT_BATCH_SIZE", "TorchSuspect"]

DEFAULT_BATCH_SIZE = 256
"""Rows per forward pass: bounds the activation memory of one call."""

# Cut-off for the text of a module's exception quoted in a SuspectError.
_MAX_ERROR_TEXT = 200
_CHUNK = 1 << 20


def _file_reference(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise SuspectError(f"cannot read model file {path}: {error.strerror}") from None
    return "sha256:" + digest.hexdigest()


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _module_float_dtype(module: torch.nn.Module) -> torch.dtype:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _select_device(device: str | torch.device | None, module: torch.nn.Module) -> torch.device:
    if device is None:
        return _module_device(module)
    try:
        selected = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SuspectError(f"unknown torch device {device!r}") from exc
    if selected.type == "cuda" and not torch.cuda.is_available():
        raise SuspectError(f"torch device {device!r} was asked for but CUDA is not available")
    return selected


class TorchSuspect:
    """Query a ``torch.nn.Module`` the way a deployed model would be queried.

    Each call runs the module in eval mode (dropout off, batch-norm on its
    running statistics) under ``torch.no_grad()``, on consecutive slices of at
    most ``batch_size`` rows, and restores every submodule's train/eval mode
    afterwards.

    ``device``: ``None`` runs on the device the module's parameters are on
    (the CPU for a module without any), so nothing is copied; ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``... move the module there first, in place as
    ``module.to`` does. Asking for CUDA where it is not available is a
    SuspectError rather than a silent fallback to the CPU.

    ``input_dtype``: the dtype inputs are converted to; by default the dtype
    of the module's floating-point parameters (``float32`` for most models,
    so a ``uint8`` image batch arrives as floats with the same values). Pass
    ``torch.int64`` for a model that takes token ids.

    ``output`` (see :mod:`secmark.models.base`): ``"argmax"`` for a
    classifier returning logits or probabilities (the default), ``"labels"``
    for a module returning integer labels or token ids, ``"values"`` for a
    regressor. The module must return a single tensor with one row per input.

    ``describe()`` (the reference the arbiter binds to a claim): for a module
    built by :meth:`from_file`, ``sha256:<hex>`` of the weights file loaded
    into it; else ``reference`` when given, ``sha256:<hex>`` of the weights
    file the module holds as its builder states it; else
    ``label:torch <module>.<class name>``, which no claim can name.
    """

    __slots__ = ("_batch_size", "_device", "_input_dtype", "_module", "_output", "_reference")

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        device: str | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        output: Output = "argmax",
        input_dtype: torch.dtype | None = None,
        reference: str | None = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise SuspectError(
                f"a TorchSuspect needs a torch.nn.Module, got {type(module).__name__}"
            )
        self._batch_size = check_batch_size(batch_size)
        self._output = check_output(output)
        self._device = _select_device(device, module)
        if device is not None:
            module.to(self._device)
        self._module = module
        self._input_dtype = input_dtype if input_dtype is not None else _module_float_dtype(module)
        cls = type(module)
        self._reference = (
            arbiter_label(f"torch {cls.__module__}.{cls.__qualname__}"[:MAX_LABEL_LENGTH].strip())
            if reference is None
            else check_reference(reference)
        )

    @classmethod
    def from_file(
        cls, module: torch.nn.Module, path: str | os.PathLike[str], **options: Any
    ) -> TorchSuspect:
        """``module`` with the weights of the file at ``path`` loaded into it
        (``secmark.embed.load_state``: safetensors or a weights-only
        checkpoint, names and shapes exactly the module's), described as
        ``sha256:<hex>`` of the file's bytes. ``options`` are the
        constructor's, but ``reference``.

        Raises:
            SuspectError: the file cannot be read, does not fit the module,
                or changed while it was loaded.
        """
        from secmark.embed.checkpoint import load_state

        source = Path(path)
        reference = _file_reference(source)
        try:
            load_state(source, module)
        except SecmarkError as error:
            raise SuspectError(f"{source}: {error}") from None
        if _file_reference(source) != reference:
            raise SuspectError(
                f"{source} changed while it was loaded; load it from a file nobody writes to"
            )
        return cls(module, reference=reference, **options)

    @property
    def device(self) -> torch.device:
        """The device the module is run on."""
        return self._device

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The module's answers to every row of ``batch``; SuspectError on failure."""
        batch = check_batch(batch)
        modes = [(submodule, submodule.training) for submodule in self._module.modules()]
        self._module.eval()
        try:
            with torch.no_grad():
                parts = [
                    self._forward(batch[start : start + self._batch_size])
                    for start in range(0, batch.shape[0], self._batch_size)
                ]
        finally:
            for submodule, training in modes:
                submodule.training = training
        return np.concatenate(parts)

    def describe(self) -> str:
        return self._reference

    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        # torch cannot wrap numpy arrays with negative strides (a reversed view).
        inputs = torch.as_tensor(
            np.ascontiguousarray(chunk), dtype=self._input_dtype, device=self._device
        )
        try:
            result = self._module(inputs)
        except Exception as exc:  # any failure of foreign code is the suspect's failure
            text = str(exc)[:_MAX_ERROR_TEXT]
            raise SuspectError(
                f"{self._reference}: the module raised {type(exc).__name__}: {text}"
            ) from exc
        if not isinstance(result, torch.Tensor):
            raise SuspectError(
                f"{self._reference}: the module must return one tensor, got {type(result).__name__}"
            )
        result = result.detach().cpu()
        # numpy has no bfloat16; float64 holds every floating dtype torch has exactly.
        if result.is_floating_point():
            result = result.to(torch.float64)
        return check_answers(
            result.numpy(), rows=chunk.shape[0], output=self._output, source=self._reference
        )
