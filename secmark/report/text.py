"""A bundle report as readable lines: what ``secmark verify-bundle`` prints.

Lines hold text from documents (names, labels, the verdict's reason); every
character a terminal would not show as itself is escaped (:func:`visible`),
so a document cannot move the cursor or forge a line of the report.
"""

from __future__ import annotations

from collections.abc import Sequence

from secmark.encoding import format_time
from secmark.protocol.bundle_report import BundleReport, RootSource, TimeTrust, TrustedTime
from secmark.protocol.checks import Basis, Check, CheckResult
from secmark.protocol.extraction_bundle import ExtractionReport
from secmark.report.words import (
    OUTCOME_WORDS,
    RESULT_WORDS,
    arbiter_sentence,
    cross_check_sentence,
    decoy_accuracy_sentence,
    format_level,
    format_p_value,
    quoted,
    status_sentence,
    time_sentence,
    visible,
)

__all__ = ["render_extraction_text", "render_text"]

_RESULT_WIDTH = max(len(word) for word in RESULT_WORDS.values())


def _case(report: BundleReport) -> list[str]:
    case = report.case
    if case is None:
        return []
    lines = [
        f"claim {case.claim_id}",
        (
            f"  owner {report.owner.key_id if report.owner else '?'} claims that "
            f"{visible(case.suspect)} carries its watermark"
        ),
        (
            f"  commitment {case.commitment_id}: {case.family} family, N = {case.size}, "
            f"model label {quoted(case.model_label)}"
        ),
    ]
    if case.release_id is not None:
        lines.append(
            f"  release {case.release_id}: model {quoted(case.release_model or '')} version "
            f"{quoted(case.release_version or '')}, file SHA-256 {case.release_digest}"
        )
    return lines


def _parties(report: BundleReport) -> list[str]:
    lines = ["parties:"]
    if report.owner is not None:
        lines.append(f"  owner    {report.owner.key_id} (known by key id only)")
    if report.arbiter is not None:
        lines.append(
            f"  arbiter  {report.arbiter.key_id}, named {quoted(report.arbiter.name or '')} "
            "by its own identity document"
        )
    return lines if len(lines) > 1 else []


def _time(time: TrustedTime) -> list[str]:
    lines = [
        (
            f"  trusted {time.event} time: {format_time(time.time)} (root SHA-256 "
            f"{time.root_sha256}, from the {time.root_source.value})"
        )
    ]
    for token in time.tokens:
        if token.time is not None:
            lines.append(
                f"    {format_time(token.time)}  verified  {visible(token.source)} "
                f"({visible(token.tsa or '')})"
            )
        else:
            lines.append(f"    {'-' * 20}  REFUSED   {visible(token.source)}: {token.error}")
    return lines


def _times(report: BundleReport) -> list[str]:
    if not report.times and not report.roots:
        return []
    lines = ["trusted times:"]
    for time in report.times:
        lines += _time(time)
    lines.append("TSA roots:")
    lines += [
        f"  SHA-256 {root.sha256} ({root.subject}): "
        + ("given by the judge" if root.source is RootSource.JUDGE else "only in the bundle")
        + (", carried by the bundle" if root.source is RootSource.JUDGE and root.in_bundle else "")
        + (", dates this bundle" if root.used else ", dates nothing here")
        for root in report.roots
    ]
    return lines


def _checks(checks: Sequence[Check]) -> list[str]:
    lines = ["checks (result  name [what it rests on]: evidence):"]
    for check in checks:
        lines.append(
            f"  {RESULT_WORDS[check.result]:<{_RESULT_WIDTH}}  {check.name} "
            f"[{check.rests_on.label}]: {check.evidence}"
        )
    return lines


def _figures(report: BundleReport) -> list[str]:
    figures = report.figures
    if figures is None:
        return []
    conclusion = (
        "the null hypothesis is rejected" if figures.decision else "the null hypothesis stands"
    )
    return [
        (
            f"asked: {figures.challenged} triggers chosen by the arbiter's VRF (proof checked), "
            f"mixed with {figures.decoys} decoys; {figures.prior_challenges} earlier "
            "challenge(s) on this commitment"
        ),
        (
            f"answered: {figures.matches} of {figures.trials} trials matched the committed "
            f"labels ({figures.trigger_errors} trigger and {figures.decoy_errors} decoy "
            "queries failed)"
        ),
        f"{decoy_accuracy_sentence(figures)}; the labels are the arbiter's word",
        (
            f"statistics: p0 = {figures.p0}, p-value = {format_p_value(figures.log2_p_value)}, "
            f"threshold {figures.threshold} at alpha = {format_level(figures.alpha)}: "
            f"{conclusion}"
        ),
    ]


def _verdict(report: BundleReport) -> list[str]:
    verdict = report.verdict
    if verdict is None:
        return []
    lines = [
        f"verdict: {verdict.outcome} ({OUTCOME_WORDS.get(verdict.outcome, verdict.outcome)})",
        f"  the arbiter's reason: {quoted(verdict.reason)}",
    ]
    if verdict.rivals or verdict.cross_checks:
        lines.append(
            f"  {len(verdict.rivals)} rival claim(s) and {len(verdict.cross_checks)} "
            "cross-check(s), as attested by the arbiter:"
        )
        lines += [
            f"    rival {r.claim_id[:16]}: committed {format_time(r.commitment_time)}, "
            f"holds on suspect: {'yes' if r.holds_on_suspect else 'no'}"
            for r in verdict.rivals
        ]
        lines += [f"    {cross_check_sentence(c)}" for c in verdict.cross_checks]
    return lines


def _trust(report: BundleReport) -> list[str]:
    lines = ["trust:", f"  time: {time_sentence(report.time_trust)}"]
    if report.arbiter_key_id is not None:
        lines.append(f"  arbiter: {arbiter_sentence(report)}")
    attested = [
        check
        for check in report.resting_on(Basis.ARBITER)
        if check.result is CheckResult.NOT_CHECKED and report.checks_passed
    ]
    if attested:
        lines.append("  resting on the arbiter's signature alone:")
        lines += [f"    - {check.title}" for check in attested]
    return lines


def render_text(report: BundleReport) -> list[str]:
    """The report as lines, ending with the one-line status; control and
    format characters from documents are escaped (error messages quote
    documents too, so every line is)."""
    lines = [
        *_case(report),
        *_parties(report),
        *_times(report),
        *_checks(report.checks),
        *_figures(report),
        *_verdict(report),
        *_trust(report),
        status_sentence(report),
    ]
    return [visible(line) for line in lines]


def render_extraction_text(report: ExtractionReport) -> list[str]:
    """An extraction bundle's report as lines (``secmark verify-bundle`` on
    one), its checks as a trigger bundle's are shown, escaped alike."""
    lines = [f"outcome: {report.outcome or 'NOT VERIFIED'}", *_checks(report.checks)]
    if report.time_trust is TimeTrust.SELF_ASSERTED:
        lines.append("trusted times rest on the bundle's own TSA roots: give --trust")
    return [visible(line) for line in lines]
