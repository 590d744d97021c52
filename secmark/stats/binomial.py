"""Binomial tails, the exact decision threshold and Clopper-Pearson intervals.

Under the null hypothesis of ``specs/statistics.md`` the number of matches m
among k challenged triggers is Binomial(k, p0), so everything secmark
concludes from a dispute is a statement about that one distribution. Two kinds
of arithmetic are used, each where it belongs:

* The decision (is m significant at level alpha?) is taken with exact
  rationals and integers, so it never depends on rounding:
  :func:`exact_binomial_tail` and :func:`decision_threshold`.
* The reported p-value and confidence interval are floats computed in log
  space, which stay accurate far below the smallest double (about 2^-1074),
  where the p-value of a watermarked model usually lies:
  :func:`log2_binomial_tail`, :func:`binomial_tail` and :func:`clopper_pearson`.

Every function is pure. An argument of the wrong type raises ``TypeError`` and
a value outside its stated range raises ``ValueError`` naming the rule: these
are programming errors of the caller, not protocol failures, so they are not
:class:`secmark.errors.SecmarkError`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_TRIALS",
    "binomial_tail",
    "clopper_pearson",
    "decision_threshold",
    "exact_binomial_tail",
    "log2_binomial_tail",
]

_FloatArray = npt.NDArray[np.float64]

MAX_TRIALS = 1 << 16
"""Bound on k, the trials of one test (challenged triggers times labels per
trigger). DoS: the exact threshold costs about min(tau, k - tau) steps on
integers of k * log2(denominator of p0) bits, so it grows as k^2. Measured
(one core, alpha = 2^-64): k = 2^16 takes 1.4 s at p0 = 1/3 and 1.1 s at
1/2 (the costliest token spaces, p0 = 1/V); a regression p0 near 1/2 with a
9-bit denominator takes 2.1 s at k = 2^14, the most a regression or class
space reaches (one trial per trigger, k <= MAX_CHALLENGED). At k = 2^18
the same thresholds take 20 to 30 s. A commitment refuses a token space
whose challenges could exceed this bound."""


def _check_trials(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, not {type(k).__name__}")
    if not 1 <= k <= MAX_TRIALS:
        raise ValueError(
            f"k must be in [1, {MAX_TRIALS}] (got {k}): an exact test over more trials "
            "would take minutes"
        )


def _check_integer(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _check_count(k: int, m: int) -> None:
    _check_integer(m, "m")
    if not 0 <= m <= k:
        raise ValueError(f"m must satisfy 0 <= m <= k (got m={m}, k={k})")


def _check_exact_p0(p0: Fraction) -> None:
    if not isinstance(p0, Fraction):
        raise TypeError(
            "p0 must be a fractions.Fraction, not "
            f"{type(p0).__name__}: a float such as 0.1 is not the rational it looks like "
            "(use secmark.stats.null or Fraction('0.1'))"
        )
    if not 0 < p0 < 1:
        raise ValueError(f"p0 must lie strictly between 0 and 1 (got {p0})")


def _exact_probability(value: Fraction | float, name: str) -> Fraction:
    """``value`` as an exact rational in (0, 1); a float converts exactly."""
    if isinstance(value, bool) or not isinstance(value, (Fraction, float, int)):
        raise TypeError(f"{name} must be a Fraction or a float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value})")
    exact = Fraction(value)
    if not 0 < exact < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1 (got {value})")
    return exact


def _ln_fraction(x: Fraction) -> float:
    """Natural log of a positive rational, also below the float range."""
    nearest = float(x)
    if nearest >= sys.float_info.min:
        return math.log(nearest)
    # float(x) underflowed or lost precision as a subnormal; math.log takes
    # integers of any size.
    return math.log(x.numerator) - math.log(x.denominator)


def _ln_probability_pair(p0: Fraction | float) -> tuple[float, float]:
    """(ln p0, ln(1 - p0)), without the cancellation of ``log(1 - p0)``."""
    if isinstance(p0, Fraction):
        _check_exact_p0(p0)
        return _ln_fraction(p0), _ln_fraction(1 - p0)
    if isinstance(p0, bool) or not isinstance(p0, float):
        raise TypeError(f"p0 must be a Fraction or a float, not {type(p0).__name__}")
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must lie strictly between 0 and 1 (got {p0})")
    return math.log(p0), math.log1p(-p0)


def _ln_binomial_coefficients(k: int) -> _FloatArray:
    """ln C(k, i) for i = 0..k."""
    top = math.lgamma(k + 1)
    return np.array(
        [top - math.lgamma(i + 1) - math.lgamma(k - i + 1) for i in range(k + 1)],
        dtype=np.float64,
    )


def _ln_sum_of_terms(
    ln_coefficients: _FloatArray, indices: _FloatArray, k: int, ln_p: float, ln_q: float
) -> float:
    """ln of sum C(k, i) p^i q^(k-i) over the given i, by log-sum-exp."""
    ln_terms = ln_coefficients + indices * ln_p + (k - indices) * ln_q
    peak = float(ln_terms.max())
    return peak + math.log(float(np.exp(ln_terms - peak).sum()))


def _ln_tail(k: int, m: int, ln_p: float, ln_q: float) -> float:
    """ln P[Binom(k, p) >= m] for 1 <= m <= k."""
    indices = np.arange(m, k + 1, dtype=np.float64)
    ln_coefficients = _ln_binomial_coefficients(k)[m:]
    # Rounding can push a tail of nearly 1 a hair above it.
    return min(0.0, _ln_sum_of_terms(ln_coefficients, indices, k, ln_p, ln_q))


def log2_binomial_tail(k: int, m: int, p0: Fraction | float) -> float:
    """log2 P[Binom(k, p0) >= m], accurate however small the tail is.

    The tail is summed term by term in log space (log-sum-exp over
    ``lgamma``-based binomial coefficients), so a tail of 2^-128 or 2^-5000 is
    returned with a relative error in the log of about 1e-12 rather than
    underflowing. ``m`` may be any integer: ``m <= 0`` gives 0.0 (the tail is
    1) and ``m > k`` gives ``-inf`` (the tail is 0).

    Raises:
        TypeError: ``k`` or ``m`` is not an int, or ``p0`` is neither a
            Fraction nor a float.
        ValueError: ``k`` is not in [1, MAX_TRIALS], or ``p0`` is not strictly
            between 0 and 1.
    """
    _check_trials(k)
    _check_integer(m, "m")
    ln_p, ln_q = _ln_probability_pair(p0)
    if m <= 0:
        return 0.0
    if m > k:
        return -math.inf
    return _ln_tail(k, m, ln_p, ln_q) / math.log(2)


def binomial_tail(k: int, m: int, p0: Fraction | float) -> float:
    """P[Binom(k, p0) >= m] as a float.

    Computed in log space like :func:`log2_binomial_tail` and exponentiated
    once, so the result is accurate to about 1e-12 relative wherever it is a
    normal double; a tail below about 2^-1074 rounds to 0.0 (there is no
    float to hold it). Use :func:`log2_binomial_tail` to report such tails and
    :func:`decision_threshold` to decide.

    Raises:
        TypeError, ValueError: as :func:`log2_binomial_tail`.
    """
    _check_trials(k)
    _check_integer(m, "m")
    ln_p, ln_q = _ln_probability_pair(p0)
    if m <= 0:
        return 1.0
    if m > k:
        return 0.0
    return math.exp(_ln_tail(k, m, ln_p, ln_q))


def exact_binomial_tail(k: int, m: int, p0: Fraction) -> Fraction:
    """P[Binom(k, p0) >= m] as an exact rational.

    ``p0`` must be a :class:`~fractions.Fraction`: the tail of a float that
    only approximates the intended probability would be exact about the
    wrong distribution. ``m <= 0`` gives 1 and ``m > k`` gives 0. The cost
    is k - m + 1 steps on integers of about k * log2(denominator of p0) bits.

    Raises:
        TypeError: ``k`` or ``m`` is not an int, or ``p0`` is not a Fraction.
        ValueError: ``k`` is not in [1, MAX_TRIALS], or ``p0`` is not strictly
            between 0 and 1.
    """
    _check_trials(k)
    _check_integer(m, "m")
    _check_exact_p0(p0)
    if m <= 0:
        return Fraction(1)
    if m > k:
        return Fraction(0)
    n, d = p0.numerator, p0.denominator
    q = d - n
    # C(k, i) n^i q^(k-i) from the term for i + 1; the division is exact
    # because the quotient is that integer.
    term = n**k
    total = term
    for i in range(k - 1, m - 1, -1):
        term = term * (i + 1) * q // ((k - i) * n)
        total += term
    return Fraction(total, d**k)


def decision_threshold(k: int, p0: Fraction, alpha: Fraction | float) -> int:
    """The smallest m with P[Binom(k, p0) >= m] <= alpha, decided exactly.

    A match count m rejects the null hypothesis at level alpha exactly when
    ``m >= decision_threshold(k, p0, alpha)``; a tail equal to alpha rejects.
    The comparison is made on integers, so no rounding can move the boundary.
    ``alpha`` may be a Fraction or a float; a float is taken at its exact
    binary value (2.0**-64 is exactly 2^-64).

    A result of ``k + 1`` means that even k matches out of k are not
    significant at this alpha (p0^k > alpha): k is too small to ever decide,
    and the dispute needs more challenges.

    The tail is accumulated term by term from the nearer end (from m = 0
    upward when p0 <= 1/2, else from m = k downward) and stops at the
    boundary, so the cost is about min(threshold, k - threshold) steps on
    integers of k * log2(denominator of p0) bits: k = 10,000 takes well
    under a second, and :data:`MAX_TRIALS` bounds k.

    Raises:
        TypeError: ``k`` is not an int, ``p0`` is not a Fraction, or
            ``alpha`` is neither a Fraction nor a float.
        ValueError: ``k`` is not in [1, MAX_TRIALS], or ``p0`` or ``alpha``
            is not strictly between 0 and 1.
    """
    _check_trials(k)
    _check_exact_p0(p0)
    level = _exact_probability(alpha, "alpha")
    n, d = p0.numerator, p0.denominator
    q = d - n
    # Both loops decide on the integers scaled by d^k: term(i) = C(k, i) n^i
    # q^(k-i) is d^k P[Binom(k, p0) = i], and each term follows from its
    # neighbour by one exact integer division (the quotient is that integer).
    # They give the same threshold; the cost is the number of terms visited,
    # so the tail is summed from whichever end lies nearer: the threshold lies
    # above the mean k * p0, so from below when p0 <= 1/2.
    if 2 * p0 <= 1:
        # tail(m) <= alpha  <=>  cdf(m - 1) * alpha.den >= (alpha.den - alpha.num) * d^k,
        # where cdf(j) = sum over i <= j of term(i); cdf(k) = d^k ends the loop.
        target = (level.denominator - level.numerator) * d**k
        threshold = 1  # tail(0) = 1 > alpha
        term = q**k  # term(threshold - 1)
        scaled_cdf = term
        while scaled_cdf * level.denominator < target:
            term = term * (k - threshold + 1) * n // (threshold * q)
            scaled_cdf += term
            threshold += 1
        return threshold
    # tail(m) <= alpha  <=>  scaled_tail(m) * alpha.den <= alpha.num * d^k,
    # where scaled_tail(m) = sum over i >= m of term(i).
    bound = level.numerator * d**k
    threshold = k + 1
    scaled_tail = 0
    term = n**k  # the term for i = threshold - 1
    # The loop ends by threshold 1 at the latest: tail(0) = 1 > alpha.
    while (scaled_tail + term) * level.denominator <= bound:
        scaled_tail += term
        threshold -= 1
        i = threshold - 1
        term = term * (i + 1) * q // ((k - i) * n)
    return threshold


def _bisect(predicate: Callable[[float], bool]) -> tuple[float, float]:
    """Adjacent floats (below, above) in [0, 1] around where ``predicate``
    turns true, for a predicate that is false below a point and true above.

    Neither end point is evaluated, so the predicate never sees p = 0 or 1.
    """
    below, above = 0.0, 1.0
    while True:
        middle = below + (above - below) / 2
        if middle <= below or middle >= above:
            return below, above
        if predicate(middle):
            above = middle
        else:
            below = middle


def clopper_pearson(k: int, m: int, confidence: Fraction | float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for the match rate.

    With a = 1 - confidence, the lower bound is the p with
    P[Binom(k, p) >= m] = a/2 (0 when m = 0) and the upper bound the p with
    P[Binom(k, p) <= m] = a/2 (1 when m = k). Each is found by bisection on
    the log-space tail to the last bit of the double, and rounded outward, so
    the interval is never narrower than the exact one by more than the error
    of the tail (about 1e-12 relative). It contains m/k and lies in [0, 1].

    Raises:
        TypeError: ``k`` or ``m`` is not an int, or ``confidence`` is neither
            a Fraction nor a float.
        ValueError: ``k`` is not in [1, MAX_TRIALS], ``m`` is not in [0, k],
            or ``confidence`` is not strictly between 0 and 1.
    """
    _check_trials(k)
    _check_count(k, m)
    level = _exact_probability(confidence, "confidence")
    ln_half_miss = _ln_fraction((1 - level) / 2)
    ln_coefficients = _ln_binomial_coefficients(k)
    indices = np.arange(k + 1, dtype=np.float64)

    def upper_tail_reaches(p: float) -> bool:
        ln_tail = _ln_sum_of_terms(ln_coefficients[m:], indices[m:], k, math.log(p), math.log1p(-p))
        return ln_tail >= ln_half_miss

    def lower_tail_falls_short(p: float) -> bool:
        ln_cdf = _ln_sum_of_terms(
            ln_coefficients[: m + 1], indices[: m + 1], k, math.log(p), math.log1p(-p)
        )
        return ln_cdf < ln_half_miss

    low = 0.0 if m == 0 else _bisect(upper_tail_reaches)[0]
    high = 1.0 if m == k else _bisect(lower_tail_falls_short)[1]
    return low, high
