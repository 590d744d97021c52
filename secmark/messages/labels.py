"""Label spaces as a commitment fixes them.

The label space says what a trigger's secret label is and when a suspect's
answer matches it; ``secmark.triggers`` draws labels uniformly from it and
``secmark.stats`` turns it into the null match probability p0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from secmark.errors import EncodingError
from secmark.messages.document import Fields

__all__ = [
    "ClassLabels",
    "LabelSpace",
    "RegressionLabels",
    "TokenLabels",
    "label_space_from_fields",
]

_MAX_CLASSES = 1 << 31
_MAX_TOKEN_LABELS = 1 << 16


@dataclass(frozen=True)
class ClassLabels:
    """One of K classes; a match is an equal class. p0 = 1/K."""

    KIND: ClassVar[str] = "classes"
    num_classes: int

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= _MAX_CLASSES:
            raise EncodingError(f"num_classes must be in [2, {_MAX_CLASSES}]")

    def to_fields(self) -> dict[str, Any]:
        return {"kind": self.KIND, "num_classes": self.num_classes}

    @classmethod
    def from_fields(cls, fields: Fields) -> ClassLabels:
        return cls(fields.integer("num_classes", minimum=2, maximum=_MAX_CLASSES))


@dataclass(frozen=True)
class RegressionLabels:
    """A target uniform on [lo, hi]; a match is |answer - target| <= tolerance.

    p0 is bounded by 2 * tolerance / (hi - lo) whatever the answer, so the
    tolerance must be under half the range for a match to mean anything.
    """

    KIND: ClassVar[str] = "regression"
    lo: float
    hi: float
    tolerance: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.lo, self.hi, self.tolerance)):
            raise EncodingError("regression lo, hi and tolerance must be finite")
        if not self.lo < self.hi or not math.isfinite(self.hi - self.lo):
            raise EncodingError("a regression range needs lo < hi with hi - lo finite")
        if not 0 < 2 * self.tolerance < self.hi - self.lo:
            raise EncodingError("the regression tolerance must be in (0, (hi - lo) / 2)")

    def to_fields(self) -> dict[str, Any]:
        return {"hi": self.hi, "kind": self.KIND, "lo": self.lo, "tolerance": self.tolerance}

    @classmethod
    def from_fields(cls, fields: Fields) -> RegressionLabels:
        return cls(fields.number("lo"), fields.number("hi"), fields.number("tolerance"))


@dataclass(frozen=True)
class TokenLabels:
    """A sequence of ``length`` token ids over a vocabulary of ``vocab_size``;
    each position is one Bernoulli trial with p0 = 1/V."""

    KIND: ClassVar[str] = "tokens"
    vocab_size: int
    length: int

    def __post_init__(self) -> None:
        if not 2 <= self.vocab_size <= _MAX_CLASSES:
            raise EncodingError(f"vocab_size must be in [2, {_MAX_CLASSES}]")
        if not 1 <= self.length <= _MAX_TOKEN_LABELS:
            raise EncodingError(f"token label length must be in [1, {_MAX_TOKEN_LABELS}]")

    def to_fields(self) -> dict[str, Any]:
        return {"kind": self.KIND, "length": self.length, "vocab_size": self.vocab_size}

    @classmethod
    def from_fields(cls, fields: Fields) -> TokenLabels:
        return cls(
            fields.integer("vocab_size", minimum=2, maximum=_MAX_CLASSES),
            fields.integer("length", minimum=1, maximum=_MAX_TOKEN_LABELS),
        )


LabelSpace = ClassLabels | RegressionLabels | TokenLabels

_SPACES: dict[str, type[ClassLabels | RegressionLabels | TokenLabels]] = {
    space.KIND: space for space in (ClassLabels, RegressionLabels, TokenLabels)
}


def label_space_from_fields(fields: Fields) -> LabelSpace:
    """Read a label-space object, dispatching on its ``kind``.

    Raises:
        EncodingError: unknown kind, or parameters out of range.
    """
    kind = fields.text("kind")
    if kind not in _SPACES:
        raise EncodingError(f"unknown label space {kind!r} (known: {', '.join(_SPACES)})")
    return _SPACES[kind].from_fields(fields)
