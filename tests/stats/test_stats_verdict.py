"""The binomial test result a verdict reports."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import pytest
from scipy import stats  # type: ignore[import-untyped]

from secmark.stats.verdict import DEFAULT_ALPHA, BinomialTestResult, binomial_test


def test_default_alpha_is_two_to_the_minus_64() -> None:
    assert DEFAULT_ALPHA == Fraction(1, 2**64)


def test_ten_classes_128_challenges() -> None:
    accepted = binomial_test(128, 53, Fraction(1, 10))
    assert accepted.threshold == 53
    assert accepted.decision is True
    assert accepted.p_value == pytest.approx(stats.binom.sf(52, 128, 0.1), rel=1e-9)
    assert accepted.log2_p_value == pytest.approx(math.log2(accepted.p_value), rel=1e-12)
    assert accepted.p0 == 0.1
    assert accepted.p0_exact == "1/10"
    assert accepted.alpha_exact == f"1/{2**64}"
    assert accepted.log2_alpha == -64.0
    assert accepted.match_rate == 53 / 128
    assert accepted.ci_low < 53 / 128 < accepted.ci_high

    refused = binomial_test(128, 52, Fraction(1, 10))
    assert refused.decision is False
    assert refused.p_value > float(DEFAULT_ALPHA)


def test_a_p_value_equal_to_alpha_rejects() -> None:
    result = binomial_test(64, 64, Fraction(1, 2))
    assert result.threshold == 64
    assert result.log2_p_value == pytest.approx(-64.0, rel=1e-13)
    assert result.decision is True


def test_p_value_below_the_float_range_still_decides_and_reports() -> None:
    result = binomial_test(2000, 1500, Fraction(1, 10), alpha=Fraction(1, 2**128))
    assert result.decision is True
    assert result.p_value == 0.0
    assert result.log2_p_value < -3000


def test_no_matches_does_not_reject() -> None:
    result = binomial_test(100, 0, Fraction(1, 10))
    assert result.decision is False
    assert result.p_value == 1.0
    assert result.log2_p_value == 0.0
    assert result.ci_low == 0.0


def test_result_is_frozen_and_serialisable() -> None:
    result = binomial_test(50, 20, Fraction(1, 10), 2.0**-40)
    assert isinstance(result, BinomialTestResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.decision = False  # type: ignore[misc]
    assert json.loads(json.dumps(dataclasses.asdict(result)))["threshold"] == result.threshold


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((10, 11, Fraction(1, 2)), ValueError),
        ((10, -1, Fraction(1, 2)), ValueError),
        ((10, 5, 0.5), TypeError),
        ((10, 5, Fraction(1, 2), 2.0), ValueError),
    ],
)
def test_bad_arguments_are_refused(args: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        binomial_test(*args)  # type: ignore[arg-type]
