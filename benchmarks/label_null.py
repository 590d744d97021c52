"""Null match probability against the real label sampler, and the cost of
the exact threshold at the trials bound.

(a) For adversarial regression spaces (ranges a few float64 steps wide,
    magnitudes of 1e300, subnormals, tolerances near an ulp), DRAWS labels
    from one real ChaCha20 keystream each (``draw_label`` for an accepted
    space, ``uniform_float64`` for a refused one, which no commitment can
    name), and the largest share of them that one answer y matches
    (|label - y| <= tolerance, decided on exact rationals): the empirical
    maximum over every window [x, x + 2 tolerance] at a drawn x. It is
    printed beside the nominal 2 tol / (hi - lo), the p0 secmark uses
    (``null_match_probability``) and the DKW margin: with probability at
    least 1 - 1e-9 no window's empirical mass exceeds its true mass by more.
    An accepted space must satisfy measured <= p0 + margin; a refused one
    shows what a false nominal p0 would have let an innocent model reach.
    The column "enumerated" runs the sampler at chosen u instead: it is
    monotone in u, so every window's mass over all 2^53 values of u follows
    by bisection; "=" marks the exact maximum (the labels take at most 4096
    values and every window is measured), ">=" a lower bound from windows at
    64 drawn labels.
(b) ``decision_threshold`` at the bound on trials (MAX_TRIALS, token spaces,
    p0 = 1/V) and at MAX_CHALLENGED trials (regression spaces, one trial
    per trigger, p0 near 1/2 with a 9-bit denominator), alpha = 2^-64.

Run: python3 benchmarks/label_null.py [DRAWS]   (default 100000)
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
import time
from fractions import Fraction

import numpy as np

from secmark.errors import EncodingError
from secmark.messages.challenge import MAX_CHALLENGED
from secmark.messages.labels import RegressionLabels
from secmark.stats import MAX_TRIALS, binomial_test, decision_threshold, null_match_probability
from secmark.stats.null import regression_p0
from secmark.triggers.generate import draw_label
from secmark.triggers.sampling import KeyStream, uniform_float64

ALPHA = Fraction(1, 2**64)
FALSE_ALARM = 1e-9


def steps_above(x: float, steps: int) -> float:
    """The float ``steps`` binary64 numbers above ``x``."""
    (bits,) = struct.unpack("<q", struct.pack("<d", x))
    ordered = bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)
    ordered += steps
    bits = ordered if ordered >= 0 else (-ordered) | -0x8000000000000000
    return float(struct.unpack("<d", struct.pack("<q", bits))[0])


SPACES: list[tuple[str, float, float, float]] = [
    # Degenerate spaces: refused.
    ("6 ulps at 1, tol 3*2^-201", 1.0, steps_above(1.0, 6), 3 * 2.0**-201),
    ("8 ulps at 1e300, tol 1e-300", 1e300, steps_above(1e300, 8), 1e-300),
    ("[0, 1], tol 1e-300", 0.0, 1.0, 1e-300),
    ("[1, 2], tol half an ulp", 1.0, 2.0, 2.0**-53),
    ("10 subnormals, tol 1 subnormal", 0.0, 10 * 5e-324, 5e-324),
    ("[1e300, 2e300], tol 1e284", 1e300, 2e300, 1e284),
    ("3 ulps at -1, tol 2^-60", -1.0, steps_above(-1.0, 3), 2.0**-60),
    ("[1e16, 1e16 + 2000], tol 1", 1e16, 1e16 + 2000.0, 1.0),
    ("4096 ulps at 1, tol 200 ulps", 1.0, steps_above(1.0, 4096), 200 * 2.0**-52),
    # Accepted, at or near the refusal boundary and at extreme magnitudes.
    ("4096 ulps at 1, tol 512 ulps", 1.0, steps_above(1.0, 4096), 512 * 2.0**-52),
    ("2048 ulps at 1, tol 0.13 W", 1.0, steps_above(1.0, 2048), 0.13 * 2048 * 2.0**-52),
    ("4096 ulps at -1, tol 0.13 W", -1.0, steps_above(-1.0, 4096), 0.13 * 4096 * 2.0**-53),
    (
        "4096 ulps at 1e300, tol 0.07 W",
        1e300,
        steps_above(1e300, 4096),
        0.07 * 4096 * math.ulp(1e300),
    ),
    ("2^20 subnormals, tol 2^16", 0.0, 2**20 * 5e-324, 2**16 * 5e-324),
    ("[-8e307, 8e307], tol 1e306", -8e307, 8e307, 1e306),
    ("[1e300, 1.7e308], tol 1e305", 1e300, 1.7e308, 1e305),
    ("[0, 1], tol 0.01", 0.0, 1.0, 0.01),
    ("[0, 1], tol 0.24", 0.0, 1.0, 0.24),
    ("[0, 321], tol 24 (diabetes)", 0.0, 321.0, 24.0),
]


def last_float_within(x: float, width: Fraction) -> float:
    """The largest float y with y - x <= width, exactly."""
    y = min(x + float(width), sys.float_info.max)
    while Fraction(y) - Fraction(x) > width:
        y = math.nextafter(y, -math.inf)
    while y < sys.float_info.max and Fraction(math.nextafter(y, math.inf)) - Fraction(x) <= width:
        y = math.nextafter(y, math.inf)
    return y


U_COUNT = 1 << 53
EXACT_LIMIT = 4096


class FixedStream:
    """A keystream whose next 7 bytes hold ``u``: the real sampler, run at ``u``."""

    def __init__(self, u: int) -> None:
        self.u = u

    def read_int(self, size: int) -> int:
        return self.u


def count_at_most(lo: float, hi: float, x: float) -> int:
    """#{u : F64(lo, hi) at u <= x}; the sampler is monotone in u."""
    low, high = 0, U_COUNT
    while low < high:
        middle = (low + high) // 2
        if uniform_float64(FixedStream(middle), lo, hi) <= x:  # type: ignore[arg-type]
            low = middle + 1
        else:
            high = middle
    return low


