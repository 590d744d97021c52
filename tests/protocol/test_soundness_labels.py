"""Attacks on the null match probability p0 and on the answers scored against it.

p0 must bound ``max_y P[label matches y]`` for the labels the derivation
really draws, not for an ideal continuous target (specs/statistics.md 2.1).
A regression range a few float64 steps wide, or a tolerance below float
resolution, once let an innocent model match far above the stated p0
(stated 2^-149, real 0.17). The measurements here run the real sampler
(:func:`secmark.triggers.sampling.uniform_float64`, through
:func:`secmark.triggers.generate.draw_label`) at chosen 53-bit inputs ``u``:
it is monotone in ``u``, so the inputs whose label lies at or below any
value form a prefix of ``[0, 2^53)`` found by bisection, and the exact mass
of every window of labels follows. Where the labels take few values every
window is measured, which gives the exact maximum; elsewhere the windows at
many drawn labels are, which gives a lower bound on it. Either must stay at
or under p0.

Each test fails when its defence is removed: the refusal of degenerate
spaces (``RegressionLabels.__post_init__``), the rounding term of
``RegressionLabels.p0_bound``, the trials bound of a token commitment, or
the answer checks of ``secmark.protocol.querying._json_answer``.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secmark.encoding import canonical_json
from secmark.errors import EncodingError, SuspectError
from secmark.messages import PAYLOAD_TYPE, Envelope, Fields
from secmark.messages.challenge import MAX_CHALLENGED
from secmark.messages.commitment import create_commitment, open_commitment
from secmark.messages.families import NoiseFamily, TokensFamily
from secmark.messages.labels import (
    REGRESSION_MAX_P0,
    ClassLabels,
    RegressionLabels,
    TokenLabels,
    label_space_from_fields,
)
from secmark.protocol.querying import _json_answer, answer_matches
from secmark.stats import MAX_TRIALS, decision_threshold, null_match_probability
from secmark.stats.null import regression_p0
from secmark.triggers.generate import draw_label
from secmark.triggers.sampling import KeyStream, uniform_float64
from tests.conftest import fixed_keys

U_COUNT = 1 << 53
NOISE = NoiseFamily((4,), "uint8", 0, 255)


class FixedStream:
    """A keystream whose next 7 bytes hold ``u``: the real sampler, run at ``u``."""

    def __init__(self, u: int) -> None:
        self.u = u

    def read_int(self, size: int) -> int:
        assert size == 7
        return self.u


def sampler(lo: float, hi: float) -> Any:
    """u -> the label F64(lo, hi) draws from it, as implemented."""
    return lambda u: uniform_float64(FixedStream(u), lo, hi)  # type: ignore[arg-type]


def count_at_most(label: Any, x: float) -> int:
    """#{u : label(u) <= x} (labels are monotone in u: a prefix)."""
    low, high = 0, U_COUNT  # label(u) <= x for u < low; > x for u >= high
    while low < high:
        middle = (low + high) // 2
        if label(middle) <= x:
            low = middle + 1
        else:
            high = middle
    return low


def count_below(label: Any, x: float) -> int:
    """#{u : label(u) < x}."""
    return count_at_most(label, math.nextafter(x, -math.inf))


def last_float_within(x: float, width: Fraction) -> float:
    """The largest float y with y - x <= width, exactly."""
    y = min(x + float(width), sys.float_info.max)
    while Fraction(y) - Fraction(x) > width:
        y = math.nextafter(y, -math.inf)
    while y < sys.float_info.max and Fraction(math.nextafter(y, math.inf)) - Fraction(x) <= width:
        y = math.nextafter(y, math.inf)
    return y


def window_mass(label: Any, x: float, tolerance: float) -> Fraction:
    """P[x <= label <= x + 2 * tolerance]: the chance that y = x + tolerance matches."""
    top = last_float_within(x, 2 * Fraction(tolerance))
    return Fraction(count_at_most(label, top) - count_below(label, x), U_COUNT)


def reachable_labels(label: Any, limit: int) -> list[tuple[float, int]] | None:
    """Every label value with the first u drawing it, if there are at most ``limit``."""
    runs: list[tuple[float, int]] = []
    u = 0
    while u < U_COUNT:
        if len(runs) == limit:
            return None
        value = label(u)
        runs.append((value, u))
        u = count_at_most(label, value)
    return runs


