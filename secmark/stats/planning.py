"""How many triggers N to embed and how many k to challenge per dispute.

The model (stated normatively in ``specs/statistics.md``):

* Under the null hypothesis each challenged trigger matches with probability
  p0, independently, and the claim succeeds when the matches reach the exact
  :func:`~secmark.stats.binomial.decision_threshold`.
* Under the alternative (the suspect model is the owner's, possibly attacked)
  each trigger is *retained* with probability r, independently; a retained
  trigger answers its label and a forgotten one matches by chance, with p0.
* Each dispute reveals the k challenged triggers, drawn uniformly by the
  arbiter from the N. A thief who reads revealed triggers can make the model
  miss them, so a challenged trigger that was revealed before counts as a
  miss. The plan chooses N so that, in expectation, at most a fraction f of
  the set is revealed before the last of D disputes, and plans k for that
  last dispute. A challenged trigger then matches with probability
  p1 = (1 - f) * (r + (1 - r) * p0), with f = 0 when D = 1.

k is the smallest number of challenges whose threshold is reachable and whose
power P[Binomial(k, p1) >= threshold] reaches the target; both are computed
exactly. Power is not monotone in k (it drops each time the threshold steps
up), so every k is tried in turn; a running pair of exact tails makes each
step cost a few operations on integers.

The model's limits: retention is assumed independent from trigger to trigger
(an attack that erases some triggers wholesale breaks that), and a thief who
distils the model from its answers to ordinary inputs removes trigger-set
watermarks, leaving retention near p0, where no k helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from secmark.stats.verdict import DEFAULT_ALPHA

__all__ = [
    "DEFAULT_DISPUTES",
    "DEFAULT_MAX_REVEALED_FRACTION",
    "DEFAULT_RETENTIONS",
    "DEFAULT_TARGET_POWER",
    "MAX_CHALLENGES",
    "Plan",
    "plan",
    "plan_table",
]

DEFAULT_TARGET_POWER = 1 - Fraction(1, 2**20)
"""An honest owner's claim against the attacked model fails at most once in
about a million disputes. k grows only with the square root of
log(1 / (1 - power)), so asking for more costs little."""

DEFAULT_DISPUTES = 10
"""Disputes one trigger set is expected to serve over its lifetime."""

DEFAULT_MAX_REVEALED_FRACTION = Fraction(1, 10)
"""At most a tenth of the set is public (in expectation) when the last
dispute runs, which costs at most a tenth of the owner's match rate."""

DEFAULT_RETENTIONS = (
    Fraction(1),
    Fraction(9, 10),
    Fraction(3, 4),
    Fraction(1, 2),
    Fraction(3, 10),
)
"""Retention rates :func:`plan_table` tabulates: from an untouched model to
one fine-tuned or pruned until it keeps under a third of its triggers."""

MAX_CHALLENGES = 16384
"""The largest k a plan considers. Each challenge is a query to the suspect
model and a trigger revealed for good; past 2^14 a dispute spends more than
an owner can afford, and a retention that needs more is too close to chance
for a trigger set to be the right evidence."""


@dataclass(frozen=True)
class Plan:
    """A recommended trigger-set size and challenge count.

    Attributes:
        p0: null match probability per trigger.
        alpha: significance level of each dispute.
        retention: assumed per-trigger retention r of the attacked model.
        target_power: the required chance that an honest claim succeeds.
        disputes: disputes D the set must serve.
        max_revealed_fraction: bound f on the expected revealed fraction
            before the last dispute.
        match_probability: p1, the per-trigger match probability the power
            is computed at (see the module docstring).
        k: triggers to challenge per dispute.
        threshold: matches out of k that reject the null, exactly.
        trigger_set_size: N, the triggers to embed.
        revealed_fraction: expected fraction of the N revealed by the first
            D - 1 disputes, at most ``max_revealed_fraction``.
        power: P[Binomial(k, p1) >= threshold], at least ``target_power``.
        log2_miss: log2(1 - power); ``-inf`` when power is 1.
        false_claim: P[Binomial(k, p0) >= threshold], the exact chance that
            a claim against an innocent model succeeds, at most ``alpha``
            (rounded to a float, 0.0 below the float range).
        log2_false_claim: log2 of ``false_claim``, from the exact value.
    """

    p0: Fraction
    alpha: Fraction
    retention: Fraction
    target_power: Fraction
    disputes: int
    max_revealed_fraction: Fraction
    match_probability: Fraction
    k: int
    threshold: int
    trigger_set_size: int
    revealed_fraction: float
    power: float
    log2_miss: float
    false_claim: float
    log2_false_claim: float


