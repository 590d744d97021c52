"""A platform scan's results as one self-contained HTML page.

``secmark scan report`` writes it: no script, no external resource (inline
CSS, the histogram as inline SVG, a Content-Security-Policy that lets
nothing load). It shows, in order: how many pairs hit, were counted or
failed; the scan's plan (family-wise alpha, models, deposits, the per-pair
level of the Bonferroni correction, each deposit's trials and threshold);
the hits; a heat map of models x deposits coloured by each pair's log2
p-value; a histogram of every counted pair's log2 p-value with the per-pair
level marked; and the pairs that could not be counted, with why.

Model and deposit ids, error texts and the platform's and deposits' facts
come from the results database and the platform's folder, which the reader
of the page need not trust: each is shown with its invisible characters
escaped (:func:`visible`) and then HTML-escaped, in text and in attributes
alike, so ``<script>`` in a model id is text on the page.

Bounds keep the page one a browser opens: the heat map is drawn up to
:data:`MAX_HEATMAP_CELLS` cells, and the hit and error tables list up to
:data:`MAX_LISTED_ROWS` rows each (the counts are always complete).

The scan's types are only annotations here: rendering needs neither
SQLAlchemy nor torch.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from secmark.encoding.visible import visible
from secmark.report.words import format_level, format_p_value

if TYPE_CHECKING:
    from secmark.scan.engine import PairResult, ScanPlan

__all__ = [
    "MAX_HEATMAP_CELLS",
    "MAX_LISTED_ROWS",
    "DepositFacts",
    "PlatformFacts",
    "render_scan_report",
]

MAX_HEATMAP_CELLS = 40_000
"""Most model x deposit cells drawn: a table a browser lays out in about a second."""
MAX_LISTED_ROWS = 2_000
"""Most rows of the hit table and of the error table: one failing model
gives a row per deposit."""

_SHORT_ID = 12
"""Characters of a deposit id in a heat-map column head (the whole id is its title)."""
_HIST_WIDTH, _HIST_HEIGHT = 900, 300
_HIST_LEFT, _HIST_RIGHT, _HIST_TOP, _HIST_BOTTOM = 64, 24, 44, 56
_MAX_BINS = 50
_NICE = (1, 2, 5)

_STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
  margin: 0 auto; padding: 1.5em 2em 3em; max-width: 1180px; background: #ffffff; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.5em; padding-bottom: 0.2em;
  border-bottom: 1px solid #d0d0d0; }
code, .id { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9em;
  overflow-wrap: anywhere; }
.status { border: 2px solid #4a6fa5; background: #eef3fa; border-radius: 8px;
  padding: 0.9em 1.2em; margin: 1em 0; }
.status .big { font-size: 1.35em; font-weight: 700; margin: 0.2em 0; }
.status.hits { border-color: #b3261e; background: #fdecea; }
.warning { background: #fff4e0; border-left: 5px solid #b26a00; padding: 0.5em 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d0d0; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25em 1em; }
dl.facts dt { font-weight: 600; color: #444444; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.heatmap-frame { overflow-x: auto; max-width: 100%; }
table.heatmap td.cell { min-width: 3.2em; text-align: center; font-size: 0.85em;
  font-variant-numeric: tabular-nums; }
table.heatmap td.hit { color: #ffffff; font-weight: 700; outline: 2px solid #1d1d1f;
  outline-offset: -2px; }
table.heatmap td.error { background: #d9d9d9; color: #555555; font-style: italic; }
table.heatmap th.deposit { font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  font-size: 0.8em; font-weight: 600; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.3em 1.4em;
  font-size: 0.92em; }
ul.legend .swatch { display: inline-block; width: 1.4em; height: 1em; vertical-align: middle;
  margin-right: 0.4em; border: 1px solid #999999; }
figure { margin: 0.8em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { font-size: 0.95em; color: #333333; }
.muted { color: #555555; }
footer { margin-top: 2.5em; font-size: 0.85em; color: #555555; }
"""

