"""How many queries a thief makes before a copy extracted from marked answers is detected.

The model (``specs/serving.md`` 6):

* A thief asks n distinct inputs. Each is marked independently with the
  policy's exact rate r (the marking draw is a VRF output the thief cannot
  predict), so the marks among his queries are Binomial(n, r).
* The copy he trains reproduces each marked answer it was trained on with
  probability q (its *agreement*), independently; q = 1 is a copy that
  memorises its training answers, as a model trained to zero training loss
  does.
* The arbiter tests all k marked entries of the account: the copy is
  detected when its matches reach ``decision_threshold(k, p0, alpha / A)``,
  with A the client accounts in the log (the correction for an owner who
  tries every account).

For q = 1 the copy is detected exactly when k reaches ``marks_needed``, the
smallest k with ``p0^k <= alpha / A``, so the detection probability after n
queries is ``P[Binomial(n, r) >= marks_needed]``, nondecreasing in n, and the
answer is exact. For q < 1 the detection probability after n queries is the
mixture ``sum_k P[Binomial(n, r) = k] * P[Binomial(k, q) >= threshold(k)]``,
with exact thresholds and tails in log space; it is nearly but not exactly
monotone in n (thresholds step), and the answer is the smallest n the
bisection finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from secmark.stats.binomial import MAX_TRIALS, binomial_tail, decision_threshold
from secmark.stats.planning import DEFAULT_TARGET_POWER
from secmark.stats.verdict import DEFAULT_ALPHA

__all__ = ["MAX_QUERIES", "ExtractionPlan", "extraction_plan"]

MAX_QUERIES = 1 << 40
"""The largest number of thief queries the plan searches."""

# Marked entries one test may hold (the exact tests' bound).
_MAX_MARKS = MAX_TRIALS
# Binomial(n, r) is summed over its mean +- this many standard deviations;
# the mass outside is below 1e-30.
_SPREAD = 12.0


@dataclass(frozen=True)
class ExtractionPlan:
    """The answer of :func:`extraction_plan`."""

    rate: Fraction
    p0: Fraction
    alpha: Fraction
    accounts: int
    agreement: Fraction
    power: Fraction
    marks_needed: int | None
    """The fewest marked entries of the account that decide with the target
    power (None: none up to the exact tests' bound of 2^16)."""
    queries_needed: int | None
    """The fewest distinct queries after which the copy is detected with the
    target power (None: beyond :data:`MAX_QUERIES`, or no marks_needed)."""
    detection_probability: float | None
    """The detection probability at ``queries_needed``."""


def _ln_pmf(n: int, k: int, ln_r: float, ln_s: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * ln_r + (n - k) * ln_s
    )


class _Detection:
    """P[detected | k marks] and P[detected | n queries], with cached thresholds."""

    def __init__(self, rate: Fraction, p0: Fraction, level: Fraction, agreement: Fraction) -> None:
        self._rate = rate
        self._p0 = p0
        self._level = level
        self._agreement = agreement
        self._given_marks: dict[int, float] = {}

    def given_marks(self, k: int) -> float:
        if k == 0:
            return 0.0
        if k > _MAX_MARKS:
            return self.given_marks(_MAX_MARKS)
        cached = self._given_marks.get(k)
        if cached is None:
            threshold = decision_threshold(k, self._p0, self._level)
            if threshold > k:
                cached = 0.0
            elif self._agreement == 1:
                cached = 1.0
            else:
                cached = binomial_tail(k, threshold, self._agreement)
            self._given_marks[k] = cached
        return cached

    def given_queries(self, n: int) -> float:
        r = float(self._rate)
        mean = n * r
        spread = _SPREAD * math.sqrt(max(mean * (1 - r), 1.0))
        low, high = max(0, math.floor(mean - spread)), min(n, math.ceil(mean + spread))
        ln_r, ln_s = math.log(r), math.log1p(-r)
        return math.fsum(
            math.exp(_ln_pmf(n, k, ln_r, ln_s)) * self.given_marks(k) for k in range(low, high + 1)
        )


def _marks_needed(detection: _Detection, power: Fraction) -> int | None:
    for k in range(1, _MAX_MARKS + 1):
        if detection.given_marks(k) >= power:
            return k
    return None


def _lower_tail(n: int, k: int, rate: Fraction) -> float:
    """P[Binomial(n, rate) < k], for n beyond the exact tests' bound too."""
    r = float(rate)
    ln_r, ln_s = math.log(r), math.log1p(-r)
    return math.fsum(math.exp(_ln_pmf(n, i, ln_r, ln_s)) for i in range(min(k, n + 1)))


def extraction_plan(
    rate: Fraction,
    p0: Fraction,
    *,
    alpha: Fraction = DEFAULT_ALPHA,
    accounts: int = 1,
    agreement: Fraction = Fraction(1),
    power: Fraction = DEFAULT_TARGET_POWER,
) -> ExtractionPlan:
    """The fewest thief queries after which a copy is detected (module docstring).

    Raises:
        ValueError: ``rate``, ``p0``, ``alpha`` or ``power`` not strictly
            between 0 and 1, ``agreement`` not in (p0, 1], or ``accounts``
            below 1.
    """
    for value, name in ((rate, "rate"), (p0, "p0"), (alpha, "alpha"), (power, "power")):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be strictly between 0 and 1")
    if not p0 < agreement <= 1:
        raise ValueError("the agreement must be above p0 (else no test detects) and at most 1")
    if accounts < 1:
        raise ValueError("a log has at least one client account")
    level = Fraction(alpha) / accounts
    detection = _Detection(rate, p0, level, agreement)
    marks = _marks_needed(detection, power)
    queries: int | None = None
    probability: float | None = None
    if marks is not None:
        miss = float(1 - power)
        if agreement == 1:

            def detected(n: int) -> bool:
                return _lower_tail(n, marks, rate) <= miss
        else:

            def detected(n: int) -> bool:
                return detection.given_queries(n) >= float(power)

        high = marks
        while high <= MAX_QUERIES and not detected(high):
            high *= 2
        if high <= MAX_QUERIES:
            low = high // 2
            while high - low > 1:
                middle = (low + high) // 2
                if detected(middle):
                    high = middle
                else:
                    low = middle
            queries = high
            probability = (
                1.0 - _lower_tail(queries, marks, rate)
                if agreement == 1
                else detection.given_queries(queries)
            )
    return ExtractionPlan(
        rate=rate,
        p0=p0,
        alpha=Fraction(alpha),
        accounts=accounts,
        agreement=Fraction(agreement),
        power=Fraction(power),
        marks_needed=marks,
        queries_needed=queries,
        detection_probability=probability,
    )
