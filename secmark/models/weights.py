"""White-box suspects: a model's weights, checked against a weights commitment.

A weights commitment (:class:`~secmark.messages.families.WeightsFamily`)
derives, for row ``j``, a vector ``X_j`` of M values +1 or -1 and a bit
``b_j``. An owner trains with a regulariser (``secmark.embed.weights``) that
makes ``X_j . reduce(w) > 0`` equal ``b_j`` on the committed parameter ``w``.
:class:`WeightsSuspect` reads that parameter from a suspect's weights and
answers each row with the bit ``X_j . reduce(w) > 0``, so the arbiter's
query-and-count machinery runs unchanged on it: the rows are the "inputs",
the bits the "labels". Because ``b_j`` is uniform and independent of any
weights not trained with it, each bit matches with probability exactly 1/2
under the null, the p0 of ``ClassLabels(2)``.

Files are read without pickle: safetensors through the ``safetensors``
library's parser (no torch needed), or a ``torch.save`` checkpoint of a flat
state dict through ``torch.load(weights_only=True)``, torch being imported
only then. Both libraries are imported when a suspect is built, not with
this module, so ``secmark.models`` imports without either.

A suspect whose architecture differs from the committed one (no parameter
of the committed name, or another shape) is refused with a
:class:`~secmark.errors.SuspectError` saying so: white-box evidence does not
apply to it, and nothing here guesses a corresponding layer. Under the
``canonical`` reduction (:mod:`secmark.models.canonical`) the layer and its
producer and consumer may have other numbers of units than committed, since
dummy units change them; the three must still fit together.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import SuspectError
from secmark.messages.families import REDUCTIONS, WeightsFamily
from secmark.models.base import check_answers, check_batch
from secmark.models.canonical import canonical_vector

__all__ = ["WeightsSource", "WeightsSuspect", "reduce_parameter"]

WeightsSource = str | os.PathLike[str] | Mapping[str, np.ndarray]
"""A model file (safetensors or weights-only torch checkpoint), or a state
dict of numpy arrays already in memory."""

# safetensors dtype names of the floating-point formats read; BF16 has no
# numpy dtype and is widened to float32 by hand (it is float32's top half).
_SAFETENSORS_FLOATS: dict[str, np.dtype[Any]] = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
_LISTED_NAMES = 5
"""Names quoted when the committed parameter is missing."""
_MAX_ERROR_TEXT = 200
"""Cut-off for the text of a loader's exception quoted in a SuspectError."""


def reduce_parameter(values: npt.NDArray[Any], reduction: str) -> npt.NDArray[np.float64]:
    """The M-vector a weights family's rows project, in float64.

    ``mean-out``: the mean over axis 0 (output units or channels), flattened
    in C order; ``flatten``: every value in C order
    (``specs/derivation.md`` 7.11).

    Raises:
        SuspectError: an unknown reduction, ``canonical`` (it reads two more
            layers: :func:`secmark.models.canonical.canonical_vector`), or
            ``mean-out`` of a 1-D array.
    """
    array = np.asarray(values, dtype=np.float64)
    if reduction == "canonical":
        raise SuspectError(
            "the canonical reduction reads the producer and consumer too: use canonical_vector"
        )
    if reduction not in REDUCTIONS:
        raise SuspectError(
            f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}"
        )
    if reduction == "mean-out":
        if array.ndim < 2:
            raise SuspectError("the mean-out reduction needs a parameter of 2 or more dimensions")
        return np.ascontiguousarray(array.mean(axis=0)).reshape(-1)
    return np.ascontiguousarray(array).reshape(-1)


def _names(names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:_LISTED_NAMES])
    more = len(names) - _LISTED_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _safetensors() -> Any:
    """The ``safetensors`` module, or a SuspectError saying how to get it."""
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise SuspectError(
            "reading model weights needs safetensors: pip install safetensors"
        ) from None
    return safetensors