def max_target_mass(lo: float, hi: float, tolerance: float, *, limit: int = 4096) -> Fraction:
    """The largest chance that one answer matches a label of F64(lo, hi):
    exact where the labels take at most ``limit`` values, else a lower bound
    from the windows at many labels (both ends and a spread of u)."""
    label = sampler(lo, hi)
    runs = reachable_labels(label, limit)
    if runs is None:
        spread = [0, U_COUNT - 1] + [(U_COUNT - 1) * j // 97 for j in range(1, 97)]
        return max(window_mass(label, label(u), tolerance) for u in spread)
    # Two pointers: the window [x_i, x_i + 2 tolerance] holds runs i..last;
    # run j covers the u from its start up to the next run's start.
    best = Fraction(0)
    ends = [start for _, start in runs[1:]] + [U_COUNT]
    width = 2 * Fraction(tolerance)
    last = 0
    for first, (value, start) in enumerate(runs):
        last = max(last, first)
        while last + 1 < len(runs) and Fraction(runs[last + 1][0]) - Fraction(value) <= width:
            last += 1
        best = max(best, Fraction(ends[last] - start, U_COUNT))
    return best


def steps_above(x: float, steps: int) -> float:
    """The float ``steps`` binary64 numbers above ``x``."""
    (bits,) = struct.unpack("<q", struct.pack("<d", x))
    ordered = bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)
    ordered += steps
    bits = ordered if ordered >= 0 else (-ordered) | -0x8000000000000000
    return float(struct.unpack("<d", struct.pack("<q", bits))[0])


def ulp(x: float) -> float:
    return math.ulp(abs(x)) if x else 5e-324


# Degenerate spaces: the nominal p0 = 2 tol / (hi - lo) is false for the
# sampler as implemented. Each is (lo, hi, tolerance).
DEGENERATE = {
    "six ulps wide, stated 2^-149": (1.0, steps_above(1.0, 6), 3 * 2.0**-201),
    "eight ulps at 1e300": (1e300, steps_above(1e300, 8), 1e-300),
    "tolerance 1e-300 on [0, 1]": (0.0, 1.0, 1e-300),
    "tolerance half an ulp on [1, 2]": (1.0, 2.0, 2.0**-53),
    "ten subnormals": (0.0, 10 * 5e-324, 5e-324),
    "tolerance 1e284 on [1e300, 2e300]": (1e300, 2e300, 1e284),
    "three ulps at -1": (-1.0, steps_above(-1.0, 3), 2.0**-60),
    "a thousand ulps at 1e16, tolerance 1": (1e16, 1e16 + 2000.0, 1.0),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_regression_spaces_are_refused(name: str) -> None:
    lo, hi, tolerance = DEGENERATE[name]
    # The attack: an innocent answer matches far above the nominal p0.
    assert max_target_mass(lo, hi, tolerance) > regression_p0(lo, hi, tolerance)
    with pytest.raises(EncodingError, match="float64 resolution|tolerance"):
        RegressionLabels(lo, hi, tolerance)
    fields = {"hi": hi, "kind": "regression", "lo": lo, "tolerance": tolerance}
    with pytest.raises(EncodingError, match="float64 resolution"):
        label_space_from_fields(Fields(fields, context="labels"))


def test_a_commitment_naming_a_degenerate_space_is_refused_on_reading() -> None:
    keys = fixed_keys("labels owner")
    good = create_commitment(
        keys,
        family=NOISE,
        labels=RegressionLabels(0.0, 1.0, 0.01),
        size=64,
        model_label="",
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    ).to_json()
    payload = json.loads(Envelope.from_json(good).payload)
    lo, hi, tolerance = DEGENERATE["six ulps wide, stated 2^-149"]
    payload["labels"].update(lo=lo, hi=hi, tolerance=tolerance)
    forged = Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), keys).to_json()
    with pytest.raises(EncodingError, match="float64 resolution"):
        open_commitment(forged)


def test_the_refusal_says_what_tolerance_would_do() -> None:
    with pytest.raises(EncodingError, match="tolerance of at least") as refused:
        RegressionLabels(0.0, 1.0, 1e-13)
    least = float(str(refused.value).rsplit(" ", 1)[1])
    assert RegressionLabels(0.0, 1.0, least).p0_bound() < Fraction(1, 10**11)
    with pytest.raises(EncodingError, match=r"below \(hi - lo\) / 4"):
        RegressionLabels(0.0, 1.0, 0.25)


@pytest.mark.parametrize(
    ("lo", "hi", "tolerance"),
    [
        (0.0, 1.0, 0.01),
        (-2.5, 7.5, 0.25),
        (0.0, 321.0, 24.0),
        (-8e307, 8e307, 1e306),
        (1e300, 1.7e308, 1e305),
        (0.0, 5e-324 * 2**20, 5e-324 * 2**16),  # subnormal, just accepted
        # 2048 and 4096 floats wide, the tolerance near the refusal: measured exactly.
        (1.0, steps_above(1.0, 2**11), 0.13 * 2.0**-41),
        (-1.0, steps_above(-1.0, 2**12), 0.13 * 2.0**-41),
        (1e300, steps_above(1e300, 2**12), 0.07 * 4096 * math.ulp(1e300)),
    ],
)
def test_accepted_spaces_bound_the_real_sampler(lo: float, hi: float, tolerance: float) -> None:
    space = RegressionLabels(lo, hi, tolerance)
    p0 = null_match_probability(space)
    assert max_target_mass(lo, hi, tolerance) <= p0 <= REGRESSION_MAX_P0
    # The bound is tight: rounding adds under 1/256, the short fraction 1/128.
    assert p0 <= regression_p0(lo, hi, tolerance) * (1 + Fraction(1, 256)) * (1 + Fraction(1, 127))


