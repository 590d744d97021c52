"""Neural structural obfuscation: rearrangements of a stolen model that keep its function.

Yan et al. (USENIX Security 2023) showed that white-box watermarks read from
a layer's weights are lost when a thief rearranges the layer's hidden units
in ways a ReLU network cannot tell apart. Each function here applies one
such rearrangement to a state dict of numpy arrays (a copy; the input is
not modified), to hidden layer ``layer`` (``layer.weight``: one entry of
the first axis per unit; ``layer.bias``) and the layer that reads it,
``reader`` (``reader.weight``: axis 1 holds ``units x k`` values, ``k``
per unit, as a convolution's input channels or a linear layer's columns
after a flatten):

- :func:`permute_units`: the units in another order;
- :func:`rescale_units`: unit ``c``'s incoming weights and bias times
  ``s_c > 0``, its outgoing weights divided by ``s_c``;
- :func:`add_dummy_units`: new units with random incoming weights and bias
  and zero outgoing weights;
- :func:`split_unit`: one unit replaced by two copies sharing its outgoing
  weights (``share`` and ``1 - share``).

Positive rescaling commutes with ReLU and max-pooling, so all four keep
the function exactly (up to float rounding) whenever the layer is followed
by those. ``specs/derivation.md`` 7.11.1 is the canonical reduction that
undoes them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError

__all__ = ["add_dummy_units", "permute_units", "rescale_units", "split_unit"]

State = dict[str, npt.NDArray[np.float32]]


def _layers(
    state: Mapping[str, npt.NDArray[np.float32]], layer: str, reader: str
) -> tuple[State, int]:
    """A copy of ``state`` and the number of units of ``layer``.

    Raises:
        EncodingError: a missing tensor, or a reader whose axis 1 is not a
            whole number of values per unit.
    """
    names = (f"{layer}.weight", f"{layer}.bias", f"{reader}.weight")
    for name in names:
        if name not in state:
            raise EncodingError(f"the state dict has no {name!r}")
    units = state[names[0]].shape[0]
    reads = state[names[2]]
    if reads.ndim < 2 or reads.shape[1] % units:
        raise EncodingError(f"{names[2]!r} of shape {reads.shape} does not read {units} units")
    return {name: np.array(value, copy=True) for name, value in state.items()}, units


def _by_unit(weights: npt.NDArray[np.float32], units: int) -> npt.NDArray[np.float32]:
    """The reader's weights as (outputs, units, values per unit, rest)."""
    shape = weights.shape
    return weights.reshape(shape[0], units, shape[1] // units, *shape[2:])


def permute_units(
    state: Mapping[str, npt.NDArray[np.float32]],
    layer: str,
    reader: str,
    order: npt.NDArray[np.int64],
) -> State:
    """``layer``'s units in the order ``order`` (a permutation of them).

    Raises:
        EncodingError: as the module's layers, or ``order`` not a permutation.
    """
    copy, units = _layers(state, layer, reader)
    if sorted(np.asarray(order).tolist()) != list(range(units)):
        raise EncodingError(f"order must be a permutation of the {units} units")
    copy[f"{layer}.weight"] = copy[f"{layer}.weight"][order]
    copy[f"{layer}.bias"] = copy[f"{layer}.bias"][order]
    reads = copy[f"{reader}.weight"]
    copy[f"{reader}.weight"] = _by_unit(reads, units)[:, order].reshape(reads.shape)
    return copy


def rescale_units(
    state: Mapping[str, npt.NDArray[np.float32]],
    layer: str,
    reader: str,
    scales: npt.NDArray[np.float64],
) -> State:
    """Unit ``c`` of ``layer`` made ``scales[c]`` times larger, its reader's
    weights as many times smaller.

    Raises:
        EncodingError: as the module's layers, or a scale that is not a
            positive finite number (one per unit).
    """
    copy, units = _layers(state, layer, reader)
    scales = np.asarray(scales, dtype=np.float64)
    if scales.shape != (units,) or not np.all(np.isfinite(scales) & (scales > 0)):
        raise EncodingError(f"scales must be {units} positive finite numbers")
    weights = copy[f"{layer}.weight"]
    copy[f"{layer}.weight"] = (weights * scales.reshape(-1, *([1] * (weights.ndim - 1)))).astype(
        weights.dtype
    )
    copy[f"{layer}.bias"] = (copy[f"{layer}.bias"] * scales).astype(weights.dtype)
    reads = copy[f"{reader}.weight"]
    by_unit = _by_unit(reads, units)
    divided = by_unit / scales.reshape(1, units, *([1] * (by_unit.ndim - 2)))
    copy[f"{reader}.weight"] = divided.reshape(reads.shape).astype(reads.dtype)
    return copy


def add_dummy_units(
    state: Mapping[str, npt.NDArray[np.float32]],
    layer: str,
    reader: str,
    count: int,
    rng: np.random.Generator,
) -> State:
    """``count`` new units after ``layer``'s own, whose incoming weights and
    bias are drawn like the existing ones' (normal, same standard deviation)
    and whose outgoing weights are zero.

    Raises:
        EncodingError: as the module's layers, or ``count`` below 1.
    """
    copy, units = _layers(state, layer, reader)
    if count < 1:
        raise EncodingError("count must be at least 1")
    weights, bias = copy[f"{layer}.weight"], copy[f"{layer}.bias"]
    extra = rng.normal(0.0, float(weights.std()), size=(count, *weights.shape[1:]))
    copy[f"{layer}.weight"] = np.concatenate([weights, extra.astype(weights.dtype)])
    extra_bias = rng.normal(0.0, float(bias.std()), size=count).astype(bias.dtype)
    copy[f"{layer}.bias"] = np.concatenate([bias, extra_bias])
    reads = copy[f"{reader}.weight"]
    by_unit = _by_unit(reads, units)
    zeros = np.zeros((by_unit.shape[0], count, *by_unit.shape[2:]), dtype=reads.dtype)
    widened = np.concatenate([by_unit, zeros], axis=1)
    copy[f"{reader}.weight"] = widened.reshape(reads.shape[0], -1, *reads.shape[2:])
    return copy


def split_unit(
    state: Mapping[str, npt.NDArray[np.float32]],
    layer: str,
    reader: str,
    unit: int,
    share: float,
) -> State:
    """Unit ``unit`` of ``layer`` copied as a new last unit; the original keeps
    ``share`` of its outgoing weights and the copy the rest (any real
    ``share``: with 0.5 they split it, with 2.0 they cancel in part).

    Raises:
        EncodingError: as the module's layers, or ``unit`` out of range.
    """
    copy, units = _layers(state, layer, reader)
    if not 0 <= unit < units:
        raise EncodingError(f"unit must be in [0, {units})")
    weights, bias = copy[f"{layer}.weight"], copy[f"{layer}.bias"]
    copy[f"{layer}.weight"] = np.concatenate([weights, weights[unit : unit + 1]])
    copy[f"{layer}.bias"] = np.concatenate([bias, bias[unit : unit + 1]])
    reads = copy[f"{reader}.weight"]
    by_unit = _by_unit(reads, units)
    moved = (by_unit[:, unit : unit + 1] * (1.0 - share)).astype(reads.dtype)
    by_unit[:, unit] = (by_unit[:, unit] * share).astype(reads.dtype)
    widened = np.concatenate([by_unit, moved], axis=1)
    copy[f"{reader}.weight"] = widened.reshape(reads.shape[0], -1, *reads.shape[2:])
    return copy
