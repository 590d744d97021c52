"""Planning k and N: the recommended k works, and no smaller k does."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.stats.binomial import decision_threshold, exact_binomial_tail
from secmark.stats.null import classification_p0
from secmark.stats.planning import (
    DEFAULT_MAX_REVEALED_FRACTION,
    DEFAULT_RETENTIONS,
    DEFAULT_TARGET_POWER,
    Plan,
    _ScaledTail,
    plan,
    plan_table,
)
from secmark.stats.verdict import DEFAULT_ALPHA


def _works(k: int, p0: Fraction, p1: Fraction, alpha: Fraction, power: Fraction) -> bool:
    tau = decision_threshold(k, p0, alpha)
    return tau <= k and exact_binomial_tail(k, tau, p1) >= power


def _check_plan(result: Plan | None, *, every_smaller_k: bool) -> Plan:
    assert result is not None
    p0, p1, alpha = result.p0, result.match_probability, result.alpha
    assert result.threshold == decision_threshold(result.k, p0, alpha) <= result.k
    power = exact_binomial_tail(result.k, result.threshold, p1)
    assert power >= result.target_power
    assert result.power == float(power)
    false_claim = exact_binomial_tail(result.k, result.threshold, p0)
    assert false_claim <= alpha
    assert result.false_claim == float(false_claim)
    smaller = range(1, result.k) if every_smaller_k else [result.k - 1]
    assert not any(_works(k, p0, p1, alpha, result.target_power) for k in smaller)
    return result


@pytest.mark.parametrize("classes", [10, 1000])
@pytest.mark.parametrize("retention", DEFAULT_RETENTIONS, ids=str)
def test_plan_is_reachable_powerful_and_minimal(classes: int, retention: Fraction) -> None:
    _check_plan(plan(classification_p0(classes), retention), every_smaller_k=True)


@pytest.mark.parametrize("retention", DEFAULT_RETENTIONS, ids=str)
def test_plan_for_two_classes(retention: Fraction) -> None:
    result = plan(classification_p0(2), retention)
    _check_plan(result, every_smaller_k=result is not None and result.k <= 2000)


def test_alpha_128_and_float_arguments() -> None:
    result = plan(Fraction(1, 10), 0.8, alpha=2.0**-128, target_power=0.999)
    checked = _check_plan(result, every_smaller_k=True)
    assert checked.alpha == Fraction(1, 2**128)
    assert checked.retention == Fraction(0.8)
    assert checked.target_power == Fraction(0.999)


def test_alternative_match_probability_discounts_revealed_triggers() -> None:
    p0, r = Fraction(1, 10), Fraction(3, 4)
    several = plan(p0, r, disputes=5)
    assert several is not None
    assert several.match_probability == (1 - DEFAULT_MAX_REVEALED_FRACTION) * (r + (1 - r) * p0)
    single = plan(p0, r, disputes=1)
    assert single is not None
    assert single.match_probability == r + (1 - r) * p0
    assert single.trigger_set_size == single.k
    assert single.revealed_fraction == 0.0


@pytest.mark.parametrize("disputes", [2, 10, 1000])
@pytest.mark.parametrize("max_revealed", [Fraction(1, 10), Fraction(1, 2)], ids=str)
def test_trigger_set_size_is_the_smallest_that_keeps_the_set_unrevealed(
    disputes: int, max_revealed: Fraction
) -> None:
    result = plan(
        Fraction(1, 10), Fraction(9, 10), disputes=disputes, max_revealed_fraction=max_revealed
    )
    assert result is not None
    k, size = result.k, result.trigger_set_size

    def revealed(n: int) -> Fraction:
        return 1 - Fraction(n - k, n) ** (disputes - 1)

    assert revealed(size) <= max_revealed < revealed(size - 1)
    assert result.revealed_fraction == pytest.approx(float(revealed(size)))
    # Roughly D * k / f for small k / N.
    assert size <= (disputes - 1) * k / max_revealed + k


def test_full_retention_single_dispute_needs_p0_to_the_k_below_alpha() -> None:
    # 10^-20 <= 2^-64 < 10^-19: twenty challenges, all must match, power 1.
    result = plan(Fraction(1, 10), 1, disputes=1)
    assert result is not None
    assert (result.k, result.threshold, result.power) == (20, 20, 1.0)
    assert result.log2_miss == float("-inf")


def test_retention_too_low_gives_no_plan() -> None:
    # The discounted match probability falls below p0: nothing can work.
    assert plan(Fraction(1, 2), Fraction(1, 20)) is None
    # Above p0, but not within the allowed number of challenges.
    assert plan(Fraction(1, 2), Fraction(1, 5), max_challenges=200) is None
    assert plan(Fraction(1, 2), Fraction(1, 5), disputes=1) is not None


def test_a_hopeless_retention_is_answered_without_walking_every_k() -> None:
    # A p1 of about 3e-6 matches 0.05 times in 16384 challenges: no threshold
    # is reached with probability 1/2. Walking all k with these denominators
    # took tens of seconds; the Markov bound answers at once.
    assert plan(Fraction(1, 2**31), 3e-6) is None


@settings(max_examples=60, deadline=None)
@given(
    p0=st.sampled_from([Fraction(1, 2), Fraction(1, 10), Fraction(1, 100)]),
    retention=st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(1, 2)),
    max_challenges=st.integers(min_value=1, max_value=60),
)
def test_no_plan_means_no_k_works(p0: Fraction, retention: Fraction, max_challenges: int) -> None:
    alpha, power = Fraction(1, 2**10), DEFAULT_TARGET_POWER
    result = plan(p0, retention, alpha=alpha, disputes=1, max_challenges=max_challenges)
    p1 = retention + (1 - retention) * p0
    works = [k for k in range(1, max_challenges + 1) if _works(k, p0, p1, alpha, power)]
    assert (result.k if result is not None else None) == (works[0] if works else None)


def test_table_rows_follow_the_retentions() -> None:
    retentions = (Fraction(1), Fraction(1, 2), Fraction(1, 100))
    rows = plan_table(Fraction(1, 10), retentions, disputes=3)
    assert [row.retention if row else None for row in rows] == [Fraction(1), Fraction(1, 2), None]
    assert rows[1] == plan(Fraction(1, 10), Fraction(1, 2), disputes=3)
    assert len(plan_table(Fraction(1, 10))) == len(DEFAULT_RETENTIONS)


def test_defaults() -> None:
    assert DEFAULT_TARGET_POWER == 1 - Fraction(1, 2**20)
    result = plan(Fraction(1, 10), 1)
    assert result is not None
    assert result.alpha == DEFAULT_ALPHA


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"p0": 0.1, "retention": 1}, TypeError),
        ({"p0": Fraction(1), "retention": 1}, ValueError),
        ({"p0": Fraction(1, 10), "retention": 0}, ValueError),
        ({"p0": Fraction(1, 10), "retention": Fraction(3, 2)}, ValueError),
        ({"p0": Fraction(1, 10), "retention": 1, "disputes": 0}, ValueError),
        ({"p0": Fraction(1, 10), "retention": 1, "disputes": 2.0}, TypeError),
        ({"p0": Fraction(1, 10), "retention": 1, "target_power": 1}, ValueError),
        ({"p0": Fraction(1, 10), "retention": 1, "max_revealed_fraction": 0}, ValueError),
        ({"p0": Fraction(1, 10), "retention": 1, "alpha": 0.0}, ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        plan(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    p=st.sampled_from([Fraction(1, 10), Fraction(1, 2), Fraction(37, 40), Fraction(1)]),
    moves=st.lists(st.booleans(), max_size=60),
)
def test_running_tail_stays_exact(p: Fraction, moves: list[bool]) -> None:
    """The planner's running tail equals the direct tail along any path of
    added trials and raised thresholds (m <= k + 1), also at p = 1."""
    tail = _ScaledTail(p)
    for raise_threshold in moves:
        if raise_threshold and tail.m <= tail.k:
            tail.raise_threshold()
        else:
            tail.add_trial()
        n, d = p.numerator, p.denominator
        direct = sum(
            math.comb(tail.k, i) * n**i * (d - n) ** (tail.k - i) for i in range(tail.m, tail.k + 1)
        )
        assert tail.value() == Fraction(direct, d**tail.k)
