"""A bundle report as a self-contained HTML exhibit a judge can read.

One HTML document, ``secmark report``'s output: no script, no external
resource (inline CSS, the plot as inline SVG), readable printed. It shows,
in order: the status (verified, self-asserted or refused) and the outcome,
the parties, the claim, a timeline that tells trusted times from the
arbiter's own clock, every check with its result and whose word it rests
on, what rests on the arbiter's word alone, the observed matches against
the null distribution with alpha marked, alpha in plain language, the
verdict and the TSA roots. A bundle that fails is shown with its failing
check, never with an outcome.

Every text that comes from a document (names, labels, reasons, error
messages that quote documents) is escaped twice over: its invisible and
direction-changing characters are written as escapes (:func:`visible`), and
the result is HTML-escaped, so ``<script>`` in a name shows as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime

from secmark.encoding import format_time
from secmark.protocol.bundle_report import BundleReport, BundleStatus, RootSource, TimeTrust
from secmark.protocol.checks import Basis
from secmark.report.plot import null_plot
from secmark.report.words import (
    OUTCOME_WORDS,
    RESULT_WORDS,
    alpha_explanation,
    arbiter_sentence,
    cross_check_sentence,
    decoy_accuracy_sentence,
    format_level,
    format_p_value,
    headline,
    time_sentence,
    visible,
)

__all__ = ["render_exhibit"]

_STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
  margin: 0 auto; padding: 1.5em 2em 3em; max-width: 1120px; background: #ffffff; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.5em; padding-bottom: 0.2em;
  border-bottom: 1px solid #d0d0d0; }
p { margin: 0.5em 0; }
code, .id { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9em;
  overflow-wrap: anywhere; }
.status { border: 2px solid; border-radius: 8px; padding: 0.9em 1.2em; margin: 1em 0; }
.status p { margin: 0.3em 0; }
.status .big { font-size: 1.35em; font-weight: 700; }
.status.verified { background: #e8f5e9; border-color: #2e7d32; }
.status.self-asserted { background: #fff4e0; border-color: #b26a00; }
.status.failed { background: #fdecea; border-color: #b3261e; }
.warning { background: #fff4e0; border-left: 5px solid #b26a00; padding: 0.5em 0.9em;
  margin: 0.6em 0; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d0d0; padding: 0.35em 0.55em; text-align: left;
  vertical-align: top; }
th { background: #f3f3f3; }
td.evidence { overflow-wrap: anywhere; }
table.checks th:nth-child(2) { width: 23%; }
table.checks th:nth-child(3) { width: 9%; }
table.checks th:nth-child(4) { width: 7%; }
table.checks th:nth-child(6) { width: 11%; }
tr.passed td.result { color: #1b5e20; font-weight: 700; }
tr.failed td { background: #fdecea; }
tr.failed td.result { color: #b3261e; font-weight: 700; }
tr.not-checked td.result { color: #6b6b6b; font-weight: 700; }
tr.attested td { background: #fffaf0; }
.badge { display: inline-block; border-radius: 4px; padding: 0 0.4em; font-size: 0.85em;
  font-weight: 600; border: 1px solid; white-space: nowrap; }
.badge.trusted { color: #1b5e20; border-color: #2e7d32; background: #e8f5e9; }
.badge.self { color: #8a4b00; border-color: #b26a00; background: #fff4e0; }
.badge.clock { color: #555555; border-color: #999999; background: #f5f5f5; }
ol.timeline { list-style: none; padding: 0 0 0 1.4em; margin: 0.8em 0;
  border-left: 3px solid #c9c9c9; }
ol.timeline li { position: relative; margin: 0 0 0.9em 0; padding-left: 0.6em; }
ol.timeline li::before { content: ""; position: absolute; left: -1.95em; top: 0.45em;
  width: 0.8em; height: 0.8em; border-radius: 50%; background: #ffffff;
  border: 3px solid #9e9e9e; }
ol.timeline li.trusted::before { border-color: #2e7d32; background: #2e7d32; }
ol.timeline li.self::before { border-color: #b26a00; background: #b26a00; }
ol.timeline .when { font-weight: 700; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25em 1em; margin: 0.5em 0; }
dl.facts dt { font-weight: 600; color: #444444; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: 0.8em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { font-size: 0.95em; color: #333333; }
ul.legend { list-style: none; padding: 0; margin: 0.4em 0; display: flex; flex-wrap: wrap;
  gap: 0.3em 1.6em; font-size: 0.95em; }
ul.legend .swatch { display: inline-block; width: 1.6em; height: 0; vertical-align: middle;
  margin-right: 0.4em; border-top: 3px solid; }
.muted { color: #555555; }
footer { margin-top: 2.5em; font-size: 0.85em; color: #555555; }
@media print { body { padding: 0; } .status, .warning { break-inside: avoid; } }
"""