class _ScaledTail:
    """P[Binomial(k, p) >= m] as exact integers, while k and m grow by one.

    With p = n/d and q = d - n, keeps ``tail`` = sum over i >= m of
    C(k, i) n^i q^(k-i) (the tail times d^k), ``below`` = the term for
    i = m - 1 and ``scale`` = d^k. Starts at k = 1, m = 1.
    """

    def __init__(self, p: Fraction) -> None:
        self._n = p.numerator
        self._d = p.denominator
        self._q = self._d - self._n
        self.k = 1
        self.m = 1
        self._tail = self._n
        self._below = self._q
        self._scale = self._d

    def add_trial(self) -> None:
        """k -> k + 1: P_{k+1}[X >= m] = P_k[X >= m] + p * P_k[X = m - 1]."""
        k, j = self.k, self.m - 1
        self._tail = self._d * self._tail + self._n * self._below
        # C(k+1, j) = C(k, j) (k+1) / (k+1-j); the division is exact.
        self._below = self._below * (k + 1) * self._q // (k + 1 - j)
        self._scale *= self._d
        self.k += 1

    def raise_threshold(self) -> None:
        """m -> m + 1, for m <= k: drop the term for i = m from the tail."""
        k, m = self.k, self.m
        if self._q == 0:
            # p = 1: all the mass is on i = k, and the recurrence would divide by q.
            at_m = self._n**k if m == k else 0
        else:
            at_m = self._below * (k - m + 1) * self._n // (m * self._q)
        self._tail -= at_m
        self._below = at_m
        self.m += 1

    def at_most(self, bound: Fraction) -> bool:
        return self._tail * bound.denominator <= bound.numerator * self._scale

    def at_least(self, bound: Fraction) -> bool:
        return self._tail * bound.denominator >= bound.numerator * self._scale

    def value(self) -> Fraction:
        return Fraction(self._tail, self._scale)


def _probability(
    value: Fraction | float, name: str, *, allow_zero: bool = False, allow_one: bool = False
) -> Fraction:
    """``value`` as an exact rational in (0, 1), a float at its binary value."""
    if isinstance(value, bool) or not isinstance(value, (Fraction, float, int)):
        raise TypeError(f"{name} must be a Fraction or a float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value})")
    exact = Fraction(value)
    low_ok = exact > 0 or (allow_zero and exact == 0)
    high_ok = exact < 1 or (allow_one and exact == 1)
    if not (low_ok and high_ok):
        interval = ("[" if allow_zero else "(") + "0, 1" + ("]" if allow_one else ")")
        raise ValueError(f"{name} must lie in {interval} (got {value})")
    return exact


def _log2(x: Fraction) -> float:
    if x == 0:
        return -math.inf
    return math.log2(x.numerator) - math.log2(x.denominator)


def _trigger_set_size(k: int, disputes: int, max_revealed: Fraction) -> int:
    """The smallest N >= k with 1 - (1 - k/N)^(disputes - 1) <= max_revealed."""
    earlier = disputes - 1
    if earlier == 0:
        return k
    keep = 1 - max_revealed

    def enough(size: int) -> bool:
        return Fraction(size - k, size) ** earlier >= keep

    # N = k reveals everything, so the search starts above it.
    too_small, large_enough = k, 2 * k
    while not enough(large_enough):
        too_small, large_enough = large_enough, 2 * large_enough
    while large_enough - too_small > 1:
        middle = (too_small + large_enough) // 2
        if enough(middle):
            large_enough = middle
        else:
            too_small = middle
    return large_enough


