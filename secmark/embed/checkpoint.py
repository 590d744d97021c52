"""Saving and loading model weights without pickle.

A pickled checkpoint runs code when it is loaded, so a model file received
from anyone (a suspect's weights, a colleague's release) must never be
unpickled. Weights are saved as safetensors, which holds tensors and a JSON
header only. Loading also accepts a checkpoint written by ``torch.save``, but
only through ``torch.load(weights_only=True)``, whose restricted unpickler
builds tensors and plain containers and refuses everything else.

A file is matched against the model before anything is copied: every name
the model expects must be there with its shape, and nothing else may be.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from secmark.errors import EncodingError, SecmarkError
from secmark.files import SECRET_FILE_MODE, write_atomic

__all__ = ["load_state", "save_state"]

_SAFETENSORS_HEADER_LENGTH = 8
"""Bytes of the little-endian header size that opens a safetensors file."""
_LISTED_NAMES = 5
"""Names quoted in a mismatch error; the count says how many more there are."""


def _names(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:_LISTED_NAMES])
    more = len(names) - _LISTED_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def save_state(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
    mode: int = SECRET_FILE_MODE,
) -> Path:
    """Write the model's ``state_dict`` to ``path`` as a safetensors file.

    The file is written atomically (see :func:`secmark.files.write_atomic`),
    readable by its owner only unless ``mode`` says otherwise: a
    watermarked model is usually unreleased when it is saved. Tensors are
    copied to the CPU first; weights shared between layers are stored once
    per name. ``metadata`` goes into the file's header as strings.

    Raises:
        EncodingError: the state holds something other than tensors (a
            module's extra state), or ``metadata`` is not strings to strings.
        SecmarkError: ``path`` exists and ``overwrite`` is false, or its
            directory does not exist.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise EncodingError(f"state entry {name!r} is a {type(value).__name__}, not a tensor")
        # A private contiguous copy: safetensors refuses tensors that share storage.
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
    header = None if metadata is None else dict(metadata)
    if header is not None and not all(
        isinstance(key, str) and isinstance(value, str) for key, value in header.items()
    ):
        raise EncodingError("safetensors metadata must map strings to strings")
    return write_atomic(path, safetensors_bytes(tensors, header), mode=mode, overwrite=overwrite)


def _is_safetensors(path: Path) -> bool:
    """Whether the file starts as a safetensors file does: a header size that
    fits in the file, then a JSON object."""
    with path.open("rb") as handle:
        start = handle.read(_SAFETENSORS_HEADER_LENGTH + 1)
    if len(start) <= _SAFETENSORS_HEADER_LENGTH:
        return False
    header_size = int.from_bytes(start[:_SAFETENSORS_HEADER_LENGTH], "little")
    fits = 2 <= header_size <= path.stat().st_size - _SAFETENSORS_HEADER_LENGTH
    return fits and start[_SAFETENSORS_HEADER_LENGTH : _SAFETENSORS_HEADER_LENGTH + 1] == b"{"


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if _is_safetensors(path):
        try:
            return load_file(path, device="cpu")
        except SafetensorError as error:
            raise EncodingError(f"{path} is not a valid safetensors file: {error}") from None
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    # torch reports a refused object as an UnpicklingError, a damaged archive
    # as a RuntimeError, a truncated one as an EOFError: all mean "unusable".
    except Exception as error:  # noqa: BLE001
        raise EncodingError(
            f"{path} is neither a safetensors file nor a weights-only torch checkpoint: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in loaded.items()
    ):
        raise EncodingError(
            f"{path} does not hold a flat mapping of names to tensors; a training checkpoint "
            "that nests the state_dict under a key must be unwrapped and saved first"
        )
    return dict(loaded)


def load_state(path: str | os.PathLike[str], model: nn.Module) -> None:
    """Load weights from ``path`` into ``model``, in place.

    ``path`` is a safetensors file, or a ``torch.save`` checkpoint of a
    ``state_dict``, read with ``weights_only=True`` (never unpickled
    otherwise). The file's names and shapes must be exactly the model's;
    values are then copied into the model's tensors, keeping their device
    and converting their dtype.

    Raises:
        SecmarkError: ``path`` does not exist, or names are missing from the
            file, left over in it, or have another shape than in the model.
        EncodingError: the file is neither a valid safetensors file nor a
            weights-only torch checkpoint of a flat state_dict.
    """
    source = Path(path)
    if not source.is_file():
        raise SecmarkError(f"no model file at {source}")
    tensors = _read_tensors(source)
    expected = model.state_dict()
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {_names(missing)}")
        if unexpected:
            problems.append(f"unexpected {_names(unexpected)}")
        raise SecmarkError(f"{source} does not fit the model: {'; '.join(problems)}")
    mismatched = [
        f"{name} {tuple(tensors[name].shape)} vs {tuple(value.shape)}"
        for name, value in expected.items()
        if isinstance(value, torch.Tensor) and tensors[name].shape != value.shape
    ]
    if mismatched:
        raise SecmarkError(
            f"{source} does not fit the model: shapes (file vs model) differ for "
            f"{_names(mismatched)}"
        )
    model.load_state_dict(tensors, strict=True)