def exact_window_mass(lo: float, hi: float, tolerance: float, x: float) -> Fraction:
    """P[x <= label <= x + 2 tolerance] over all 2^53 values of u."""
    top = last_float_within(x, 2 * Fraction(tolerance))
    below = count_at_most(lo, hi, math.nextafter(x, -math.inf))
    return Fraction(count_at_most(lo, hi, top) - below, U_COUNT)


def exact_largest_mass(
    lo: float, hi: float, tolerance: float, drawn: np.ndarray
) -> tuple[Fraction, bool]:
    """(mass, exact): the largest window mass over every label value when
    the labels take at most EXACT_LIMIT values (exact), else over windows
    at 64 drawn labels (a lower bound)."""
    values: list[float] = []
    u = 0
    while u < U_COUNT and len(values) <= EXACT_LIMIT:
        values.append(uniform_float64(FixedStream(u), lo, hi))  # type: ignore[arg-type]
        u = count_at_most(lo, hi, values[-1])
    exact = u >= U_COUNT
    starts = values if exact else [float(x) for x in drawn[:: max(1, len(drawn) // 64)]]
    return max(exact_window_mass(lo, hi, tolerance, x) for x in starts), exact


def largest_window_share(labels: np.ndarray, tolerance: float) -> float:
    """max over drawn x of the share of labels in [x, x + 2 tolerance]."""
    ordered = np.sort(labels)
    distinct = np.unique(ordered)
    width = 2 * Fraction(tolerance)
    tops = np.array([last_float_within(float(x), width) for x in distinct])
    counts = np.searchsorted(ordered, tops, side="right") - np.searchsorted(
        ordered, distinct, side="left"
    )
    return float(counts.max()) / len(labels)


def show(x: Fraction) -> str:
    """A probability as a float, or as a power of two below the float range."""
    if x >= Fraction(1, 10**300):
        return f"{float(x):.4g}"
    return f"2^{math.log2(x.numerator) - math.log2(x.denominator):.0f}"


def measure(draws: int) -> None:
    margin = 2 * math.sqrt(math.log(2 / FALSE_ALARM) / (2 * draws))
    print(f"(a) {draws} labels per space from a real keystream; DKW margin {margin:.4f}")
    print(
        f"    {'space':34} {'nominal':>10} {'p0':>10} {'sampled':>10} {'enumerated':>11}  verdict"
    )
    for name, lo, hi, tolerance in SPACES:
        stream = KeyStream(hashlib.sha256(name.encode()).digest())
        try:
            space = RegressionLabels(lo, hi, tolerance)
        except EncodingError:
            space = None
        if space is not None:
            labels = np.array([float(draw_label(space, stream)) for _ in range(draws)])
        else:
            labels = np.array([uniform_float64(stream, lo, hi) for _ in range(draws)])
        measured = Fraction(largest_window_share(labels, tolerance))
        enumerated, exact = exact_largest_mass(lo, hi, tolerance, labels)
        nominal = regression_p0(lo, hi, tolerance)
        if space is None:
            quotient = max(measured, enumerated) / nominal
            ratio = math.log2(quotient.numerator) - math.log2(quotient.denominator)
            factor = f"{float(quotient):.3g}" if ratio < 20 else f"2^{ratio:.0f}"
            verdict = f"refused; the real mass is {factor} x the nominal p0"
            p0_text = "-"
        else:
            p0 = null_match_probability(space)
            fits = measured <= p0 + Fraction(margin) and enumerated <= p0
            verdict = "ok" if fits else "EXCEEDS p0"
            p0_text = show(p0)
        print(
            f"    {name:34} {show(nominal):>10} {p0_text:>10} {show(measured):>10} "
            f"{'=' if exact else '>='}{show(enumerated):>9}  {verdict}"
        )


def timing() -> None:
    print("(b) decision_threshold, alpha = 2^-64, one call, wall time")
    cases = [
        (MAX_TRIALS, Fraction(1, 2), "tokens V = 2"),
        (MAX_TRIALS, Fraction(1, 3), "tokens V = 3"),
        (MAX_TRIALS, Fraction(1, 1000), "tokens V = 1000"),
        (MAX_TRIALS, Fraction(1, 50257), "tokens V = 50257"),
        (MAX_CHALLENGED, Fraction(255, 512), "regression, p0 = 255/512"),
        (
            MAX_CHALLENGED,
            null_match_probability(RegressionLabels(0.0, 1.0, 0.24)),
            "regression [0, 1], tol 0.24",
        ),
        (MAX_CHALLENGED, Fraction(1, 3), "classes K = 3"),
    ]
    for k, p0, name in cases:
        start = time.perf_counter()
        threshold = decision_threshold(k, p0, ALPHA)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        binomial_test(k, min(k, threshold), p0, ALPHA)
        whole = time.perf_counter() - start
        print(
            f"    k = {k:6}  p0 = {p0!s:14} {name:30} threshold {threshold:6}  "
            f"{elapsed:5.2f} s (whole binomial_test {whole:5.2f} s)"
        )


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    timing()