_RAMP = ((255, 255, 255), (253, 212, 158), (227, 74, 51))
"""Heat-map colours from log2 p = 0 to the per-pair level: white, sand, red."""
_HIT_COLOUR = "#99000d"


@dataclass(frozen=True)
class DepositFacts:
    """What a platform's case records of one deposit."""

    commitment_id: str
    owner: str


@dataclass(frozen=True)
class PlatformFacts:
    """The platform that ran the scan, by its identity's name (its own
    label) and key id, and its deposits' facts by deposit id."""

    name: str
    key_id: str
    deposits: Mapping[str, DepositFacts]


def _e(text: str) -> str:
    """Text for HTML, in content or a quoted attribute: invisible characters
    shown as escapes, then HTML-escaped."""
    return html.escape(visible(text), quote=True)


def _id(text: str) -> str:
    return f'<span class="id">{_e(text)}</span>'


def _log2(value: Fraction) -> float:
    return math.log2(value.numerator) - math.log2(value.denominator)


def _colour(log2_p: float, level: float) -> str:
    """The background of a counted pair that is no hit: its share of the
    way from p = 1 to the per-pair level, on the ramp."""
    share = min(1.0, max(0.0, log2_p / level)) * (len(_RAMP) - 1)
    low = min(int(share), len(_RAMP) - 2)
    part = share - low
    mixed = (round(a + (b - a) * part) for a, b in zip(_RAMP[low], _RAMP[low + 1]))
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def _status(
    scan_id: str, plan: ScanPlan, results: Sequence[PairResult], models: Sequence[str]
) -> str:
    hits = sum(result.hit for result in results)
    counted = sum(result.counted for result in results)
    errors = len(results) - counted
    lines = [
        f'<p class="big" id="headline">{hits} hit(s) among {counted} counted pair(s)</p>',
        (
            f"<p>Scan {_id(scan_id)}: {len(models)} of {plan.n_models} model(s) recorded against "
            f"{plan.n_deposits} deposit(s); {errors} pair(s) could not be counted.</p>"
        ),
        (
            "<p>A hit says that a model answers a deposit's triggers with their committed labels "
            "far more often than chance allows. It is a reason to file an ordinary claim with an "
            "arbiter, who challenges afresh; it is no verdict. A pair that could not be counted "
            "was decided neither way.</p>"
        ),
    ]
    if len(models) < plan.n_models:
        lines.append(
            '<p class="warning">The scan is not finished: run it again with the same scan id '
            "to scan the remaining models.</p>"
        )
    kind = "status hits" if hits else "status"
    return f'<section class="{kind}">{"".join(lines)}</section>'


def _plan(
    scan_id: str,
    plan: ScanPlan,
    results: Sequence[PairResult],
    deposits: Sequence[str],
    platform: PlatformFacts | None,
) -> str:
    facts = [("scan id", _id(scan_id))]
    if platform is not None:
        facts.append(
            (
                "platform",
                (
                    f"{_e(platform.name)} <span class='muted'>(its own label)</span>, key id "
                    f"{_id(platform.key_id)}"
                ),
            )
        )
    facts += [
        ("family-wise alpha", _e(format_level(str(plan.alpha)))),
        ("models", str(plan.n_models)),
        ("deposits", str(plan.n_deposits)),
        ("pairs tested", str(plan.pairs)),
        (
            "per-pair alpha",
            _e(format_level(str(plan.per_pair_alpha)))
            + " <span class='muted'>(Bonferroni: alpha over models x deposits, so the chance "
            "of any false hit in the whole scan is at most alpha)</span>",
        ),
    ]
    body = "".join(f"<dt>{_e(name)}</dt><dd>{value}</dd>" for name, value in facts)
    tests = {result.deposit_id: (result.trials, result.threshold) for result in results}
    known = platform.deposits if platform is not None else {}
    rows = []
    for deposit in deposits:
        trials, threshold = tests[deposit]
        fact = known.get(deposit)
        rows.append(
            f"<tr><td>{_id(deposit)}</td>"
            f"<td>{_id(fact.commitment_id) if fact else '—'}</td>"
            f"<td>{_id(fact.owner) if fact else '—'}</td>"
            f'<td class="number">{trials}</td><td class="number">{threshold}</td></tr>'
        )
    table = (
        "<table class='deposits'><thead><tr><th>deposit</th><th>commitment</th><th>owner</th>"
        "<th>trials</th><th>threshold (matches for a hit)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No model is recorded yet: no deposit was tested.</p>"
    )
    return f'<h2>The plan</h2><dl class="facts">{body}</dl><h3>Deposits</h3>{table}'


