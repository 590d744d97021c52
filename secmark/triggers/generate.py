"""Each trigger family's input, and each label space's label, from a keystream.

These functions turn a stream into values and nothing else: they neither
know where the stream's key came from (a VRF output for a trigger, fresh
randomness for a decoy) nor check any proof. What is drawn, in which order,
is ``specs/derivation.md`` 7.4 and 7.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    TriggerFamily,
    WeightsFamily,
)
from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels
from secmark.triggers.sampling import (
    KeyStream,
    distinct_uniform_integers,
    uniform_float32,
    uniform_float64,
    uniform_integer,
    uniform_integers,
)

__all__ = [
    "Label",
    "PoolItems",
    "checked_item",
    "draw_input",
    "draw_label",
    "input_layout",
    "item_leaf",
    "label_layout",
    "rademacher_row",
]

# Values of a large uint8 input drawn per call of the sampler.
_CHUNK = 1 << 20

Label = int | float | npt.NDArray[np.int64]
"""A class (int), a regression target (float) or token ids (int64 array)."""


class PoolItems(Protocol):
    """A candidate pool: ``len()`` and integer indexing giving numpy arrays
    (a numpy array of shape ``(pool_size, *item_shape)`` is one)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


def input_layout(family: TriggerFamily) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one trigger input of ``family``."""
    if isinstance(family, NoiseFamily):
        return family.shape, np.dtype(family.dtype)
    if isinstance(family, TokensFamily):
        return (family.length,), np.dtype(np.int64)
    if isinstance(family, WeightsFamily):
        return (family.projected_size,), np.dtype(np.int8)
    return family.item_shape, np.dtype(family.item_dtype)


def label_layout(labels: LabelSpace) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one label of ``labels``."""
    if isinstance(labels, ClassLabels):
        return (), np.dtype(np.int64)
    if isinstance(labels, RegressionLabels):
        return (), np.dtype(np.float64)
    return (labels.length,), np.dtype(np.int64)


def checked_item(item: Any, family: PoolFamily | OverlayFamily) -> npt.NDArray[Any]:
    """``item`` as a read-only C-ordered array, if it has the committed shape
    and dtype (either byte order).

    Items are never converted: casting a float64 image to float32 would
    silently change the values the pool root commits to.

    Raises:
        EncodingError: not a numpy array of the committed shape and dtype.
    """
    expected = np.dtype(family.item_dtype)
    if (
        not isinstance(item, np.ndarray)
        or item.shape != family.item_shape
        or item.dtype.newbyteorder("=") != expected.newbyteorder("=")
    ):
        found = (
            f"{item.dtype} {item.shape}" if isinstance(item, np.ndarray) else type(item).__name__
        )
        raise EncodingError(
            f"a pool item must be a numpy array of dtype {family.item_dtype} "
            f"and shape {family.item_shape}, not {found}"
        )
    checked = np.array(item, dtype=expected, order="C")
    checked.flags.writeable = False
    return checked


def item_leaf(item: npt.NDArray[Any]) -> bytes:
    """The Merkle leaf bytes of a checked pool item: its values in C order,
    little-endian."""
    return np.ascontiguousarray(item, dtype=item.dtype.newbyteorder("<")).tobytes()


def _range_values(
    stream: KeyStream, dtype: str, low: float, high: float, count: int
) -> npt.NDArray[Any]:
    """``count`` values uniform over a committed range: integers on
    ``[low, high]`` for uint8, floats on ``[low, high)`` for float32."""
    if dtype == "uint8":
        if (low, high) == (0, 255):
            # n = 256: every byte is accepted as it is (7.3.1), so the
            # values are the keystream bytes themselves.
            return stream.read(count).copy()
        # Drawn in chunks (consecutive draws, so the same sequence) to keep
        # the int64 temporaries small next to a uint8 result of up to 16 MiB.
        values = np.empty(count, dtype=np.uint8)
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            drawn = uniform_integers(stream, int(high) - int(low) + 1, stop - start)
            values[start:stop] = drawn + int(low)
        return values
    return uniform_float32(stream, low, high, count)


def _token_ids(stream: KeyStream, family: TokensFamily) -> npt.NDArray[np.int64]:
    return _unreserved_ids(stream, family.vocab_size, family.reserved, family.length)


def _unreserved_ids(
    stream: KeyStream, vocab_size: int, reserved_ids: tuple[int, ...], count: int
) -> npt.NDArray[np.int64]:
    """``count`` ids uniform over [0, vocab_size) without ``reserved_ids``."""
    reserved = np.asarray(reserved_ids, dtype=np.int64)
    index = uniform_integers(stream, vocab_size - len(reserved), count)
    # allowed[index] without building the allowed list: reserved id r_j has
    # r_j - j allowed ids below it, so allowed[index] is index plus the
    # number of reserved ids whose allowed-count is <= index.
    below = reserved - np.arange(len(reserved), dtype=np.int64)
    return index + np.searchsorted(below, index, side="right")


def rademacher_row(stream: KeyStream, size: int) -> npt.NDArray[np.int8]:
    """``size`` values +1 or -1 (int8) from ``ceil(size / 8)`` stream bytes.

    Value ``i`` is +1 when bit ``i % 8`` (least significant first) of byte
    ``i // 8`` is set, else -1 (``specs/derivation.md`` 7.11); the unused
    high bits of the last byte are consumed and ignored. Bits, not a float
    sampler: the rows are the same on every platform, bit for bit.
    """
    bits = np.unpackbits(stream.read(-(-size // 8)), count=size, bitorder="little")
    return (bits.astype(np.int8) << 1) - np.int8(1)


def draw_input(
    family: TriggerFamily,
    stream: KeyStream,
    *,
    pool_size: int = 0,
    fetch: Callable[[int], npt.NDArray[Any]] | None = None,
) -> tuple[npt.NDArray[Any], int | None]:
    """One input of ``family`` from ``stream``, and the pool index it used.

    For the pool and overlay families the pool index is drawn uniformly from
    ``[0, pool_size)`` and ``fetch(index)`` must return that item, already
    checked (:func:`checked_item`); the committed ``pool_size`` for a
    trigger, the number of candidates for a decoy.

    Raises:
        EncodingError: a pool family without ``fetch`` or a pool.
    """
    if isinstance(family, NoiseFamily):
        count = math.prod(family.shape)
        values = _range_values(stream, family.dtype, family.low, family.high, count)
        return values.reshape(family.shape), None
    if isinstance(family, TokensFamily):
        return _token_ids(stream, family), None
    if isinstance(family, WeightsFamily):
        return rademacher_row(stream, family.projected_size), None
    if fetch is None or pool_size < 1:
        raise EncodingError(f"the {family.NAME} family draws from a pool: none was given")
    pool_index = uniform_integer(stream, pool_size)
    item = fetch(pool_index)
    if isinstance(family, PoolFamily):
        return item, pool_index
    positions = distinct_uniform_integers(stream, item.size, family.pixels)
    values = _range_values(stream, family.item_dtype, family.low, family.high, family.pixels)
    overlaid = item.copy()
    overlaid.reshape(-1)[positions] = values
    return overlaid, pool_index


def draw_label(labels: LabelSpace, stream: KeyStream) -> Label:
    """One label of ``labels`` from ``stream``.

    Raises:
        EncodingError: a regression range whose width overflows float64.
    """
    if isinstance(labels, ClassLabels):
        return uniform_integer(stream, labels.num_classes)
    if isinstance(labels, RegressionLabels):
        return uniform_float64(stream, labels.lo, labels.hi)
    return _unreserved_ids(stream, labels.vocab_size, labels.reserved, labels.length)
