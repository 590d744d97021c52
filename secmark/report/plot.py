"""The observed matches against the null distribution, as an inline SVG.

The y axis is log2 of a probability (a p-value of 2^-159 sits on the same
page as one of 2^-3); the x axis the match count m out of k trials. Drawn:
P[X = m] (the chance of exactly m matches by guessing), P[X >= m] (the
chance of m or more: the p-value of m), alpha as a horizontal line, the
region from the threshold on (where the test upholds) shaded, and the
observed count as a vertical line with its p-value marked on the tail
curve (element id ``observed``). No script, no external resource; every
label is escaped. Text is at least 12 px when shown at its natural width.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from fractions import Fraction

from secmark.protocol.bundle_report import Figures
from secmark.report.distribution import NullCurve, null_curve
from secmark.report.words import format_level

__all__ = ["null_plot"]

_WIDTH = 900
_HEIGHT = 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 24, 30, 64
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_PLOT_H = _HEIGHT - _TOP - _BOTTOM
_NICE = (1, 2, 5)

_PMF_COLOUR = "#4a6fa5"
_TAIL_COLOUR = "#222222"
_ALPHA_COLOUR = "#b3261e"
_OBSERVED_COLOUR = "#d9480f"
_HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"'
"""A white outline under a label keeps it readable where it crosses a curve."""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _nice_step(span: float, most: int) -> int:
    """The smallest step of the form 1, 2, 5 times a power of ten that cuts
    ``span`` into at most ``most`` intervals."""
    scale = 1
    while True:
        for nice in _NICE:
            step = nice * scale
            if span / step <= most:
                return step
        scale *= 10


_POWER = re.compile(r"2\^(-?[0-9]+(?:\.[0-9]+)?)")


def _powers(text: str) -> str:
    """``text`` escaped for SVG, with each ``2^x`` written with a raised exponent."""
    pieces = _POWER.split(text)
    out = [_e(pieces[0])]
    for exponent, rest in zip(pieces[1::2], pieces[2::2]):
        out.append(f'2<tspan dy="-6" font-size="11">{_e(exponent)}</tspan>')
        out.append(f'<tspan dy="6">{_e(rest)}</tspan>')
    return "".join(out)


def _power_label(x: float, y: float, exponent: int, anchor: str = "end") -> str:
    """``2^exponent`` as text with a raised exponent."""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="13">2'
        f'<tspan dy="-6" font-size="11">{exponent}</tspan></text>'
    )


def _polyline(points: Sequence[tuple[float, float]], **attributes: str) -> str:
    coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = " ".join(
        f'{key.rstrip("_").replace("_", "-")}="{value}"' for key, value in attributes.items()
    )
    return f'<polyline points="{coordinates}" fill="none" {extra}/>'


def null_plot(figures: Figures) -> str:
    """The plot of ``figures`` (a verified test) as one ``<svg>`` element."""
    k, observed = figures.trials, figures.matches
    # Past the threshold and the observed count the null's chances only fall
    # further: a large challenge is shown up to half as far again.
    shown = k if k <= 200 else min(k, math.ceil(1.5 * max(figures.threshold, observed, 20)))
    curve: NullCurve = null_curve(
        k, Fraction(figures.p0), figures.threshold, observed=observed, upto=shown
    )
    # The depth that matters is alpha's and the p-value's; the chances of
    # counts far beyond them leave the plot at its bottom edge.
    lowest = min(figures.log2_alpha, figures.log2_p_value, -8.0)
    y_step = _nice_step(-lowest * 1.2, 8)
    y_min = -y_step * math.ceil(-lowest * 1.2 / y_step)
    x_step = _nice_step(max(shown, 1), 10)
    # Bars (up to 200 counts) sit on their count, so the axis leaves half a bar
    # either side; an area (beyond) runs from edge to edge.
    x_low, x_high = (-0.5, shown + 0.5) if shown <= 200 else (0.0, float(shown))

    def x_of(m: float) -> float:
        return _LEFT + _PLOT_W * (m - x_low) / (x_high - x_low)

    def y_of(log2_p: float) -> float:
        value = max(log2_p, y_min)
        return _TOP + _PLOT_H * (value / y_min)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
            f'width="{_WIDTH}" height="{_HEIGHT}" role="img" class="null-plot" '
            'aria-labelledby="null-plot-title" font-family="system-ui, sans-serif">'
        ),
        (
            f'<title id="null-plot-title">Observed {observed} matches of {k} against the chance '
            "of each count for a model that never saw the triggers</title>"
        ),
        (
            f'<rect x="{_LEFT}" y="{_TOP}" width="{_PLOT_W}" height="{_PLOT_H}" fill="#ffffff" '
            'stroke="#999999"/>'
        ),
    ]
    # The region where the test upholds: from the threshold to k.
    if figures.threshold <= k:
        left = x_of(figures.threshold - 0.5 if shown <= 200 else figures.threshold)
        parts.append(
            f'<rect class="rejection-region" x="{left:.1f}" y="{_TOP}" '
            f'width="{_LEFT + _PLOT_W - left:.1f}" height="{_PLOT_H}" fill="#fbe3e1"/>'
        )
    # Grid and ticks.
    for exponent in range(0, int(y_min) - 1, -y_step):
        y = y_of(exponent)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + _PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(_power_label(_LEFT - 8, y + 5, exponent))
    for m in range(0, shown + 1, x_step):
        x = x_of(m)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP + _PLOT_H}" y2="{_TOP + _PLOT_H + 6}" '
            'stroke="#555555"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + _PLOT_H + 22}" text-anchor="middle" '
            f'font-size="13">{m}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + _PLOT_W / 2:.1f}" y="{_HEIGHT - 12}" text-anchor="middle" '
        f'font-size="14">matches m out of {k} trials</text>'
    )
    parts.append(
        f'<text transform="translate(18 {_TOP + _PLOT_H / 2:.1f}) rotate(-90)" '
        'text-anchor="middle" font-size="14">probability by chance (log scale)</text>'
    )
    # The distribution: one bar per match count (an area for large k), and
    # the tail, which is what alpha is compared with.
    bottom = _TOP + _PLOT_H
    if shown <= 200:
        width = max(1.0, 0.7 * _PLOT_W / (shown + 1))
        parts += [
            f'<rect class="pmf" x="{x_of(m) - width / 2:.1f}" y="{y_of(v):.1f}" '
            f'width="{width:.1f}" height="{max(bottom - y_of(v), 0):.1f}" '
            f'fill="{_PMF_COLOUR}" fill-opacity="0.45"/>'
            for m, v in zip(curve.points, curve.log2_pmf)
        ]
    else:
        outline = " ".join(
            f"L{x_of(m):.1f},{y_of(v):.1f}" for m, v in zip(curve.points, curve.log2_pmf)
        )
        parts.append(
            f'<path class="pmf" d="M{x_of(0):.1f},{bottom} {outline} L{x_of(curve.points[-1]):.1f},{bottom} Z" '
            f'fill="{_PMF_COLOUR}" fill-opacity="0.45"/>'
        )
    tail = [(x_of(m), y_of(v)) for m, v in zip(curve.points, curve.log2_tail)]
    parts.append(_polyline(tail, stroke=_TAIL_COLOUR, stroke_width="2", class_="tail"))
    # Alpha, and the threshold where the tail falls to it.
    y_alpha = y_of(figures.log2_alpha)
    parts.append(
        f'<line class="alpha" x1="{_LEFT}" x2="{_LEFT + _PLOT_W}" y1="{y_alpha:.1f}" '
        f'y2="{y_alpha:.1f}" stroke="{_ALPHA_COLOUR}" stroke-width="1.5" '
        'stroke-dasharray="7 4"/>'
    )
    parts.append(
        f'<text x="{_LEFT + 8}" y="{y_alpha - 7:.1f}" font-size="14" fill="{_ALPHA_COLOUR}" '
        f"{_HALO}>"
        f"{_powers('α (alpha) = ' + format_level(figures.alpha))}</text>"
    )
    if figures.threshold <= k:
        x_threshold = x_of(figures.threshold)
        parts.append(
            f'<line class="threshold" x1="{x_threshold:.1f}" x2="{x_threshold:.1f}" '
            f'y1="{_TOP}" y2="{_TOP + _PLOT_H}" stroke="{_ALPHA_COLOUR}" stroke-width="1" '
            'stroke-dasharray="3 3"/>'
        )
        anchor = "end" if figures.threshold > shown / 2 else "start"
        shift = -6 if anchor == "end" else 6
        parts.append(
            f'<text x="{x_threshold + shift:.1f}" y="{_TOP + _PLOT_H - 10}" '
            f'text-anchor="{anchor}" font-size="14" fill="{_ALPHA_COLOUR}" {_HALO}>threshold '
            f"{figures.threshold}: upholds from here</text>"
        )
    # The observed count.
    x_observed = x_of(observed)
    y_observed = y_of(figures.log2_p_value)
    anchor = "end" if observed > shown / 2 else "start"
    shift = -8 if anchor == "end" else 8
    parts.append(
        f'<g id="observed" class="observed"><line x1="{x_observed:.1f}" x2="{x_observed:.1f}" '
        f'y1="{_TOP}" y2="{_TOP + _PLOT_H}" stroke="{_OBSERVED_COLOUR}" stroke-width="2.5"/>'
        f'<circle cx="{x_observed:.1f}" cy="{y_observed:.1f}" r="5.5" '
        f'fill="{_OBSERVED_COLOUR}" stroke="#ffffff" stroke-width="1.5"/>'
        f'<text x="{x_observed + shift:.1f}" y="{_TOP + 20}" text-anchor="{anchor}" '
        f'font-size="14" font-weight="bold" fill="{_OBSERVED_COLOUR}" {_HALO}>observed: '
        f"{observed} of {k}</text>"
        f'<text x="{x_observed + shift:.1f}" y="{max(y_observed - 10, _TOP + 40):.1f}" '
        f'text-anchor="{anchor}" font-size="13" fill="{_OBSERVED_COLOUR}" {_HALO}>p-value '
        f"{_powers(f'2^{figures.log2_p_value:.1f}')}</text></g>"
    )
    parts.append("</svg>")
    return "".join(parts)