def plan(
    p0: Fraction,
    retention: Fraction | float,
    *,
    alpha: Fraction | float = DEFAULT_ALPHA,
    target_power: Fraction | float = DEFAULT_TARGET_POWER,
    disputes: int = DEFAULT_DISPUTES,
    max_revealed_fraction: Fraction | float = DEFAULT_MAX_REVEALED_FRACTION,
    max_challenges: int = MAX_CHALLENGES,
) -> Plan | None:
    """The smallest k, and the N to go with it, under the module's model.

    ``p0`` is the exact null match probability (:mod:`secmark.stats.null`).
    Probabilities given as floats are taken at their exact binary value.
    Returns ``None`` when no k up to ``max_challenges`` reaches the target
    power at this retention: the retention is too close to chance.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``p0``, ``alpha``, ``target_power`` or
            ``max_revealed_fraction`` is not strictly between 0 and 1,
            ``retention`` is not in (0, 1], or ``disputes`` or
            ``max_challenges`` is less than 1.
    """
    if not isinstance(p0, Fraction):
        raise TypeError(f"p0 must be a fractions.Fraction, not {type(p0).__name__}")
    null_p = _probability(p0, "p0")
    level = _probability(alpha, "alpha")
    kept = _probability(retention, "retention", allow_one=True)
    power_needed = _probability(target_power, "target_power")
    revealed = _probability(max_revealed_fraction, "max_revealed_fraction")
    for value, name in ((disputes, "disputes"), (max_challenges, "max_challenges")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1 (got {value})")

    discount = revealed if disputes > 1 else Fraction(0)
    alternative_p = (1 - discount) * (kept + (1 - kept) * null_p)
    if alternative_p <= null_p and power_needed > level:
        # Power <= false-claim probability <= alpha < target at every k.
        return None

    null_tail = _ScaledTail(null_p)
    alternative_tail = _ScaledTail(alternative_p)
    for k in range(1, max_challenges + 1):
        if k > 1:
            null_tail.add_trial()
            alternative_tail.add_trial()
        # The threshold never falls as k grows and rises by at most one.
        while not null_tail.at_most(level):
            null_tail.raise_threshold()
            alternative_tail.raise_threshold()
        if null_tail.m <= k and alternative_tail.at_least(power_needed):
            break
        # Markov: power = P[X >= m] <= E[X] / m = k * p1 / m, and neither a
        # larger k than max_challenges nor a lower threshold comes later.
        if max_challenges * alternative_p < power_needed * null_tail.m:
            return None
    else:
        return None

    size = _trigger_set_size(k, disputes, revealed)
    power = alternative_tail.value()
    false_claim = null_tail.value()
    return Plan(
        p0=null_p,
        alpha=level,
        retention=kept,
        target_power=power_needed,
        disputes=disputes,
        max_revealed_fraction=revealed,
        match_probability=alternative_p,
        k=k,
        threshold=null_tail.m,
        trigger_set_size=size,
        revealed_fraction=float(1 - Fraction(size - k, size) ** (disputes - 1)),
        power=float(power),
        log2_miss=_log2(1 - power),
        false_claim=float(false_claim),
        log2_false_claim=_log2(false_claim),
    )


def plan_table(
    p0: Fraction,
    retentions: tuple[Fraction | float, ...] = DEFAULT_RETENTIONS,
    *,
    alpha: Fraction | float = DEFAULT_ALPHA,
    target_power: Fraction | float = DEFAULT_TARGET_POWER,
    disputes: int = DEFAULT_DISPUTES,
    max_revealed_fraction: Fraction | float = DEFAULT_MAX_REVEALED_FRACTION,
    max_challenges: int = MAX_CHALLENGES,
) -> list[Plan | None]:
    """:func:`plan` for each retention rate, in order; ``None`` where none exists.

    Raises:
        TypeError, ValueError: as :func:`plan`.
    """
    return [
        plan(
            p0,
            retention,
            alpha=alpha,
            target_power=target_power,
            disputes=disputes,
            max_revealed_fraction=max_revealed_fraction,
            max_challenges=max_challenges,
        )
        for retention in retentions
    ]
