"""The match probability p0 of a model that never saw the trigger set.

Every trigger's label is drawn uniformly from the label space by a VRF whose
output nobody can predict without the owner's secret key, independently of
the trigger's input and of every other trigger. A model that was not trained
on the triggers therefore answers with something that does not depend on the
label, and whatever it answers (even the same class for every input) matches
a uniform label with a probability fixed by the label space alone. The
functions here return that probability, or an upper bound on it, as an exact
rational; an upper bound only makes the test more conservative.

What the caller must still guarantee: the labels really are uniform over the
space described here, and the suspect model was fixed before the challenged
labels were revealed (see ``specs/statistics.md``).

A value outside its stated range raises ``ValueError`` naming the rule, and
an argument of the wrong type raises ``TypeError``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels, TokenLabels

__all__ = ["classification_p0", "null_match_probability", "regression_p0", "token_p0"]


def _check_size(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 2:
        raise ValueError(f"{name} must be at least 2 (got {value})")


def _exact(value: Fraction | float, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (Fraction, float, int)):
        raise TypeError(f"{name} must be a Fraction, an int or a float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value})")
    return Fraction(value)


def classification_p0(num_classes: int) -> Fraction:
    """1/K: the chance that any fixed answer equals a label uniform over K classes.

    This holds exactly, not as a bound, for every model whose answer does not
    depend on the label, whatever its distribution over classes.

    Raises:
        TypeError: ``num_classes`` is not an int.
        ValueError: ``num_classes < 2``.
    """
    _check_size(num_classes, "num_classes")
    return Fraction(1, num_classes)


def regression_p0(
    lo: Fraction | float, hi: Fraction | float, tolerance: Fraction | float
) -> Fraction:
    """min(1, 2 * tolerance / (hi - lo)): the chance of a match for a continuous target.

    The target is uniform on [lo, hi] and a prediction y matches when
    |y - target| <= tolerance, so for a y that does not depend on the target
    the match probability is the length of [y - tolerance, y + tolerance]
    intersected with [lo, hi], divided by hi - lo. That is exactly
    2 * tolerance / (hi - lo) when the window fits inside the range, and less
    when y lies near or beyond an edge; the bound holds for every model.

    The bound assumes a continuous uniform target. secmark's sampler draws
    binary64 numbers, whose rounding can push the match probability far
    above this (a range a few ulps wide makes it near 1): the p0 of a
    committed space is :func:`null_match_probability`, proven for the
    sampler as implemented, never this function. A result of 1 means every
    prediction may match and no test is possible; the binomial functions
    reject it.

    Arguments convert to rationals exactly (a float at its binary value).

    Raises:
        TypeError: an argument is not a Fraction, an int or a float.
        ValueError: an argument is not finite, ``lo >= hi`` or
            ``tolerance <= 0``.
    """
    low, high = _exact(lo, "lo"), _exact(hi, "hi")
    eps = _exact(tolerance, "tolerance")
    if low >= high:
        raise ValueError(f"lo must be less than hi (got lo={lo}, hi={hi})")
    if eps <= 0:
        raise ValueError(f"tolerance must be positive (got {tolerance})")
    return min(Fraction(1), 2 * eps / (high - low))


def token_p0(vocab_size: int) -> Fraction:
    """1/V: the chance that a predicted token equals a label token uniform over V.

    Each token of a target sequence is an independent uniform draw, so for
    each position the match probability is exactly 1/V given everything the
    model may see before that position (the input and, with teacher forcing,
    the earlier target tokens): the per-token matches of an untrained model
    are independent Bernoulli(1/V), and k challenged tokens are Binomial(k, 1/V).
    The model must not see the target token itself or later ones.

    Raises:
        TypeError: ``vocab_size`` is not an int.
        ValueError: ``vocab_size < 2``.
    """
    _check_size(vocab_size, "vocab_size")
    return Fraction(1, vocab_size)


def null_match_probability(space: LabelSpace) -> Fraction:
    """p0 for a committed label space (per position for token labels).

    It bounds ``max_y P[label matches y]`` for the labels the derivation
    really draws (``specs/statistics.md`` 2): exactly 1/K for classes and
    1/(V - |reserved|) for tokens, whose labels are drawn by rejection
    sampling, and for a
    regression space :meth:`RegressionLabels.p0_bound`, which adds the
    float64 sampler's rounding to :func:`regression_p0` and rounds the sum up
    to a short fraction.
    """
    if isinstance(space, ClassLabels):
        return classification_p0(space.num_classes)
    if isinstance(space, RegressionLabels):
        # Not regression_p0: the bound for the float64 sampler as implemented.
        return space.p0_bound()
    if isinstance(space, TokenLabels):
        return token_p0(space.drawn)
    raise TypeError(f"unknown label space {type(space).__name__}")
