"""The one-sided exact binomial test behind a watermark verdict.

:func:`binomial_test` turns a dispute's counts (k challenged triggers, m
matches) into a :class:`BinomialTestResult`. The decision is taken exactly,
by comparing m with :func:`~secmark.stats.binomial.decision_threshold`; the
p-value and interval alongside it are for people and are floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from secmark.stats.binomial import (
    binomial_tail,
    clopper_pearson,
    decision_threshold,
    log2_binomial_tail,
)

__all__ = ["DEFAULT_ALPHA", "DEFAULT_CONFIDENCE", "BinomialTestResult", "binomial_test"]

DEFAULT_ALPHA = Fraction(1, 2**64)
"""Significance level: the most a false ownership claim may succeed with.

Every dispute is a fresh test (the arbiter picks the challenged triggers
after the claim is committed), so a claimant who tries T disputes against
innocent models succeeds with probability at most T * alpha. At 2^-64 even
2^32 attempts leave 2^-32, the margin the rest of the protocol keeps against
an attack that must run online.
"""

DEFAULT_CONFIDENCE = 0.95
"""Level of the reported interval for the match rate. It describes the
suspect model and plays no part in the decision."""


@dataclass(frozen=True)
class BinomialTestResult:
    """The outcome of :func:`binomial_test`.

    ``decision`` is True when the null hypothesis (the model was never trained
    on the triggers) is rejected at level alpha; it is ``m >= threshold``,
    decided on exact rationals. The float ``p_value`` can round to either side
    of ``alpha`` when the two are within a rounding error of each other, and
    underflows to 0.0 below about 2^-1074: ``decision`` and ``log2_p_value``
    are what to rely on.

    Attributes:
        k: challenged triggers.
        m: matches among them.
        p0: the null match probability, rounded to a float.
        p0_exact: the null match probability as an exact fraction, "1/10".
        alpha: the significance level, rounded to a float (0.0 below the
            float range).
        alpha_exact: the significance level as an exact fraction.
        log2_alpha: log2 of the significance level.
        threshold: the smallest match count that rejects; k + 1 when none does.
        decision: True when the null hypothesis is rejected.
        p_value: P[Binomial(k, p0) >= m].
        log2_p_value: log2 of the p-value, accurate below the float range.
        match_rate: m / k.
        confidence: level of the interval.
        ci_low: lower Clopper-Pearson bound on the match rate.
        ci_high: upper Clopper-Pearson bound on the match rate.
    """

    k: int
    m: int
    p0: float
    p0_exact: str
    alpha: float
    alpha_exact: str
    log2_alpha: float
    threshold: int
    decision: bool
    p_value: float
    log2_p_value: float
    match_rate: float
    confidence: float
    ci_low: float
    ci_high: float


def binomial_test(
    k: int,
    m: int,
    p0: Fraction,
    alpha: Fraction | float = DEFAULT_ALPHA,
    *,
    confidence: Fraction | float = DEFAULT_CONFIDENCE,
) -> BinomialTestResult:
    """Test whether m matches among k triggers reject "never trained on them".

    ``p0`` is the exact null match probability from :mod:`secmark.stats.null`.
    ``alpha`` may be a Fraction or a float, taken at its exact value.

    Raises:
        TypeError: ``k`` or ``m`` is not an int, ``p0`` is not a Fraction, or
            ``alpha`` or ``confidence`` is not a Fraction or a float.
        ValueError: ``k`` is not in [1, MAX_TRIALS], ``m`` is not in [0, k],
            or ``p0``, ``alpha`` or ``confidence`` is not strictly between 0
            and 1.
    """
    # These two validate every argument.
    threshold = decision_threshold(k, p0, alpha)
    ci_low, ci_high = clopper_pearson(k, m, confidence)
    level = Fraction(alpha)
    return BinomialTestResult(
        k=k,
        m=m,
        p0=float(p0),
        p0_exact=str(p0),
        alpha=float(level),
        alpha_exact=str(level),
        log2_alpha=math.log2(level.numerator) - math.log2(level.denominator),
        threshold=threshold,
        decision=m >= threshold,
        p_value=binomial_tail(k, m, p0),
        log2_p_value=log2_binomial_tail(k, m, p0),
        match_rate=m / k,
        confidence=float(confidence),
        ci_low=ci_low,
        ci_high=ci_high,
    )
