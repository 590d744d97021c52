"""The null distribution a verdict is judged against, for plotting.

A model never trained on the owner's triggers matches each of k trials
with probability p0, so its match count X is Binomial(k, p0). The exhibit
plots log2 P[X = m] and log2 P[X >= m] against m.

For p0 = n/d, every term C(k, m) n^m (d - n)^(k - m) is an exact integer,
and one sweep from m = k down to 0 gives every term and every tail exactly
(each term from the next by an exact division, the tails as running sums);
each is turned into a log2 only at the end. The sweep costs k steps on
integers of about k * log2(d) bits; beyond :data:`MAX_EXACT_BITS` (token
spaces with a large vocabulary and a large k) the curve is computed in log
space with ``lgamma`` instead, as :func:`secmark.stats.log2_binomial_tail`
does (relative error about 1e-12 in the log, far below what a plot shows).
Either way the threshold's tail is exact
(:func:`secmark.stats.exact_binomial_tail`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from secmark.stats import exact_binomial_tail

__all__ = ["MAX_EXACT_BITS", "MAX_PLOTTED_POINTS", "NullCurve", "null_curve"]

MAX_PLOTTED_POINTS = 401
"""Beyond this many match counts the curve is sampled at evenly spaced ones
(plus the threshold and the observed count): a screen shows no more."""

MAX_EXACT_BITS = 1 << 17
"""Largest k times the bit length of d swept exactly: about a second on one
core at the bound (k = 2^15 at p0 = 1/10); the log-space curve costs
milliseconds at any k."""


@dataclass(frozen=True)
class NullCurve:
    """log2 P[X = m] and log2 P[X >= m] for X ~ Binomial(k, p0), at the match
    counts ``points`` (ascending), and ``log2_threshold_tail``, the exact
    log2 P[X >= threshold] (``-inf`` when the threshold is above k: no count
    is significant). ``exact`` says which arithmetic gave the curve."""

    k: int
    p0: Fraction
    threshold: int
    points: tuple[int, ...]
    log2_pmf: tuple[float, ...]
    log2_tail: tuple[float, ...]
    log2_threshold_tail: float
    exact: bool


def _log2(value: Fraction) -> float:
    if value == 0:
        return -math.inf
    return math.log2(value.numerator) - math.log2(value.denominator)


def _points(upto: int, extra: tuple[int, ...]) -> tuple[int, ...]:
    if upto + 1 <= MAX_PLOTTED_POINTS:
        return tuple(range(upto + 1))
    step = upto / (MAX_PLOTTED_POINTS - 1)
    chosen = {round(i * step) for i in range(MAX_PLOTTED_POINTS)}
    chosen.update(m for m in extra if 0 <= m <= upto)
    return tuple(sorted(chosen))


def _exact(k: int, p0: Fraction, points: tuple[int, ...]) -> tuple[list[float], list[float]]:
    n, d = p0.numerator, p0.denominator
    q = d - n
    scale = k * math.log2(d)
    wanted = set(points)
    pmf: dict[int, float] = {}
    tail: dict[int, float] = {}
    term = n**k
    total = term
    for m in range(k, -1, -1):
        if m < k:
            # C(k, m) n^m q^(k-m) from the term for m + 1; the division is exact.
            term = term * (m + 1) * q // ((k - m) * n)
            total += term
        if m in wanted:
            pmf[m] = math.log2(term) - scale
            # The tail is at most 1; rounding of the two logs must not say more.
            tail[m] = min(math.log2(total) - scale, 0.0)
    return [pmf[m] for m in points], [tail[m] for m in points]


def _log_space(k: int, p0: Fraction, points: tuple[int, ...]) -> tuple[list[float], list[float]]:
    m = np.arange(k + 1, dtype=np.float64)
    ln_coefficients = np.array(
        [math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1) for i in range(k + 1)]
    )
    ln_p = math.log(p0.numerator) - math.log(p0.denominator)
    ln_q = math.log(p0.denominator - p0.numerator) - math.log(p0.denominator)
    ln_pmf = ln_coefficients + m * ln_p + (k - m) * ln_q
    # Tails from the top down, each a log-sum-exp of the terms above it.
    ln_tail = np.logaddexp.accumulate(ln_pmf[::-1])[::-1]
    ln_tail = np.minimum(ln_tail, 0.0)
    log2_e = 1 / math.log(2)
    return (
        [float(ln_pmf[i]) * log2_e for i in points],
        [float(ln_tail[i]) * log2_e for i in points],
    )


def null_curve(
    k: int, p0: Fraction, threshold: int, *, observed: int, upto: int | None = None
) -> NullCurve:
    """The curve for a test of k trials at null match probability ``p0``
    whose decision threshold is ``threshold``, at the match counts 0 to
    ``upto`` (default k), sampled so that the threshold and the ``observed``
    count are among the points when they are in that range.

    Raises:
        TypeError, ValueError: as :func:`secmark.stats.exact_binomial_tail`
            (k outside [1, MAX_TRIALS], p0 not a Fraction strictly between 0
            and 1).
    """
    log2_threshold_tail = _log2(exact_binomial_tail(k, threshold, p0))
    points = _points(k if upto is None else max(0, min(upto, k)), (threshold, observed))
    exact = k * p0.denominator.bit_length() <= MAX_EXACT_BITS
    pmf, tail = (_exact if exact else _log_space)(k, p0, points)
    return NullCurve(
        k=k,
        p0=p0,
        threshold=threshold,
        points=points,
        log2_pmf=tuple(pmf),
        log2_tail=tuple(tail),
        log2_threshold_tail=log2_threshold_tail,
        exact=exact,
    )
