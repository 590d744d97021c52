"""Null match probabilities per label space."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from secmark.stats.null import classification_p0, regression_p0, token_p0


def test_classification_is_one_over_the_classes() -> None:
    assert classification_p0(10) == Fraction(1, 10)
    assert classification_p0(2) == Fraction(1, 2)


def test_token_is_one_over_the_vocabulary() -> None:
    assert token_p0(50257) == Fraction(1, 50257)


def _match_probability(prediction: Fraction, lo: Fraction, hi: Fraction, eps: Fraction) -> Fraction:
    """P[|prediction - T| <= eps] for T uniform on [lo, hi], exactly."""
    overlap = min(hi, prediction + eps) - max(lo, prediction - eps)
    return max(Fraction(0), overlap) / (hi - lo)


@pytest.mark.parametrize(
    ("lo", "hi", "eps"),
    [(Fraction(0), Fraction(10), Fraction(1, 4)), (Fraction(-3), Fraction(5, 2), Fraction(1, 7))],
)
def test_regression_bound_holds_for_every_prediction_and_is_tight_inside(
    lo: Fraction, hi: Fraction, eps: Fraction
) -> None:
    p0 = regression_p0(lo, hi, eps)
    assert p0 == 2 * eps / (hi - lo)
    steps = 200
    predictions = [lo - 1 + (hi - lo + 2) * Fraction(i, steps) for i in range(steps + 1)]
    for prediction in predictions:
        assert _match_probability(prediction, lo, hi, eps) <= p0
    # Tight when the window fits inside the range, smaller at the edges.
    assert _match_probability((lo + hi) / 2, lo, hi, eps) == p0
    assert _match_probability(lo, lo, hi, eps) < p0


def test_regression_is_capped_at_one() -> None:
    assert regression_p0(0, 1, 1) == 1


def test_regression_converts_floats_exactly() -> None:
    assert regression_p0(0.0, 1.0, 0.1) == 2 * Fraction(0.1)
    assert regression_p0(0.0, 1.0, 0.1) != Fraction(1, 5)
    assert regression_p0(Fraction(0), 100, Fraction(1, 2)) == Fraction(1, 100)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: classification_p0(1), ValueError),
        (lambda: classification_p0(True), TypeError),
        (lambda: classification_p0(10.0), TypeError),  # type: ignore[arg-type]
        (lambda: token_p0(0), ValueError),
        (lambda: regression_p0(1, 1, 0.1), ValueError),
        (lambda: regression_p0(2, 1, 0.1), ValueError),
        (lambda: regression_p0(0, 1, 0), ValueError),
        (lambda: regression_p0(0, math.inf, 0.1), ValueError),
        (lambda: regression_p0(0, 1, "0.1"), TypeError),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_null_match_probability_of_committed_label_spaces() -> None:
    from fractions import Fraction

    from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
    from secmark.stats import null_match_probability

    assert null_match_probability(ClassLabels(10)) == Fraction(1, 10)
    assert null_match_probability(TokenLabels(50000, 3)) == Fraction(1, 50000)
    # The nominal 1/8, plus the float64 sampler's rounding (2^-49.4 here),
    # rounded up to a short dyadic fraction (statistics.md 2.1).
    assert null_match_probability(RegressionLabels(0.0, 8.0, 0.5)) == Fraction(129, 1024)
