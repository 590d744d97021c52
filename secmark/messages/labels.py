"""Label spaces as a commitment fixes them.

The label space says what a trigger's secret label is and when a suspect's
answer matches it; ``secmark.triggers`` draws labels uniformly from it and
``secmark.stats`` turns it into the null match probability p0. A space is
refused where p0 could not be proven for the sampler as implemented
(``specs/statistics.md`` 2): a regression range or tolerance too near float64
resolution.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from secmark.encoding import is_hex_digest
from secmark.errors import EncodingError
from secmark.messages.document import Fields
from secmark.messages.responses import MAX_RESPONSES, ResponseList

__all__ = [
    "P0_MANTISSA_BITS",
    "REGRESSION_MAX_P0",
    "REGRESSION_ROUNDING_SHARE",
    "ClassLabels",
    "LabelSpace",
    "RegressionLabels",
    "ResponseLabels",
    "TokenLabels",
    "label_space_from_fields",
    "response_list_mismatch",
]

_MAX_CLASSES = 1 << 31
# = secmark.stats.MAX_TRIALS (secmark.stats imports this module).
_MAX_TOKEN_LABELS = 1 << 16
_MAX_RESPONSE_TOKENS = 4096  # = secmark.models.openai.MAX_ANSWER_TOKENS
MAX_RESERVED_LABELS = 1 << 20
"""Bound on the reserved ids of a token label space: a tokenizer's whole
vocabulary, for those up to a million ids."""


@dataclass(frozen=True)
class ClassLabels:
    """One of K classes; a match is an equal class. p0 = 1/K, exactly: the
    class is drawn by rejection sampling, never by a biased modulo."""

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
class ResponseLabels(ClassLabels):
    """One of ``num_classes`` committed target responses of a language model
    (:class:`~secmark.messages.responses.ResponseList`): the label is the
    response's index, drawn exactly as a class, so p0 = 1/K as for
    :class:`ClassLabels`, and a match is an answer that gives that response.

    ``digest`` is the SHA-256 (lower-case hex) of the list's canonical JSON;
    the list itself is revealed with a challenge. ``max_tokens`` is how many
    tokens a suspect is asked to generate (the owner's bound on a response's
    length in its model's tokens): what a suspect answers beyond a response
    cannot make it match another, since the list is prefix-free.
    """

    KIND: ClassVar[str] = "responses"
    digest: str
    max_tokens: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes > MAX_RESPONSES:
            raise EncodingError(f"a response list holds at most {MAX_RESPONSES} responses")
        if not is_hex_digest(self.digest):
            raise EncodingError("a response list digest is 64 lower-case hex digits")
        if not 1 <= self.max_tokens <= _MAX_RESPONSE_TOKENS:
            raise EncodingError(f"max_tokens must be in [1, {_MAX_RESPONSE_TOKENS}]")

    def to_fields(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "kind": self.KIND,
            "max_tokens": self.max_tokens,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ResponseLabels:
        return cls(
            fields.integer("num_classes", minimum=2, maximum=MAX_RESPONSES),
            fields.hex_digest("digest"),
            fields.integer("max_tokens", minimum=1, maximum=_MAX_RESPONSE_TOKENS),
        )


REGRESSION_MAX_P0 = Fraction(1, 2)
"""Largest p0 a regression space may have: a match that half of all labels
would give proves little, and the space of two classes already has p0 = 1/2."""

REGRESSION_ROUNDING_SHARE = 256
"""The float64 sampler's rounding may add at most 1/256 of the nominal
``2 * tolerance / (hi - lo)`` to p0 (``specs/statistics.md`` 2.1): a space
whose tolerance or range is so near float64 resolution that rounding
decides the match probability is refused, whatever p0 it would get."""

P0_MANTISSA_BITS = 8
"""A regression p0 is rounded up to ``a / 2^b`` with ``a < 2^8``: a short
exact fraction (the cost of an exact threshold grows with the bits of p0's
denominator), larger than the proven bound by less than one part in 2^7."""

# The sampler F64 (specs/derivation.md 7.3.4) steps through u / 2^53.
_F64_STEP = Fraction(1, 1 << 53)


def _floor_log2(x: Fraction) -> int:
    """floor(log2 x) for a positive rational, exactly."""
    exponent = x.numerator.bit_length() - x.denominator.bit_length()
    return exponent if Fraction(2) ** exponent <= x else exponent - 1


def _ulp(x: Fraction) -> Fraction:
    """The spacing of binary64 numbers at magnitude ``x > 0``: 2^(E - 52)
    with E = floor(log2 x), or 2^-1074 among the subnormals. Beyond the
    float range it keeps growing, which only overstates a rounding error."""
    return Fraction(2) ** (max(_floor_log2(x), -1022) - 52)


def _round_up(x: Fraction) -> Fraction:
    """The least ``a / 2^b`` >= ``x > 0`` with ``a < 2^P0_MANTISSA_BITS``
    (``a = 2^P0_MANTISSA_BITS`` where ``x`` rounds up to a power of two)."""
    shift = P0_MANTISSA_BITS - 1 - _floor_log2(x)
    scaled = x * Fraction(2) ** shift
    return Fraction(-(-scaled.numerator // scaled.denominator)) / Fraction(2) ** shift


def _decimal_at_least(x: Fraction) -> str:
    """``x > 0`` rounded up to about three significant decimal digits, such
    that the float the text reads as is still at least ``x``."""
    exponent = math.floor(math.log10(x.numerator) - math.log10(x.denominator)) - 2
    quantum = Fraction(10) ** exponent
    digits = -(-x // quantum)
    while Fraction(float(digits * quantum)) < x:
        digits += 1
    text = str(digits)
    return f"{text[0]}.{text[1:]}e{exponent + len(text) - 1}"


@dataclass(frozen=True)
class RegressionLabels:
    """A target drawn by F64 on [lo, hi]; a match is |answer - target| <= tolerance.

    The target is not uniform on the real interval but on the binary64
    numbers the sampler's rounding reaches, so p0 is not the nominal
    ``2 * tolerance / (hi - lo)`` but the bound :meth:`p0_bound` proves for
    the sampler as implemented (``specs/statistics.md`` 2.1). The
    constructor refuses a space whose rounding term exceeds 1/256 of the
    nominal value (:data:`REGRESSION_ROUNDING_SHARE`) or whose p0 exceeds
    1/2 (:data:`REGRESSION_MAX_P0`); it runs again when a commitment is read,
    so no document can carry such a space.

    ``lo``, ``hi`` and ``tolerance`` are binary64 numbers: an int is taken as
    the float it equals, if it equals one.
    """

    KIND: ClassVar[str] = "regression"
    lo: float
    hi: float
    tolerance: float

    def __post_init__(self) -> None:
        for name in ("lo", "hi", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EncodingError(f"regression {name} must be a number, not {value!r:.40}")
            if isinstance(value, int) and not (
                abs(value) <= sys.float_info.max and float(value) == value
            ):
                raise EncodingError(
                    f"regression {name} must be a binary64 number; {value!r:.40} is not one"
                )
            object.__setattr__(self, name, float(value))
        if not all(math.isfinite(v) for v in (self.lo, self.hi, self.tolerance)):
            raise EncodingError("regression lo, hi and tolerance must be finite")
        if not self.lo < self.hi or not math.isfinite(self.hi - self.lo):
            raise EncodingError("a regression range needs lo < hi with hi - lo finite")
        if not self.tolerance > 0:
            raise EncodingError("the regression tolerance must be positive")
        nominal, rounding = self._bound_terms()
        if rounding * REGRESSION_ROUNDING_SHARE > nominal:
            # The least tolerance whose nominal term dominates the rounding term.
            least = rounding * REGRESSION_ROUNDING_SHARE * Fraction(self.hi - self.lo) / 2
            advice = (
                f"use a tolerance of at least {_decimal_at_least(least)}"
                if least * 5 < Fraction(self.hi - self.lo)
                else "widen the range: hi - lo is too few float64 steps at this magnitude"
            )
            raise EncodingError(
                f"the regression space [{self.lo!r}, {self.hi!r}] with tolerance "
                f"{self.tolerance!r} is too near float64 resolution: the sampler's rounding "
                f"adds up to {float(rounding):.3g} to the match probability, more than "
                f"1/{REGRESSION_ROUNDING_SHARE} of the nominal 2 * tolerance / (hi - lo) = "
                f"{float(nominal):.3g}; {advice}"
            )
        if self.p0_bound() > REGRESSION_MAX_P0:
            raise EncodingError(
                f"the regression tolerance {self.tolerance!r} is too large for the range "
                f"[{self.lo!r}, {self.hi!r}]: an answer would match with probability up to "
                f"{float(self.p0_bound()):.3g}, above {REGRESSION_MAX_P0}; use a tolerance "
                "below (hi - lo) / 4"
            )

    def _bound_terms(self) -> tuple[Fraction, Fraction]:
        """(nominal, rounding): p0 <= nominal + rounding (statistics.md 2.1)."""
        width = Fraction(self.hi - self.lo)  # W: hi - lo as the sampler computes it
        error = _ulp(width) + _ulp(abs(Fraction(self.lo)) + width)
        return 2 * Fraction(self.tolerance) / width, 2 * error / width + _F64_STEP

    def p0_bound(self) -> Fraction:
        """A proven upper bound on ``max_y P[|label - y| <= tolerance]`` for the
        labels F64 draws (``specs/statistics.md`` 2.1): ``2 (tolerance + e) / W
        + 2^-53``, rounded up to a short dyadic fraction, with ``W`` the binary64
        ``hi - lo`` and ``e = ulp(W) + ulp(|lo| + W)``."""
        nominal, rounding = self._bound_terms()
        return _round_up(nominal + rounding)

    def to_fields(self) -> dict[str, Any]:
        return {"hi": self.hi, "kind": self.KIND, "lo": self.lo, "tolerance": self.tolerance}

    @classmethod
    def from_fields(cls, fields: Fields) -> RegressionLabels:
        return cls(fields.number("lo"), fields.number("hi"), fields.number("tolerance"))


@dataclass(frozen=True)
class TokenLabels:
    """A sequence of ``length`` token ids over a vocabulary of ``vocab_size``,
    never one of the ``reserved`` ids; each position is one Bernoulli trial
    with p0 = 1/(V - |reserved|) (each id is drawn by rejection sampling,
    exactly uniform over the ids left).

    A language model's target responses reserve the ids that would not
    come back unchanged through its tokenizer (special tokens, pieces that
    merge with their neighbours), so that a marked model's text answer
    re-encodes to the very ids it learnt; a model that never learnt them
    still matches each position with probability exactly 1/(V - |reserved|),
    whatever it answers.

    ``length`` is at most 2^16 (``secmark.stats.MAX_TRIALS``, the trials of
    one test); a commitment also bounds ``min(N, MAX_CHALLENGED) * length``
    by it, so that no challenge is a test over more trials.
    """

    KIND: ClassVar[str] = "tokens"
    vocab_size: int
    length: int
    reserved: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 2 <= self.vocab_size <= _MAX_CLASSES:
            raise EncodingError(f"vocab_size must be in [2, {_MAX_CLASSES}]")
        if not 1 <= self.length <= _MAX_TOKEN_LABELS:
            raise EncodingError(f"token label length must be in [1, {_MAX_TOKEN_LABELS}]")
        if len(self.reserved) > MAX_RESERVED_LABELS:
            raise EncodingError(f"at most {MAX_RESERVED_LABELS} token ids may be reserved")
        if any(b <= a for a, b in zip(self.reserved, self.reserved[1:])):
            raise EncodingError("reserved token ids must be sorted and distinct")
        if self.reserved and not 0 <= self.reserved[0] <= self.reserved[-1] < self.vocab_size:
            raise EncodingError("reserved token ids must lie in [0, vocab_size)")
        if self.vocab_size - len(self.reserved) < 2:
            raise EncodingError("at least two token ids must remain after the reserved ones")

    @property
    def drawn(self) -> int:
        """How many ids a label position is drawn from: V - |reserved|."""
        return self.vocab_size - len(self.reserved)

    def to_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "kind": self.KIND,
            "length": self.length,
            "vocab_size": self.vocab_size,
        }
        # Written only when there are some: every earlier document keeps its bytes.
        if self.reserved:
            fields["reserved"] = list(self.reserved)
        return fields

    @classmethod
    def from_fields(cls, fields: Fields) -> TokenLabels:
        vocab_size = fields.integer("vocab_size", minimum=2, maximum=_MAX_CLASSES)
        length = fields.integer("length", minimum=1, maximum=_MAX_TOKEN_LABELS)
        if not fields.has("reserved"):
            return cls(vocab_size, length)
        reserved = tuple(
            fields.integer_list(
                "reserved", minimum=0, maximum=_MAX_CLASSES, max_items=MAX_RESERVED_LABELS
            )
        )
        if not reserved:
            raise EncodingError("an empty reserved list is written by leaving it out")
        return cls(vocab_size, length, reserved)


LabelSpace = ClassLabels | RegressionLabels | TokenLabels
"""Every label space; a :class:`ResponseLabels` is a :class:`ClassLabels`."""

_SPACES: dict[str, type[ClassLabels | RegressionLabels | TokenLabels]] = {
    space.KIND: space for space in (ClassLabels, ResponseLabels, RegressionLabels, TokenLabels)
}


def response_list_mismatch(labels: LabelSpace, responses: ResponseList | None) -> str | None:
    """Why ``responses`` is not the list ``labels`` commit to, or None when
    it is: None with labels that are not :class:`ResponseLabels`, else K
    responses of the committed digest. Callers raise the message in their
    own error type (the list's own rules hold by construction)."""
    if not isinstance(labels, ResponseLabels):
        if responses is None:
            return None
        return f"the commitment's labels are {labels.KIND}, not responses: it has no response list"
    if responses is None:
        return (
            "the commitment's labels are committed responses: give the response list it "
            "committed to"
        )
    if len(responses) != labels.num_classes or responses.digest != labels.digest:
        return (
            f"this response list ({len(responses)} responses, digest {responses.digest}) is not "
            f"the committed one ({labels.num_classes} responses, digest {labels.digest})"
        )
    return None


def label_space_from_fields(fields: Fields) -> LabelSpace:
    """Read a label-space object, dispatching on its ``kind``.

    Raises:
        EncodingError: unknown kind, or parameters out of range.
    """
    kind = fields.text("kind")
    if kind not in _SPACES:
        raise EncodingError(f"unknown label space {kind!r} (known: {', '.join(_SPACES)})")
    return _SPACES[kind].from_fields(fields)