def _from_safetensors(
    safetensors: Any, data: bytes, wanted: tuple[str, ...]
) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
    """The file's names and the values of those of ``wanted`` it holds.

    Raises:
        safetensors.SafetensorError: not a safetensors file.
        SuspectError: a wanted parameter is not floating point.
    """
    tensors = safetensors.deserialize(data)
    names = [name for name, _ in tensors]
    found: dict[str, npt.NDArray[Any]] = {}
    for name, tensor in tensors:
        if name not in wanted:
            continue
        dtype, shape, raw = tensor["dtype"], tuple(tensor["shape"]), bytes(tensor["data"])
        if dtype == "BF16":
            halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            found[name] = halves.view(np.float32).reshape(shape)
        elif dtype in _SAFETENSORS_FLOATS:
            found[name] = np.frombuffer(raw, dtype=_SAFETENSORS_FLOATS[dtype]).reshape(shape)
        else:
            raise SuspectError(
                f"parameter {name!r} is stored as {dtype}, not floating point; "
                "dequantise the model before a white-box check"
            )
    return names, found


def _from_torch_checkpoint(
    data: bytes, wanted: tuple[str, ...], source: str
) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
    """As :func:`_from_safetensors`, for a ``torch.save`` of a flat state dict.

    Raises:
        SuspectError: torch missing, or the file is not a weights-only
            checkpoint of a flat mapping of names to tensors.
    """
    try:
        import torch  # only here: reading safetensors must not need torch
    except ImportError:
        raise SuspectError(
            f"{source} is not a safetensors file, and reading a torch checkpoint needs "
            "torch: pip install 'secmark[torch]'"
        ) from None
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    # The restricted unpickler reports a refused object as an UnpicklingError,
    # a damaged archive as a RuntimeError, a truncated one as an EOFError.
    except Exception as error:  # noqa: BLE001
        text = str(error).splitlines()[0][:_MAX_ERROR_TEXT] if str(error) else type(error).__name__
        raise SuspectError(
            f"{source} is neither a safetensors file nor a weights-only torch checkpoint "
            f"(nothing else is unpickled): {text}"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in loaded.items()
    ):
        raise SuspectError(
            f"{source} does not hold a flat mapping of names to tensors (a state dict)"
        )
    found: dict[str, npt.NDArray[Any]] = {}
    for name in wanted:
        value = loaded.get(name)
        if value is None:
            continue
        if not value.is_floating_point():
            raise SuspectError(
                f"parameter {name!r} is {value.dtype}, not floating point; "
                "dequantise the model before a white-box check"
            )
        found[name] = value.detach().to(torch.float64).numpy()
    return list(loaded), found


def _from_state(
    state: Mapping[str, np.ndarray], wanted: tuple[str, ...]
) -> tuple[str, list[str], dict[str, npt.NDArray[Any]]]:
    """The reference, names and parameter values of an in-memory state dict."""
    if not all(
        isinstance(name, str) and isinstance(value, np.ndarray) for name, value in state.items()
    ):
        raise SuspectError(
            "a state dict must map names to numpy arrays (convert tensors with .numpy())"
        )
    safetensors = _safetensors()
    try:
        data = safetensors.numpy.save(dict(state))
    except (safetensors.SafetensorError, ValueError, TypeError) as error:
        raise SuspectError(f"the state dict cannot be written as safetensors: {error}") from None
    found = {name: state[name] for name in wanted if name in state}
    for name, values in found.items():
        if values.dtype.kind != "f":
            raise SuspectError(
                f"parameter {name!r} is {values.dtype}, not floating point; "
                "dequantise the model before a white-box check"
            )
    return "sha256:" + hashlib.sha256(data).hexdigest(), list(state), found