def test_the_rounding_term_is_needed_even_for_an_accepted_space() -> None:
    # 4096 floats wide, the window 1024 of them: 1025 labels fit in it, so
    # an answer matches with 1025/4096, above the nominal (and dyadic) 1/4.
    lo, hi, tolerance = 1.0, steps_above(1.0, 4096), 512 * 2.0**-52
    assert regression_p0(lo, hi, tolerance) == Fraction(1, 4)
    measured = max_target_mass(lo, hi, tolerance)
    assert abs(measured - Fraction(1025, 4096)) < 2.0**-40
    assert measured <= null_match_probability(RegressionLabels(lo, hi, tolerance))


def _magnitudes() -> st.SearchStrategy[float]:
    special = st.sampled_from(
        [0.0, 1.0, -1.0, 3.0, 1e16, -1e16, 2.0**53, 1e300, -1e300, 1.7e308, -1.7e308]
        + [5e-324, -5e-324, 2.2250738585072014e-308, 1e-310, 1e-300, 0.1]
    )
    return special | st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def regression_spaces(draw: Any) -> tuple[float, float, float]:
    """Random and adversarial (lo, hi, tolerance): ranges of a few to 2^40
    ulps or of any float, tolerances near an ulp or any share of the range."""
    lo = draw(_magnitudes())
    if draw(st.booleans()):
        steps = st.integers(1, 1 << 40) | st.integers(1, 1 << 13) | st.integers(1000, 4000)
        hi = steps_above(lo, draw(steps))
    else:
        hi = lo + abs(draw(_magnitudes()))
    if not (math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
        hi = steps_above(lo, 1000)
    width = hi - lo
    share = st.floats(min_value=2.0**-60, max_value=0.3) | st.floats(min_value=0.05, max_value=0.3)
    if draw(st.booleans()):
        tolerance = draw(st.integers(1, 1 << 12)) * ulp(max(abs(lo), abs(hi))) / 2
    else:
        tolerance = width * draw(share)
    return lo, hi, tolerance if tolerance > 0 else 5e-324


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regression_spaces())
def test_every_accepted_space_bounds_its_largest_target_mass(
    parameters: tuple[float, float, float],
) -> None:
    lo, hi, tolerance = parameters
    try:
        space = RegressionLabels(lo, hi, tolerance)
    except EncodingError:
        return
    assert max_target_mass(lo, hi, tolerance) <= null_match_probability(space)


def test_draw_label_is_the_sampler_measured_here() -> None:
    space = RegressionLabels(-3.0, 5.0, 0.5)
    for key in range(8):
        seed = bytes([key]) * 32
        assert draw_label(space, KeyStream(seed)) == uniform_float64(KeyStream(seed), -3.0, 5.0)
        u = KeyStream(seed).read_int(7) & (U_COUNT - 1)
        assert draw_label(space, FixedStream(u)) == sampler(-3.0, 5.0)(u)  # type: ignore[arg-type]


def test_real_keystreams_stay_under_p0() -> None:
    """Labels from real keystreams: the largest empirical window mass stays
    under p0 plus the DKW margin (false alarm below 1e-9)."""
    lo, hi = 1.0, steps_above(1.0, 3000)
    tolerance = 0.13 * (hi - lo)
    space = RegressionLabels(lo, hi, tolerance)
    draws = 4000
    labels = np.sort(
        [float(draw_label(space, KeyStream(k.to_bytes(32, "little")))) for k in range(draws)]
    )
    top = np.array([last_float_within(float(x), 2 * Fraction(tolerance)) for x in labels])
    counts = np.searchsorted(labels, top, side="right") - np.arange(draws)
    margin = 2 * math.sqrt(math.log(2 / 1e-9) / (2 * draws))
    assert counts.max() / draws <= float(null_match_probability(space)) + margin


# --- trials: a token commitment can never make one test cost minutes ---


def test_the_commitment_trials_bound_matches_the_challenge_bound() -> None:
    from secmark.messages import commitment

    assert commitment._MAX_CHALLENGED == MAX_CHALLENGED


