"""Tails, the exact decision threshold and Clopper-Pearson intervals.

The exact values here come from a direct sum of C(k, i) p^i q^(k-i) with
``math.comb``, independent of the incremental recurrences in the module; the
float values are cross-checked against scipy, which the library does not use.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from secmark.stats.binomial import (
    binomial_tail,
    clopper_pearson,
    decision_threshold,
    exact_binomial_tail,
    log2_binomial_tail,
)

ALPHA_64 = Fraction(1, 2**64)
ALPHA_128 = Fraction(1, 2**128)


def direct_tail(k: int, m: int, p: Fraction) -> Fraction:
    """P[Binom(k, p) >= m] by the textbook sum."""
    n, d = p.numerator, p.denominator
    total = sum(math.comb(k, i) * n**i * (d - n) ** (k - i) for i in range(max(m, 0), k + 1))
    return Fraction(total, d**k)


def log2_exact(x: Fraction) -> float:
    return math.log2(x.numerator) - math.log2(x.denominator)


# --- the decision threshold ---------------------------------------------------


def test_known_figure_ten_classes_128_challenges_needs_53_matches() -> None:
    assert decision_threshold(128, Fraction(1, 10), ALPHA_64) == 53
    # scipy agrees on both sides of the boundary.
    alpha = float(ALPHA_64)
    assert stats.binom.sf(52, 128, 0.1) <= alpha < stats.binom.sf(51, 128, 0.1)


@pytest.mark.parametrize("k", [1, 7, 20, 64, 128, 300, 1024])
@pytest.mark.parametrize("classes", [2, 10, 1000])
@pytest.mark.parametrize(
    "alpha", [Fraction(1, 2**20), ALPHA_64, ALPHA_128, Fraction(1, 10**30)], ids=str
)
def test_threshold_is_the_exact_boundary(k: int, classes: int, alpha: Fraction) -> None:
    p0 = Fraction(1, classes)
    tau = decision_threshold(k, p0, alpha)
    assert 1 <= tau <= k + 1
    # tau rejects, tau - 1 does not, and tau + 1 rejects too.
    assert direct_tail(k, tau, p0) <= alpha
    assert direct_tail(k, tau - 1, p0) > alpha
    assert direct_tail(k, tau + 1, p0) <= alpha


def test_a_tail_equal_to_alpha_rejects() -> None:
    # P[Binom(64, 1/2) >= 64] = 2^-64 exactly.
    assert direct_tail(64, 64, Fraction(1, 2)) == ALPHA_64
    assert decision_threshold(64, Fraction(1, 2), ALPHA_64) == 64


def _strict_threshold(k: int, p0: Fraction, alpha: Fraction) -> int:
    """The off-by-one: smallest m with tail < alpha instead of <=."""
    return next(m for m in range(k + 2) if direct_tail(k, m, p0) < alpha)


def _exceeding_threshold(k: int, p0: Fraction, alpha: Fraction) -> int:
    """The other off-by-one: smallest m with P[X > m] <= alpha."""
    return next(m for m in range(k + 2) if direct_tail(k, m + 1, p0) <= alpha)


def test_naive_boundaries_give_different_thresholds() -> None:
    """The exactness test above would catch either common off-by-one."""
    cases = [(64, Fraction(1, 2), ALPHA_64), (128, Fraction(1, 10), ALPHA_64)]
    assert _strict_threshold(64, Fraction(1, 2), ALPHA_64) == 65
    assert any(_strict_threshold(*case) != decision_threshold(*case) for case in cases)
    assert all(_exceeding_threshold(*case) == decision_threshold(*case) - 1 for case in cases)


def test_k_too_small_to_decide_gives_k_plus_one() -> None:
    # 10^-19 > 2^-64 > 10^-20.
    assert decision_threshold(19, Fraction(1, 10), ALPHA_64) == 20
    assert decision_threshold(20, Fraction(1, 10), ALPHA_64) == 20
    assert decision_threshold(63, Fraction(1, 2), ALPHA_64) == 64


def test_float_alpha_is_taken_at_its_exact_value() -> None:
    assert decision_threshold(500, Fraction(1, 10), 2.0**-64) == decision_threshold(
        500, Fraction(1, 10), ALPHA_64
    )
    for k in (64, 128, 256):
        tau = decision_threshold(k, Fraction(1, 7), 1e-20)
        assert direct_tail(k, tau, Fraction(1, 7)) <= Fraction(1e-20)
        assert direct_tail(k, tau - 1, Fraction(1, 7)) > Fraction(1e-20)


def test_threshold_is_fast_at_ten_thousand_challenges() -> None:
    start = time.perf_counter()
    tau = decision_threshold(10_000, Fraction(1, 10), ALPHA_128)
    elapsed = time.perf_counter() - start
    assert stats.binom.sf(tau - 1, 10_000, 0.1) <= float(ALPHA_128)
    assert stats.binom.sf(tau - 2, 10_000, 0.1) > float(ALPHA_128)
    assert elapsed < 2.0


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 200),
    classes=st.integers(2, 50),
    exponents=st.tuples(st.integers(1, 200), st.integers(1, 200)),
)
def test_threshold_is_monotone_in_alpha(k: int, classes: int, exponents: tuple[int, int]) -> None:
    strict, loose = Fraction(1, 2 ** max(exponents)), Fraction(1, 2 ** min(exponents))
    p0 = Fraction(1, classes)
    assert decision_threshold(k, p0, strict) >= decision_threshold(k, p0, loose)


# --- tails --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "m", "p0"),
    [
        (1, 1, Fraction(1, 2)),
        (10, 3, Fraction(1, 3)),
        (128, 53, Fraction(1, 10)),
        (300, 1, Fraction(1, 1000)),
        (50, 50, Fraction(9, 10)),
    ],
)
def test_exact_tail_matches_the_direct_sum(k: int, m: int, p0: Fraction) -> None:
    assert exact_binomial_tail(k, m, p0) == direct_tail(k, m, p0)


def test_tails_outside_the_support() -> None:
    p0 = Fraction(1, 10)
    assert exact_binomial_tail(5, 0, p0) == 1
    assert exact_binomial_tail(5, -3, p0) == 1
    assert exact_binomial_tail(5, 6, p0) == 0
    assert log2_binomial_tail(5, -1, p0) == 0.0
    assert log2_binomial_tail(5, 6, p0) == -math.inf
    assert binomial_tail(5, 0, p0) == 1.0
    assert binomial_tail(5, 6, p0) == 0.0


@pytest.mark.parametrize("k", [1, 10, 128, 1024, 5000])
@pytest.mark.parametrize("p", [0.5, 0.1, 0.001, 0.999])
def test_log2_tail_agrees_with_scipy(k: int, p: float) -> None:
    for m in sorted({1, k // 4, k // 2, (3 * k) // 4, k}):
        if m < 1:
            continue
        expected = stats.binom.sf(m - 1, k, p)
        if expected < 1e-300:
            continue
        assert log2_binomial_tail(k, m, p) == pytest.approx(
            math.log2(expected), rel=1e-10, abs=1e-10
        )
        assert binomial_tail(k, m, p) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("k", "m", "p0"),
    [
        (128, 128, Fraction(1, 2)),  # 2^-128
        (256, 230, Fraction(1, 2)),  # about 2^-138
        (1024, 800, Fraction(1, 2)),  # below 2^-300
        (2000, 1500, Fraction(1, 10)),  # about 2^-3442
        (1024, 1024, Fraction(1, 1000)),  # 1000^-1024, about 2^-10205
    ],
)
def test_log2_tail_does_not_underflow(k: int, m: int, p0: Fraction) -> None:
    exact = log2_exact(exact_binomial_tail(k, m, p0))
    assert exact < -127
    assert log2_binomial_tail(k, m, p0) == pytest.approx(exact, rel=1e-11)
    assert log2_binomial_tail(k, m, float(p0)) == pytest.approx(exact, rel=1e-11)


def test_float_tail_underflows_only_past_the_float_range() -> None:
    # P[Binom(1000, 1/2) >= 1000] = 2^-1000 is a normal double.
    assert binomial_tail(1000, 1000, Fraction(1, 2)) == pytest.approx(2.0**-1000, rel=1e-12)
    assert binomial_tail(1100, 1100, Fraction(1, 2)) == 0.0
    assert log2_binomial_tail(1100, 1100, Fraction(1, 2)) == pytest.approx(-1100, rel=1e-13)


def test_float_and_fraction_p0_agree() -> None:
    assert log2_binomial_tail(500, 100, 0.1) == pytest.approx(
        log2_binomial_tail(500, 100, Fraction(1, 10)), rel=1e-12
    )


@settings(max_examples=80, deadline=None)
@given(k=st.integers(1, 80), classes=st.integers(2, 1000), m=st.integers(-2, 82))
def test_tail_is_monotone_non_increasing_in_m(k: int, classes: int, m: int) -> None:
    p0 = Fraction(1, classes)
    assert exact_binomial_tail(k, m + 1, p0) <= exact_binomial_tail(k, m, p0)
    upper, lower = log2_binomial_tail(k, m, p0), log2_binomial_tail(k, m + 1, p0)
    if math.isinf(upper):
        assert lower == upper
    else:
        assert lower <= upper + 1e-12 * max(1.0, abs(upper))


# --- Clopper-Pearson ----------------------------------------------------------


@pytest.mark.parametrize("k", [1, 10, 128, 1024])
@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.5])
def test_clopper_pearson_agrees_with_scipy(k: int, confidence: float) -> None:
    a = 1 - confidence
    for m in sorted({0, 1, k // 3, k // 2, k - 1, k}):
        low, high = clopper_pearson(k, m, confidence)
        expected_low = 0.0 if m == 0 else stats.beta.ppf(a / 2, m, k - m + 1)
        expected_high = 1.0 if m == k else stats.beta.ppf(1 - a / 2, m + 1, k - m)
        assert low == pytest.approx(expected_low, rel=1e-9, abs=1e-14)
        assert high == pytest.approx(expected_high, rel=1e-9, abs=1e-14)


def test_clopper_pearson_at_extreme_confidence() -> None:
    # 1 - 2^-64 is not a float; a Fraction carries it.
    low, high = clopper_pearson(128, 53, 1 - ALPHA_64)
    assert low == pytest.approx(stats.beta.ppf(2.0**-65, 53, 76), rel=1e-9)
    assert high == pytest.approx(stats.beta.isf(2.0**-65, 54, 75), rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    k=st.integers(1, 300),
    confidence=st.floats(0.01, 0.999999),
)
def test_clopper_pearson_contains_the_rate(data: st.DataObject, k: int, confidence: float) -> None:
    m = data.draw(st.integers(0, k))
    low, high = clopper_pearson(k, m, confidence)
    assert 0.0 <= low <= m / k <= high <= 1.0


# --- argument checks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: decision_threshold(0, Fraction(1, 2), ALPHA_64), ValueError),
        (lambda: decision_threshold(True, Fraction(1, 2), ALPHA_64), TypeError),
        (lambda: decision_threshold(10, 0.5, ALPHA_64), TypeError),  # type: ignore[arg-type]
        (lambda: decision_threshold(10, Fraction(1), ALPHA_64), ValueError),
        (lambda: decision_threshold(10, Fraction(1, 2), 1.0), ValueError),
        (lambda: decision_threshold(10, Fraction(1, 2), 0), ValueError),
        (lambda: decision_threshold(10, Fraction(1, 2), math.nan), ValueError),
        (lambda: decision_threshold(10, Fraction(1, 2), "2^-64"), TypeError),  # type: ignore[arg-type]
        (lambda: exact_binomial_tail(10, 3, 0.5), TypeError),  # type: ignore[arg-type]
        (lambda: exact_binomial_tail(10, 3.0, Fraction(1, 2)), TypeError),  # type: ignore[arg-type]
        (lambda: log2_binomial_tail(10, 3, 1.5), ValueError),
        (lambda: log2_binomial_tail(10, 3, Fraction(0)), ValueError),
        (lambda: binomial_tail(-1, 3, 0.5), ValueError),
        (lambda: clopper_pearson(10, 11), ValueError),
        (lambda: clopper_pearson(10, -1), ValueError),
        (lambda: clopper_pearson(10, 5, 1.0), ValueError),
    ],
)
def test_bad_arguments_are_refused(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]