def _more(total: int) -> str:
    if total <= MAX_LISTED_ROWS:
        return ""
    return f'<p class="muted">… and {total - MAX_LISTED_ROWS} more, not listed.</p>'


def _hits(results: Sequence[PairResult]) -> str:
    hits = [result for result in results if result.hit]
    if not hits:
        return "<h2>Hits</h2><p id='no-hits'>None: no model answered a deposit beyond chance.</p>"
    rows = "".join(
        f'<tr class="hit" data-model="{_e(hit.model_id)}" data-deposit="{_e(hit.deposit_id)}">'
        f"<td>{_id(hit.model_id)}</td><td>{_id(hit.deposit_id)}</td>"
        f'<td class="number">{hit.matches} / {hit.trials}</td>'
        f'<td class="number">{hit.threshold}</td>'
        f'<td class="number">{_e(format_p_value(hit.log2_p_value or 0.0))}</td></tr>'
        for hit in hits[:MAX_LISTED_ROWS]
    )
    return (
        f"<h2>Hits ({len(hits)})</h2><table class='hits'><thead><tr><th>model</th>"
        "<th>deposit</th><th>matches / trials</th><th>threshold</th><th>p-value (log2)</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{_more(len(hits))}"
    )


def _errors(results: Sequence[PairResult]) -> str:
    failed = [result for result in results if result.error is not None]
    if not failed:
        return "<h2>Errors</h2><p>None: every recorded pair was counted.</p>"
    rows = "".join(
        f"<tr><td>{_id(result.model_id)}</td><td>{_id(result.deposit_id)}</td>"
        f"<td>{_e(result.error or '')}</td></tr>"
        for result in failed[:MAX_LISTED_ROWS]
    )
    return (
        f"<h2>Errors ({len(failed)})</h2><p>These pairs were not counted: nothing was "
        "decided about them.</p><table class='errors'><thead><tr><th>model</th>"
        f"<th>deposit</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>"
        f"{_more(len(failed))}"
    )


def _cell(result: PairResult | None, level: float) -> str:
    if result is None:
        return '<td class="cell missing">—</td>'
    where = f'data-model="{_e(result.model_id)}" data-deposit="{_e(result.deposit_id)}"'
    if result.error is not None or result.log2_p_value is None:
        title = f"{result.model_id} on {result.deposit_id}: not counted: {result.error or ''}"
        return f'<td class="cell error" {where} title="{_e(title)}">error</td>'
    log2_p = result.log2_p_value
    title = (
        f"{result.model_id} on {result.deposit_id}: {result.matches} of {result.trials} "
        f"matches (threshold {result.threshold}), log2 p = {log2_p:.2f}"
    )
    kind, colour = ("hit", _HIT_COLOUR) if result.hit else ("counted", _colour(log2_p, level))
    return (
        f'<td class="cell {kind}" {where} data-log2p="{log2_p:.3f}" title="{_e(title)}" '
        f'style="background:{colour}">{log2_p:.1f}</td>'
    )