@pytest.mark.parametrize(
    ("size", "length", "accepted"),
    [
        (MAX_CHALLENGED, MAX_TRIALS // MAX_CHALLENGED, True),
        (MAX_CHALLENGED, MAX_TRIALS // MAX_CHALLENGED + 1, False),
        (1 << 20, 5, False),
        (16, 1 << 16, False),
        (1, 1 << 16, True),
        (128, 512, True),
        (128, 513, False),
    ],
)
def test_token_commitments_whose_tests_exceed_the_trials_bound_are_refused(
    size: int, length: int, accepted: bool
) -> None:
    keys = fixed_keys("labels owner")

    def make() -> Any:
        return create_commitment(
            keys,
            family=TokensFamily(8, 1000, (0,)),
            labels=TokenLabels(3, length),
            size=size,
            model_label="",
        )

    if accepted:
        make()
    else:
        with pytest.raises(EncodingError, match="trials"):
            make()


def test_the_exact_threshold_refuses_more_trials_than_the_bound() -> None:
    with pytest.raises(ValueError, match="trials"):
        decision_threshold(MAX_TRIALS + 1, Fraction(1, 3), Fraction(1, 2**64))


# --- answers of the wrong kind are recorded as errors, never converted ---

CLASSES = ClassLabels(10)
REGRESSION = RegressionLabels(0.0, 10.0, 0.5)
TOKENS = TokenLabels(100, 3)


@pytest.mark.parametrize(
    ("space", "answer", "reason"),
    [
        (REGRESSION, np.int64(3), "regression value"),
        (REGRESSION, 3, "regression value"),
        (REGRESSION, True, "regression value"),
        (REGRESSION, np.bool_(True), "regression value"),
        (REGRESSION, np.float64("nan"), "finite"),
        (REGRESSION, math.inf, "finite"),
        (REGRESSION, np.array([2.5]), "regression value"),
        (REGRESSION, np.longdouble(1) / np.longdouble(3), "binary64"),
        (CLASSES, 2**60, r"outside \[0, 10\)"),
        (CLASSES, np.int64(-1), r"outside \[0, 10\)"),
        (CLASSES, np.int64(10), r"outside \[0, 10\)"),
        (CLASSES, 3.0, "class"),
        (CLASSES, np.float32(3), "class"),
        (CLASSES, True, "class"),
        (CLASSES, "3", "class"),
        (TOKENS, np.array([1, 2, 100]), r"outside \[0, 100\)"),
        (TOKENS, [1, -2, 3], r"outside \[0, 100\)"),
        (TOKENS, np.array([1.0, 2.0, 3.0]), "integers"),
        (TOKENS, [1, 2], "2 token ids"),
        (TOKENS, [2**70, 1, 1], "integers"),
        (TOKENS, [[1], [2, 3]], "integers"),
        (TOKENS, np.array([True, False, True]), "integers"),
    ],
)
def test_answers_of_the_wrong_kind_are_errors(space: Any, answer: Any, reason: str) -> None:
    with pytest.raises(SuspectError, match=reason):
        _json_answer(answer, space)


@pytest.mark.parametrize(
    ("space", "answer", "recorded"),
    [
        (REGRESSION, np.float64(3.0), 3.0),
        (REGRESSION, np.float32(2.5), 2.5),
        (REGRESSION, np.array(1e17), 1e17),
        (CLASSES, np.int64(9), 9),
        (CLASSES, np.uint8(0), 0),
        (TOKENS, np.array([0, 5, 99]), [0, 5, 99]),
    ],
)
def test_answers_of_the_right_kind_are_recorded(space: Any, answer: Any, recorded: Any) -> None:
    value = _json_answer(answer, space)
    assert value == recorded and type(value) is type(recorded)
    canonical_json(value)  # every recorded answer can be written


def test_a_regression_answer_read_back_as_an_int_still_matches() -> None:
    # canonical JSON writes 3.0 as 3, which reads back as the int 3.
    assert answer_matches(REGRESSION, 3.2, 3) == 1
    assert answer_matches(REGRESSION, 3.2, 1e17) == 0
    assert answer_matches(REGRESSION, 3.2, math.nan) == 0
    assert answer_matches(REGRESSION, 3.2, math.inf) == 0
    assert answer_matches(CLASSES, 3, 3.0) == 0


@pytest.mark.parametrize(
    "text",
    [
        '{"kind":"regression","lo":0,"hi":1' + "0" * 400 + ',"tolerance":0.1}',
        '{"kind":"regression","lo":0,"hi":1' + "0" * 5000 + ',"tolerance":0.1}',
        '{"kind":"regression","lo":0,"hi":1,"tolerance":1e-300}',
    ],
)
def test_the_commit_command_refuses_such_spaces_with_a_typed_error(text: str) -> None:
    from secmark.cli.commit import _json_argument

    with pytest.raises(EncodingError, match="float64"):
        label_space_from_fields(_json_argument(text, "labels"))