class WeightsSuspect:
    """A suspect's weights, answering weights-family rows with bits.

    ``source`` is a model file, read once here, or a state dict of numpy
    arrays. The committed ``parameter`` is located by name; ``shape``, when
    given (:meth:`from_family` gives the committed one), must be its shape.
    ``predict(rows)`` returns ``(rows @ reduce(w) > 0)`` as int64 labels, one
    per row, with ``reduce`` the ``reduction`` (:func:`reduce_parameter`)
    computed in float64.

    With ``reduction="canonical"``, ``producer`` and ``consumer`` name the
    layers around the parameter, ``unit_size`` is its columns per input unit
    and ``size`` the committed M, the vector's length; ``shape`` is then not
    checked, since dummy units change it (:mod:`secmark.models.canonical`).

    ``describe()`` is ``sha256:<hex>``, the SHA-256 of the file's bytes (the
    canonical reference of a model file, :mod:`secmark.protocol.suspects`);
    for a state dict, of the safetensors file of it that
    ``safetensors.numpy.save`` writes (no metadata). The digest is of the
    very bytes the weights were read from. Memory: the file is held once in
    full while it is parsed.

    Raises:
        SuspectError: no such file; a file that is neither safetensors nor a
            weights-only torch checkpoint of a flat state dict (a pickle that
            would run code is refused, never executed); no parameter of that
            name or another shape than committed ("the architecture
            differs"); a parameter that is not floating point or holds NaN or
            infinity; an unknown reduction; under ``canonical``, a producer
            or consumer missing or not fitting the parameter.
    """

    __slots__ = ("_parameter", "_reduced", "_reference")

    def __init__(
        self,
        source: WeightsSource,
        parameter: str,
        reduction: str = "mean-out",
        *,
        shape: tuple[int, ...] | None = None,
        producer: str | None = None,
        consumer: str | None = None,
        unit_size: int = 1,
        size: int | None = None,
    ) -> None:
        wanted: tuple[str, ...] = (parameter,)
        layers: tuple[str, str, int] | None = None
        if reduction == "canonical":
            if producer is None or consumer is None or size is None:
                raise SuspectError(
                    "the canonical reduction needs the producer, the consumer and the size"
                )
            layers = (producer, consumer, size)
            wanted = (parameter, producer, consumer)
        if isinstance(source, Mapping):
            origin = "the state dict"
            self._reference, names, found = _from_state(source, wanted)
        else:
            path = Path(source)
            origin = str(path)
            if not path.is_file():
                raise SuspectError(f"no model file at {path}")
            safetensors = _safetensors()
            data = path.read_bytes()
            self._reference = "sha256:" + hashlib.sha256(data).hexdigest()
            try:
                names, found = _from_safetensors(safetensors, data, wanted)
            except safetensors.SafetensorError:
                names, found = _from_torch_checkpoint(data, wanted, origin)
        for name in wanted:
            if name not in found:
                raise SuspectError(
                    f"{origin} has no parameter {name!r}: the suspect's architecture differs "
                    f"from the committed one, so white-box evidence cannot be checked on it "
                    f"(it has {len(names)} tensors: {_names(names)})"
                )
            if not np.isfinite(found[name]).all():
                raise SuspectError(f"parameter {name!r} in {origin} holds NaN or infinite values")
        values = found[parameter]
        if layers is not None:
            reduced = canonical_vector(
                values, found[layers[0]], found[layers[1]], unit_size=unit_size, size=layers[2]
            )
        else:
            if shape is not None and tuple(values.shape) != tuple(shape):
                raise SuspectError(
                    f"parameter {parameter!r} has shape {tuple(values.shape)} in {origin}, "
                    f"{tuple(shape)} in the commitment: the suspect's architecture differs, so "
                    "white-box evidence cannot be checked on it"
                )
            reduced = reduce_parameter(values, reduction)
        self._parameter = parameter
        self._reduced = reduced
        self._reduced.flags.writeable = False

    @classmethod
    def from_family(cls, source: WeightsSource, family: WeightsFamily) -> WeightsSuspect:
        """The suspect for a weights commitment: its parameter, committed
        shape and reduction, and for ``canonical`` its layers. Raises as the
        constructor."""
        return cls(
            source,
            family.parameter,
            family.reduction,
            shape=family.parameter_shape,
            producer=family.producer,
            consumer=family.consumer,
            unit_size=family.unit_size,
            size=family.projected_size,
        )

    @property
    def projected_size(self) -> int:
        """M: the length of the reduced parameter, which every row must have."""
        return int(self._reduced.shape[0])

    @property
    def reduced(self) -> npt.NDArray[np.float64]:
        """The reduced parameter (read-only)."""
        return self._reduced

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The bit ``row . reduce(w) > 0`` of every row, as int64 0 or 1.

        Raises:
            SuspectError: the batch is not a 2-D array of M columns of
                finite numbers.
        """
        batch = check_batch(batch)
        if batch.ndim != 2 or batch.shape[1] != self.projected_size:
            raise SuspectError(
                f"{self._reference}: rows must have {self.projected_size} values (the reduced "
                f"{self._parameter!r}), got a batch of shape {batch.shape}"
            )
        bits = (batch.astype(np.float64) @ self._reduced > 0).astype(np.int64)
        return check_answers(
            bits, rows=batch.shape[0], output="labels", row_shape=(), source=self._reference
        )

    def describe(self) -> str:
        return self._reference