def _heatmap(
    plan: ScanPlan,
    results: Sequence[PairResult],
    models: Sequence[str],
    deposits: Sequence[str],
) -> str:
    heading = "<h2>Heat map: models x deposits</h2>"
    if not results:
        return heading + "<p>No pair is recorded yet.</p>"
    if len(models) * len(deposits) > MAX_HEATMAP_CELLS:
        return heading + (
            f"<p>{len(models)} models x {len(deposits)} deposits are more cells than this "
            f"page draws ({MAX_HEATMAP_CELLS}): the hits and errors above and the histogram "
            "below hold every pair.</p>"
        )
    level = _log2(plan.per_pair_alpha)
    by_pair = {(result.model_id, result.deposit_id): result for result in results}
    head = "".join(
        f'<th class="deposit" title="{_e(deposit)}">{_e(deposit[:_SHORT_ID])}</th>'
        for deposit in deposits
    )
    rows = "".join(
        f'<tr><th class="model">{_e(model)}</th>'
        + "".join(_cell(by_pair.get((model, deposit)), level) for deposit in deposits)
        + "</tr>"
        for model in models
    )
    legend = (
        '<ul class="legend">'
        f'<li><span class="swatch" style="background:{_colour(0.0, level)}"></span>'
        "p = 1 (log2 p = 0): answers no better than chance</li>"
        f'<li><span class="swatch" style="background:{_colour(level / 2, level)}"></span>'
        "half-way to the per-pair level, in log2</li>"
        f'<li><span class="swatch" style="background:{_colour(level, level)}"></span>'
        "at or below the per-pair level, threshold not reached</li>"
        f'<li><span class="swatch" style="background:{_HIT_COLOUR}"></span>hit</li>'
        '<li><span class="swatch" style="background:#d9d9d9"></span>not counted</li></ul>'
    )
    return (
        heading + "<p>Each cell is one model on one deposit, showing log2 of its p-value; rows are "
        "models, columns deposits (the first characters of their ids).</p>"
        + f'<div class="heatmap-frame"><table class="heatmap"><thead><tr><th>model</th>{head}'
        + f"</tr></thead><tbody>{rows}</tbody></table></div>{legend}"
    )


def _nice_step(span: float, most: int) -> float:
    """The smallest step of the form 1, 2, 5 times a power of ten that cuts
    ``span`` into at most ``most`` intervals."""
    scale = 1.0
    while True:
        for nice in _NICE:
            if span / (nice * scale) <= most:
                return nice * scale
        scale *= 10