def _e(text: str) -> str:
    """Text for HTML: invisible characters shown as escapes, then HTML-escaped."""
    return html.escape(visible(text), quote=True)


_POWER = re.compile(r"2\^(-?[0-9]+(?:\.[0-9]+)?)")


def _math(text: str) -> str:
    """:func:`_e`, with every power of two written ``2^-64`` set as a superscript."""
    return _POWER.sub(r"2<sup>\1</sup>", _e(text))


def _id(text: str) -> str:
    return f'<span class="id">{_e(text)}</span>'


def _status(report: BundleReport) -> str:
    status = report.status
    big = _e(headline(report))
    lines = [f'<p class="big" id="outcome">{big}</p>']
    if status is BundleStatus.FAILED:
        failure = report.failure
        check = report.failed_check
        if failure is not None and check is not None:
            lines.append(
                f"<p>The check <b>{_e(check.name)}</b> ({_e(check.title)}) failed: "
                f"{_e(failure.message)} ({_e(failure.error)}).</p>"
            )
        lines.append(
            "<p>A bundle that fails a check proves nothing: no outcome is reported, and the "
            "facts below are only those the checks before the failure established.</p>"
        )
    else:
        outcome = report.outcome or ""
        lines.append(
            f"<p>The verdict: <b>{_e(outcome)}</b>: {_e(OUTCOME_WORDS.get(outcome, ''))}.</p>"
        )
        if status is BundleStatus.VERIFIED:
            lines.append(
                "<p>Every signature, timestamp, proof and figure was re-checked, the times "
                "against the judge's own TSA roots.</p>"
            )
        else:
            lines.append(
                "<p>Every check passed, but the times verify only against TSA roots that the "
                "bundle itself carries: they, and the verdict with them, are the bundle's own "
                "assertion until checked against roots the judge trusts.</p>"
            )
        if report.arbiter_pinned:
            lines.append(f"<p>{_e(arbiter_sentence(report)).capitalize()}.</p>")
    return f'<section class="status {status.value}">{"".join(lines)}</section>'


def _warnings(report: BundleReport) -> str:
    parts = []
    if report.time_trust is TimeTrust.SELF_ASSERTED:
        parts.append(f'<p class="warning">Times: {_e(time_sentence(report.time_trust))}</p>')
    if report.arbiter_key_id is not None and not report.arbiter_pinned:
        parts.append(f'<p class="warning">Arbiter: {_e(arbiter_sentence(report))}.</p>')
    return "".join(parts)


