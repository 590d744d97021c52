"""Trigger families as a commitment fixes them: names and parameters only.

How a family turns a VRF output into an input is in ``secmark.triggers``;
this module holds what is committed and checks that it is consistent, so a
commitment with parameters no generator could honour is refused when it is
made and when it is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from secmark.errors import EncodingError
from secmark.messages.document import Fields

__all__ = [
    "DTYPES",
    "MAX_CANONICAL_UNITS",
    "MAX_PARAMETER_ELEMENTS",
    "MAX_TRIGGER_ELEMENTS",
    "PROJECTIONS",
    "REDUCTIONS",
    "NoiseFamily",
    "OverlayFamily",
    "PoolFamily",
    "TokensFamily",
    "TriggerFamily",
    "WeightsFamily",
    "family_from_fields",
]

MAX_TRIGGER_ELEMENTS = 1 << 24
"""Bound on the values in one trigger input (64 MiB of float32): keeps a
hostile commitment from making a verifier allocate without limit."""

DTYPES = ("uint8", "float32")
_MAX_DIMENSIONS = 8
_MAX_POOL_SIZE = 1 << 32
_MAX_VOCABULARY = 1 << 31
_MAX_RESERVED = 1 << 16
_FLOAT32_MAX = 3.4028234663852886e38

REDUCTIONS = ("mean-out", "flatten", "canonical")
"""How a weights family turns a parameter into the M-vector its rows project:
``mean-out`` averages over axis 0 (output units or channels, Uchida et al.'s
choice) and flattens the rest, ``flatten`` takes every value, ``canonical``
sums the rows of the layer's canonical form, which no permutation,
rescaling or dummy unit of its inputs or outputs changes
(:mod:`secmark.models.canonical`)."""

PROJECTIONS = ("rademacher",)
"""Row distributions of a weights family: ``rademacher`` rows are exactly
+1 or -1, read bit by bit from the input stream, so no floating-point
function enters the derivation and every platform gets the same rows."""

MAX_PARAMETER_ELEMENTS = 1 << 40
"""Bound on the committed parameter's size: far beyond any layer, it only
keeps the products a verifier computes from a hostile shape small."""

MAX_CANONICAL_UNITS = 1 << 14
"""Most units on either side of a layer with the ``canonical`` reduction:
its grouping compares every pair of units."""

_MAX_PARAMETER_NAME = 512
_MIN_PROJECTED = 2


def _check_shape(shape: tuple[int, ...], what: str) -> None:
    if not 1 <= len(shape) <= _MAX_DIMENSIONS or any(d < 1 for d in shape):
        raise EncodingError(f"{what} must have 1 to {_MAX_DIMENSIONS} dimensions, each >= 1")
    if math.prod(shape) > MAX_TRIGGER_ELEMENTS:
        raise EncodingError(f"{what} has more than {MAX_TRIGGER_ELEMENTS} elements")


def _check_range(dtype: str, low: float, high: float, what: str) -> None:
    if dtype not in DTYPES:
        raise EncodingError(f"{what}: dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype == "uint8":
        if low != int(low) or high != int(high) or not 0 <= low <= high <= 255:
            raise EncodingError(f"{what}: a uint8 range needs integers 0 <= low <= high <= 255")
    elif not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise EncodingError(f"{what}: a float32 range needs finite low < high")
    elif max(abs(low), abs(high)) > _FLOAT32_MAX:
        raise EncodingError(f"{what}: the range exceeds float32")


def _shape(fields: Fields, name: str) -> tuple[int, ...]:
    return tuple(
        fields.integer_list(
            name, minimum=1, maximum=MAX_TRIGGER_ELEMENTS, max_items=_MAX_DIMENSIONS
        )
    )


def _number(value: float, dtype: str) -> int | float:
    return int(value) if dtype == "uint8" else value


@dataclass(frozen=True)
class NoiseFamily:
    """Inputs of a declared shape whose values are uniform over [low, high]
    (uint8, both ends included) or [low, high) (float32)."""

    NAME: ClassVar[str] = "noise"
    shape: tuple[int, ...]
    dtype: str
    low: float
    high: float

    def __post_init__(self) -> None:
        _check_shape(self.shape, "noise shape")
        _check_range(self.dtype, self.low, self.high, "noise")

    def to_fields(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "high": _number(self.high, self.dtype),
            "low": _number(self.low, self.dtype),
            "name": self.NAME,
            "shape": list(self.shape),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> NoiseFamily:
        return cls(
            _shape(fields, "shape"),
            fields.text("dtype"),
            fields.number("low"),
            fields.number("high"),
        )


@dataclass(frozen=True)
class TokensFamily:
    """Token-id sequences of a fixed length over a vocabulary, with the
    reserved ids (padding, special tokens) never drawn."""

    NAME: ClassVar[str] = "tokens"
    length: int
    vocab_size: int
    reserved: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.length <= MAX_TRIGGER_ELEMENTS:
            raise EncodingError(f"token length must be in [1, {MAX_TRIGGER_ELEMENTS}]")
        if not 2 <= self.vocab_size <= _MAX_VOCABULARY:
            raise EncodingError(f"vocab_size must be in [2, {_MAX_VOCABULARY}]")
        if list(self.reserved) != sorted(set(self.reserved)):
            raise EncodingError("reserved token ids must be sorted and distinct")
        if any(not 0 <= token < self.vocab_size for token in self.reserved):
            raise EncodingError("reserved token ids must lie in [0, vocab_size)")
        if self.vocab_size - len(self.reserved) < 2:
            raise EncodingError("at least two token ids must remain after the reserved ones")

    def to_fields(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "name": self.NAME,
            "reserved": list(self.reserved),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> TokensFamily:
        return cls(
            fields.integer("length", minimum=1, maximum=MAX_TRIGGER_ELEMENTS),
            fields.integer("vocab_size", minimum=2, maximum=_MAX_VOCABULARY),
            tuple(
                fields.integer_list(
                    "reserved", minimum=0, maximum=_MAX_VOCABULARY, max_items=_MAX_RESERVED
                )
            ),
        )


@dataclass(frozen=True)
class PoolFamily:
    """A keyed choice of one item from an owner's committed candidate pool."""

    NAME: ClassVar[str] = "pool"
    pool_size: int
    item_shape: tuple[int, ...]
    item_dtype: str

    def __post_init__(self) -> None:
        if not 1 <= self.pool_size <= _MAX_POOL_SIZE:
            raise EncodingError(f"pool_size must be in [1, {_MAX_POOL_SIZE}]")
        _check_shape(self.item_shape, "pool item shape")
        if self.item_dtype not in DTYPES:
            raise EncodingError(f"pool item dtype must be one of {', '.join(DTYPES)}")

    def to_fields(self) -> dict[str, Any]:
        return {
            "item_dtype": self.item_dtype,
            "item_shape": list(self.item_shape),
            "name": self.NAME,
            "pool_size": self.pool_size,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> PoolFamily:
        return cls(
            fields.integer("pool_size", minimum=1, maximum=_MAX_POOL_SIZE),
            _shape(fields, "item_shape"),
            fields.text("item_dtype"),
        )


@dataclass(frozen=True)
class OverlayFamily:
    """A pool item with ``pixels`` of its values replaced by a keyed pattern.

    Positions (distinct, over the flattened item) and values (uniform over
    the range, as for :class:`NoiseFamily`) come from each trigger's own
    derivation, so no pattern is shared between triggers.
    """

    NAME: ClassVar[str] = "overlay"
    pool_size: int
    item_shape: tuple[int, ...]
    item_dtype: str
    pixels: int
    low: float
    high: float

    def __post_init__(self) -> None:
        PoolFamily(self.pool_size, self.item_shape, self.item_dtype)
        _check_range(self.item_dtype, self.low, self.high, "overlay")
        if not 1 <= self.pixels <= math.prod(self.item_shape):
            raise EncodingError("overlay pixels must be in [1, number of item elements]")

    def to_fields(self) -> dict[str, Any]:
        return {
            "high": _number(self.high, self.item_dtype),
            "item_dtype": self.item_dtype,
            "item_shape": list(self.item_shape),
            "low": _number(self.low, self.item_dtype),
            "name": self.NAME,
            "pixels": self.pixels,
            "pool_size": self.pool_size,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> OverlayFamily:
        return cls(
            fields.integer("pool_size", minimum=1, maximum=_MAX_POOL_SIZE),
            _shape(fields, "item_shape"),
            fields.text("item_dtype"),
            fields.integer("pixels", minimum=1, maximum=MAX_TRIGGER_ELEMENTS),
            fields.number("low"),
            fields.number("high"),
        )


@dataclass(frozen=True)
class WeightsFamily:
    """White-box rows over one parameter of the model (Uchida et al. 2017).

    Trigger ``j`` is a row of M values +1 or -1 and its label a bit; the
    watermark is that ``row_j . reduce(w) > 0`` equals bit ``j``, where ``w``
    is the state-dict entry ``parameter`` of shape ``parameter_shape`` and
    ``reduce`` is the ``reduction`` (:data:`REDUCTIONS`). The label space of
    a weights commitment must be ``ClassLabels(2)`` (checked by the
    commitment), so a model whose weights were not trained with the rows
    matches each bit with probability exactly 1/2.

    The ``canonical`` reduction also names the ``producer`` (the parameter
    whose first axis enumerates the committed parameter's input units, each
    ``unit_size`` of its columns) and the ``consumer`` (the 2-D parameter
    with one column per output unit); the parameter must be 2-D. The other
    reductions have neither, and a ``unit_size`` of 1.

    Raises:
        EncodingError: an empty or over-long parameter name, a shape of 0 or
            more than 8 dimensions or over :data:`MAX_PARAMETER_ELEMENTS`
            values, an unknown reduction or projection, ``mean-out`` on a 1-D
            parameter, M outside ``[2, MAX_TRIGGER_ELEMENTS]``, or a
            ``canonical`` family without its two layers, with a unit size
            that does not divide the columns, more than 16384 units on a side
            or M x unit_size over ``MAX_TRIGGER_ELEMENTS`` (another reduction
            with either layer or a unit size).
    """

    NAME: ClassVar[str] = "weights"
    parameter: str
    parameter_shape: tuple[int, ...]
    reduction: str = "mean-out"
    projection: str = "rademacher"
    producer: str | None = None
    consumer: str | None = None
    unit_size: int = 1

    def __post_init__(self) -> None:
        if not 1 <= len(self.parameter) <= _MAX_PARAMETER_NAME or not self.parameter.isprintable():
            raise EncodingError(
                f"the parameter name must have 1 to {_MAX_PARAMETER_NAME} printable characters"
            )
        shape = self.parameter_shape
        if not 1 <= len(shape) <= _MAX_DIMENSIONS or any(d < 1 for d in shape):
            raise EncodingError(
                f"the parameter shape must have 1 to {_MAX_DIMENSIONS} dimensions, each >= 1"
            )
        if math.prod(shape) > MAX_PARAMETER_ELEMENTS:
            raise EncodingError(f"the parameter has more than {MAX_PARAMETER_ELEMENTS} elements")
        if self.reduction not in REDUCTIONS:
            raise EncodingError(
                f"reduction must be one of {', '.join(REDUCTIONS)}, not {self.reduction!r}"
            )
        if self.projection not in PROJECTIONS:
            raise EncodingError(
                f"projection must be one of {', '.join(PROJECTIONS)}, not {self.projection!r}"
            )
        if self.reduction == "mean-out" and len(shape) < 2:
            raise EncodingError("the mean-out reduction needs a parameter of 2 or more dimensions")
        self._check_layers()
        # One projected value is one bit of the row per trial: fewer than two
        # leave every row equal up to sign, which carries no watermark.
        if not _MIN_PROJECTED <= self.projected_size <= MAX_TRIGGER_ELEMENTS:
            raise EncodingError(
                f"the projected size M must be in [{_MIN_PROJECTED}, {MAX_TRIGGER_ELEMENTS}], "
                f"not {self.projected_size}"
            )

    def _check_layers(self) -> None:
        layers = (self.producer, self.consumer)
        if self.reduction != "canonical":
            if layers != (None, None) or self.unit_size != 1:
                raise EncodingError(
                    f"the {self.reduction} reduction has no producer, consumer or unit size"
                )
            return
        if any(
            layer is None or not 1 <= len(layer) <= _MAX_PARAMETER_NAME or not layer.isprintable()
            for layer in layers
        ):
            raise EncodingError(
                "the canonical reduction needs producer and consumer parameter names of 1 to "
                f"{_MAX_PARAMETER_NAME} printable characters"
            )
        if len({self.parameter, *layers}) != 3:
            raise EncodingError("the parameter, producer and consumer must be three parameters")
        shape = self.parameter_shape
        if (
            isinstance(self.unit_size, bool)
            or len(shape) != 2
            or not 1 <= self.unit_size <= shape[1]
            or shape[1] % self.unit_size
        ):
            raise EncodingError(
                "the canonical reduction needs a 2-D parameter whose columns are a whole "
                "number of units of unit_size columns"
            )
        if max(shape[0], shape[1] // self.unit_size) > MAX_CANONICAL_UNITS:
            raise EncodingError(
                f"the canonical reduction takes at most {MAX_CANONICAL_UNITS} units on a side"
            )
        # The public feature matrix has M x unit_size entries.
        if shape[1] * self.unit_size > MAX_TRIGGER_ELEMENTS:
            raise EncodingError(
                f"M x unit_size must be at most {MAX_TRIGGER_ELEMENTS} for the canonical reduction"
            )

    @property
    def projected_size(self) -> int:
        """M: the length of the reduced parameter, and of every row."""
        shape = (
            self.parameter_shape[1:]
            if self.reduction in ("mean-out", "canonical")
            else self.parameter_shape
        )
        return math.prod(shape)

    def to_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "name": self.NAME,
            "parameter": self.parameter,
            "parameter_shape": list(self.parameter_shape),
            "projection": self.projection,
            "reduction": self.reduction,
        }
        if self.reduction == "canonical":
            fields |= {
                "consumer": self.consumer,
                "producer": self.producer,
                "unit_size": self.unit_size,
            }
        return fields

    @classmethod
    def from_fields(cls, fields: Fields) -> WeightsFamily:
        parameter = fields.text("parameter", max_length=_MAX_PARAMETER_NAME)
        shape = tuple(
            fields.integer_list(
                "parameter_shape",
                minimum=1,
                maximum=MAX_PARAMETER_ELEMENTS,
                max_items=_MAX_DIMENSIONS,
            )
        )
        reduction = fields.text("reduction")
        projection = fields.text("projection")
        if reduction != "canonical":
            return cls(parameter, shape, reduction, projection)
        return cls(
            parameter,
            shape,
            reduction,
            projection,
            producer=fields.text("producer", max_length=_MAX_PARAMETER_NAME),
            consumer=fields.text("consumer", max_length=_MAX_PARAMETER_NAME),
            unit_size=fields.integer("unit_size", minimum=1, maximum=MAX_TRIGGER_ELEMENTS),
        )


TriggerFamily = NoiseFamily | TokensFamily | PoolFamily | OverlayFamily | WeightsFamily

_FAMILIES: dict[
    str,
    type[NoiseFamily | TokensFamily | PoolFamily | OverlayFamily | WeightsFamily],
] = {
    family.NAME: family
    for family in (NoiseFamily, TokensFamily, PoolFamily, OverlayFamily, WeightsFamily)
}


def family_from_fields(fields: Fields) -> TriggerFamily:
    """Read a family object, dispatching on its ``name``.

    Raises:
        EncodingError: unknown name, or parameters out of range.
    """
    name = fields.text("name")
    if name not in _FAMILIES:
        raise EncodingError(f"unknown trigger family {name!r} (known: {', '.join(_FAMILIES)})")
    return _FAMILIES[name].from_fields(fields)