def _histogram(plan: ScanPlan, results: Sequence[PairResult]) -> str:
    heading = "<h2>Log2 p-values of the counted pairs</h2>"
    values = [r.log2_p_value for r in results if r.counted and r.log2_p_value is not None]
    if not values:
        return heading + "<p>No pair was counted.</p>"
    level = _log2(plan.per_pair_alpha)
    step = _nice_step(max(1.0, -min(min(values), level)), _MAX_BINS)
    bins = math.ceil(max(1.0, -min(min(values), level)) / step)
    counts = [0] * bins
    for value in values:
        counts[min(int(-value // step), bins - 1)] += 1
    plot_w = _HIST_WIDTH - _HIST_LEFT - _HIST_RIGHT
    plot_h = _HIST_HEIGHT - _HIST_TOP - _HIST_BOTTOM
    low = -bins * step

    def x(log2_p: float) -> float:
        return _HIST_LEFT + (log2_p - low) / (-low) * plot_w

    tallest = max(counts)
    parts = [
        (
            f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{_HIST_WIDTH}" '
            f'height="{_HIST_HEIGHT}" viewBox="0 0 {_HIST_WIDTH} {_HIST_HEIGHT}" role="img" '
            'aria-label="histogram of the log2 p-values of the counted pairs" '
            'font-family="system-ui, sans-serif" font-size="13">'
        ),
        (
            f'<line x1="{_HIST_LEFT}" y1="{_HIST_TOP + plot_h}" x2="{_HIST_LEFT + plot_w}" '
            f'y2="{_HIST_TOP + plot_h}" stroke="#444444"/>'
        ),
    ]
    for index, count in enumerate(counts):
        if not count:
            continue
        right, left = x(-index * step), x(-(index + 1) * step)
        height = max(2.0, count / tallest * (plot_h - 18))
        top = _HIST_TOP + plot_h - height
        parts.append(
            f'<rect class="bar" data-count="{count}" x="{left + 1:.1f}" y="{top:.1f}" '
            f'width="{max(1.0, right - left - 2):.1f}" height="{height:.1f}" fill="#4a6fa5">'
            f"<title>{count} pair(s) with log2 p in ({-(index + 1) * step:g}, "
            f"{-index * step:g}]</title></rect>"
            f'<text x="{(left + right) / 2:.1f}" y="{top - 4:.1f}" text-anchor="middle">'
            f"{count}</text>"
        )
    ticks = _nice_step(-low, 10)
    for number in range(int(-low // ticks) + 1):
        parts.append(
            f'<text x="{x(-number * ticks):.1f}" y="{_HIST_TOP + plot_h + 18}" '
            f'text-anchor="middle">{-number * ticks:g}</text>'
        )
    # The level's label runs away from the nearer edge, above the bars and their counts.
    at = x(level)
    anchor, shift = ("end", -6) if at > _HIST_WIDTH / 2 else ("start", 6)
    parts.append(
        f'<line class="level" x1="{at:.1f}" y1="{_HIST_TOP - 20}" x2="{at:.1f}" '
        f'y2="{_HIST_TOP + plot_h}" stroke="#b3261e" stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{at + shift:.1f}" y="{_HIST_TOP - 24}" fill="#b3261e" '
        f'text-anchor="{anchor}">per-pair level: log2 p = {level:.2f}</text>'
        f'<text x="{_HIST_LEFT + plot_w / 2:.1f}" y="{_HIST_HEIGHT - 10}" '
        'text-anchor="middle">log2 of the p-value (left of the dashed line: a hit)</text></svg>'
    )
    return (
        heading + f"<figure>{''.join(parts)}<figcaption>{len(values)} counted pair(s), in bins of "
        f"{step:g} in log2 p; the number above each bar is its count. Under the null "
        "hypothesis (a model that never learnt a deposit) nearly all pairs lie near 0."
        "</figcaption></figure>"
    )


def render_scan_report(
    scan_id: str,
    plan: ScanPlan,
    results: Sequence[PairResult],
    *,
    platform: PlatformFacts | None = None,
    generator: str = "secmark",
) -> str:
    """The page of scan ``scan_id`` (module documentation) as HTML text.

    ``results`` are the scan's stored results (``ScanResults.results``:
    every recorded model against every deposit, all referring to ``plan``;
    none yet for a scan started but not run), ``platform`` what the
    platform's folder says of it and its deposits, ``generator`` the
    program named in the footer. Every string from ``results`` and
    ``platform`` is escaped; nothing is checked beyond what
    :class:`~secmark.scan.engine.PairResult` checked when it was built.
    """
    models = sorted({result.model_id for result in results})
    deposits = sorted({result.deposit_id for result in results})
    body = [
        f'<h1>Scan report</h1><p class="muted">scan {_id(scan_id)}</p>',
        _status(scan_id, plan, results, models),
        _plan(scan_id, plan, results, deposits, platform),
        _hits(results),
        _heatmap(plan, results, models, deposits),
        _histogram(plan, results),
        _errors(results),
        (
            f"<footer>Produced by {_e(generator)} from the scan's results table. The figures "
            "are the platform's: re-check a hit by filing a claim with an arbiter.</footer>"
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing outside the page may load, even if an id smuggled markup in.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Scan report: {_e(scan_id)}</title><style>{_STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