def _parties(report: BundleReport) -> str:
    rows = []
    if report.owner is not None:
        rows.append(
            f"<tr><td>owner (claimant)</td><td>{_id(report.owner.key_id)}</td>"
            '<td class="muted">none: the bundle knows the owner by key id only</td>'
            "<td>signed the commitment, the claim, the release and the reveal</td></tr>"
        )
    if report.arbiter is not None:
        pinned = (
            "pinned by the judge"
            if report.arbiter_pinned
            else "NOT pinned: only the bundle's word says who this is"
        )
        rows.append(
            f"<tr><td>arbiter</td><td>{_id(report.arbiter.key_id)}</td>"
            f"<td>{_e(report.arbiter.name or '')} "
            '<span class="muted">(its own label, unverified)</span></td>'
            f"<td>signed the challenge, the transcript and the verdict; {_e(pinned)}</td></tr>"
        )
    if not rows:
        return "<h2>Parties</h2><p>Not established: the bundle failed before they were read.</p>"
    return (
        "<h2>Parties</h2><table><thead><tr><th>role</th><th>key id (what counts)</th>"
        "<th>name</th><th>part</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _case(report: BundleReport) -> str:
    case = report.case
    if case is None:
        return ""
    facts = [
        ("claim", _id(case.claim_id)),
        ("suspect", _id(case.suspect)),
        ("commitment", _id(case.commitment_id)),
        ("trigger family", _e(f"{case.family}, N = {case.size} committed triggers")),
        ("model label", _e(case.model_label)),
    ]
    if case.release_id is not None:
        facts += [
            ("release", _id(case.release_id)),
            (
                "released model",
                _e(f"{case.release_model or ''}, version {case.release_version or ''}")
                + f", file SHA-256 {_id(case.release_digest or '')}",
            ),
        ]
    body = "".join(f"<dt>{_e(name)}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<h2>The claim</h2><dl class="facts">{body}</dl>'


def _event(when: datetime, kind: str, badge: str, text: str) -> tuple[datetime, str]:
    return when, (
        f'<li class="{kind}"><span class="when">{_e(format_time(when))}</span> {badge} {text}</li>'
    )


def _timeline(report: BundleReport, history: Sequence[tuple[datetime, str]]) -> str:
    events = []
    for time in report.times:
        trusted = time.root_source is RootSource.JUDGE
        badge = (
            '<span class="badge trusted">trusted: the judge\'s TSA root</span>'
            if trusted
            else '<span class="badge self">self-asserted: the bundle\'s own TSA root</span>'
        )
        verified = [token for token in time.tokens if token.time is not None]
        tsa = verified[0].tsa if verified else ""
        events.append(
            _event(
                time.time,
                "trusted" if trusted else "self",
                badge,
                f"the {_e(time.event)} {_id(time.document_id[:16])}… was timestamped by "
                f"{_e(tsa or '')} (root SHA-256 {_id(time.root_sha256)}; "
                f"{len(verified)} of {len(time.tokens)} token(s) verified)",
            )
        )
    clock = '<span class="badge clock">the arbiter\'s clock (its word)</span>'
    if report.verdict is not None:
        verdict = report.verdict
        events.append(
            _event(verdict.challenge_issued, "clock", clock, "the arbiter issued the challenge")
        )
        events.append(
            _event(
                verdict.challenge_expires,
                "clock",
                clock,
                "the challenge expired (the owner's reveal had to come before)",
            )
        )
        events.append(_event(verdict.issued, "clock", clock, "the arbiter signed the verdict"))
    for when, step in history:
        events.append(_event(when, "clock", clock, f"at the arbiter's service: {_e(step)}"))
    events.append(
        _event(
            report.checked_at,
            "clock",
            '<span class="badge clock">the verifier\'s clock</span>',
            "this report was checked",
        )
    )
    events.sort(key=lambda event: event[0])
    return (
        "<h2>Timeline</h2><p>Only RFC 3161 timestamps give trusted times; the others are "
        'the signer\'s own clock and informative.</p><ol class="timeline">'
        + "".join(item for _, item in events)
        + "</ol>"
    )


def _checks(report: BundleReport) -> str:
    rows = []
    for number, check in enumerate(report.checks, 1):
        classes = [check.result.value]
        if check.rests_on is Basis.ARBITER:
            classes.append("attested")
        rows.append(
            f'<tr class="{" ".join(classes)}" data-check="{_e(check.name)}">'
            f"<td>{number}</td><td><b>{_e(check.name)}</b><br>{_e(check.title)}</td>"
            f"<td>{_e(check.subject)}</td>"
            f'<td class="result">{_e(RESULT_WORDS[check.result])}</td>'
            f'<td class="evidence">{_math(check.evidence)}</td>'
            f'<td title="{_e(check.rests_on.description)}">{_e(check.rests_on.label)}</td></tr>'
        )
    return (
        f"<h2>Every check ({len(report.checks)})</h2>"
        '<table class="checks"><thead><tr><th>#</th><th>check</th><th>subject</th>'
        "<th>result</th><th>evidence</th><th>rests on</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + '<p class="muted">What a result rests on: '
        + "; ".join(f"<b>{_e(basis.label)}</b>: {_e(basis.description)}" for basis in Basis)
        + ".</p>"
    )


def _arbiters_word(report: BundleReport) -> str:
    attested = report.resting_on(Basis.ARBITER)
    items = [f"<li>{_e(check.title)}: {_math(check.evidence)}</li>" for check in attested]
    if not report.arbiter_pinned:
        items.append(
            "<li>who the arbiter is: no key id was pinned, so any arbiter's signature, the "
            "bundle maker's own included, was accepted.</li>"
        )
    if report.time_trust is TimeTrust.SELF_ASSERTED:
        items.append(
            "<li>every time in the bundle: its timestamps verify only against TSA roots the "
            "bundle carries.</li>"
        )
    return (
        "<h2>What rests on the arbiter's word</h2><p>The verifier re-checked every "
        "signature, proof and figure above. It cannot re-check the following: they rest on "
        "the arbiter's signature (or, where said, on the bundle's own word).</p>"
        f"<ul>{''.join(items)}</ul>"
    )


def _statistics(report: BundleReport) -> str:
    figures = report.figures
    if figures is None:
        return (
            "<h2>Matches against chance</h2><p>Not available: the bundle failed before its "
            "figures were recomputed.</p>"
        )
    facts = [
        ("challenged", f"{figures.challenged} triggers, hidden among {figures.decoys} decoys"),
        ("trials", str(figures.trials)),
        ("matches", str(figures.matches)),
        ("failed queries", f"{figures.trigger_errors} trigger, {figures.decoy_errors} decoy"),
        (
            "decoy accuracy (evidence beside the test; labels on the arbiter's word)",
            decoy_accuracy_sentence(figures),
        ),
        ("p0 (chance of a match by guessing)", figures.p0),
        ("alpha", format_level(figures.alpha)),
        ("threshold", f"{figures.threshold} matches"),
        ("p-value", format_p_value(figures.log2_p_value)),
        (
            "decision",
            "the null hypothesis is rejected: the watermark is shown"
            if figures.decision
            else "the null hypothesis stands: the watermark is not shown",
        ),
        ("earlier challenges of this commitment", str(figures.prior_challenges)),
    ]
    body = "".join(f"<dt>{_e(name)}</dt><dd>{_math(value)}</dd>" for name, value in facts)
    legend = (
        '<ul class="legend">'
        '<li><span class="swatch" style="border-color:#a3b6d2;border-top-width:10px"></span>'
        "chance of exactly m matches by guessing (bars)</li>"
        '<li><span class="swatch" style="border-color:#222222"></span>'
        "chance of m or more (the p-value of m)</li>"
        '<li><span class="swatch" style="border-color:#b3261e;border-top-style:dashed"></span>'
        "alpha, and the threshold where the p-value falls to it</li>"
        '<li><span class="swatch" style="border-color:#d9480f"></span>the observed count</li>'
        '<li><span class="swatch" style="border-color:#fbe3e1;border-top-width:10px"></span>'
        "counts at which the test upholds</li></ul>"
    )
    explanation = "".join(f"<p>{_math(text)}</p>" for text in alpha_explanation(figures))
    return (
        "<h2>Matches against chance</h2>"
        "<p>Recomputed here from the transcript (the verdict's own floats are not used).</p>"
        f'<dl class="facts">{body}</dl>'
        f"<figure>{null_plot(figures)}<figcaption>{legend}</figcaption></figure>"
        f'<h3>What alpha means</h3><div class="alpha-explanation">{explanation}</div>'
    )


def _verdict(report: BundleReport) -> str:
    verdict = report.verdict
    if verdict is None:
        return ""
    parts = [
        "<h2>The verdict</h2>",
        f"<p><b>{_e(verdict.outcome)}</b>: {_e(OUTCOME_WORDS.get(verdict.outcome, ''))}.</p>",
        f"<p>The arbiter's reason, in its own words: <q>{_e(verdict.reason)}</q></p>",
    ]
    if verdict.rivals or verdict.cross_checks:
        items = [
            f"<li>rival claim {_id(rival.claim_id[:16])}… of owner {_id(rival.owner[:16])}…, "
            f"committed {_e(format_time(rival.commitment_time))}; holds on the suspect: "
            f"{'yes' if rival.holds_on_suspect else 'no'}</li>"
            for rival in verdict.rivals
        ]
        items += [f"<li>{_e(cross_check_sentence(check))}</li>" for check in verdict.cross_checks]
        parts.append(
            "<p>Rival claims and cross-checks, as the arbiter attests them:</p>"
            f"<ul>{''.join(items)}</ul>"
        )
    return "".join(parts)


def _roots(report: BundleReport) -> str:
    if not report.roots:
        return ""
    rows = "".join(
        f"<tr><td>{_id(root.sha256)}</td><td>{_e(root.subject)}</td>"
        f"<td>{'the judge' if root.source is RootSource.JUDGE else 'only the bundle'}</td>"
        f"<td>{'yes' if root.in_bundle else 'no'}</td>"
        f"<td>{'yes' if root.used else 'no'}</td></tr>"
        for root in report.roots
    )
    return (
        "<h2>TSA roots</h2><p>Compare these fingerprints with roots you trust.</p>"
        "<table><thead><tr><th>SHA-256 fingerprint</th><th>subject</th><th>given by</th>"
        "<th>in the bundle</th><th>dates this bundle</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def render_exhibit(
    report: BundleReport,
    *,
    generator: str = "secmark",
    bundle_href: str | None = None,
    history: Sequence[tuple[datetime, str]] = (),
) -> str:
    """The exhibit as one HTML document (UTF-8 text). ``generator`` names
    the program in the footer; ``bundle_href``, where a page served beside
    its bundle links the bundle for download (a same-origin path);
    ``history``, the steps of the case as the arbiter's service recorded
    them (its clock, its word), placed on the timeline."""
    title = f"Verdict exhibit: {headline(report)}"
    subtitle = "" if report.case is None else f"claim {report.case.claim_id}"
    body = [
        f'<h1>Verdict exhibit</h1><p class="muted">{_id(subtitle)}</p>',
        _status(report),
        _warnings(report),
        _parties(report),
        _case(report),
        _timeline(report, history),
        _checks(report),
        _arbiters_word(report) if report.checks_passed else "",
        _statistics(report),
        _verdict(report),
        _roots(report),
        (
            ""
            if bundle_href is None
            else f'<p><a id="bundle" href="{_e(bundle_href)}" download>Download the bundle</a> '
            "and re-check it offline: <code>secmark verify-bundle</code>.</p>"
        ),
        (
            f"<footer>Produced by {_e(generator)} from the bundle alone, offline, at "
            f"{_e(format_time(report.checked_at))} by the verifier's clock.</footer>"
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing outside the page may load, even if a document smuggled markup in.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
