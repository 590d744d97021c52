"""The exact threshold summed from either end, and the bound on its cost.

``decision_threshold`` sums the binomial terms from m = 0 upward when
p0 <= 1/2 and from m = k downward otherwise; both must give the boundary
that the exact tail defines, for every p0 and alpha (ties included). Its
cost grows as k^2, so k is bounded by ``MAX_TRIALS``.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.stats import MAX_TRIALS, binomial_test, clopper_pearson, decision_threshold
from secmark.stats.binomial import exact_binomial_tail, log2_binomial_tail


def boundary(k: int, p0: Fraction, alpha: Fraction) -> int:
    return next(m for m in range(k + 2) if exact_binomial_tail(k, m, p0) <= alpha)


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(1, 90),
    p0=st.fractions(min_value=Fraction(1, 10**6), max_value=Fraction(999, 1000)),
    alpha=st.fractions(min_value=Fraction(1, 2**80), max_value=Fraction(999, 1000)),
)
def test_both_directions_give_the_exact_boundary(k: int, p0: Fraction, alpha: Fraction) -> None:
    if not 0 < p0 < 1 or not 0 < alpha < 1:
        return
    assert decision_threshold(k, p0, alpha) == boundary(k, p0, alpha)


@pytest.mark.parametrize("p0", [Fraction(1, 2), Fraction(1, 3), Fraction(2, 3), Fraction(7, 16)])
@pytest.mark.parametrize("k", [1, 2, 17, 64])
def test_a_tail_equal_to_alpha_rejects_from_either_end(k: int, p0: Fraction) -> None:
    for m in range(1, k + 1):
        alpha = exact_binomial_tail(k, m, p0)
        if 0 < alpha < 1:
            assert decision_threshold(k, p0, alpha) == boundary(k, p0, alpha) <= m


@pytest.mark.parametrize(
    "call",
    [
        lambda: decision_threshold(MAX_TRIALS + 1, Fraction(1, 2), Fraction(1, 2**64)),
        lambda: exact_binomial_tail(MAX_TRIALS + 1, 1, Fraction(1, 2)),
        lambda: log2_binomial_tail(MAX_TRIALS + 1, 1, Fraction(1, 2)),
        lambda: clopper_pearson(MAX_TRIALS + 1, 1),
        lambda: binomial_test(MAX_TRIALS + 1, 1, Fraction(1, 2)),
    ],
)
def test_more_trials_than_the_bound_are_refused(call: object) -> None:
    with pytest.raises(ValueError, match=f"k must be in \\[1, {MAX_TRIALS}\\]"):
        call()  # type: ignore[operator]


def test_a_small_p0_costs_a_few_terms_at_the_bound() -> None:
    # From below, p0 = 1/2^31 needs a handful of terms even at k = MAX_TRIALS.
    assert decision_threshold(MAX_TRIALS, Fraction(1, 2**31), Fraction(1, 2**64)) == 4
