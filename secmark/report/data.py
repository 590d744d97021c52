"""A bundle report as JSON-ready data: what ``secmark verify-bundle --json`` prints.

The shape is ``secmark.bundle-report`` version 1, specified in
``specs/report.md`` and ``specs/schemas/bundle-report.schema.json``:
structured fields (status, outcome, every check with its result and basis,
trusted times with their roots, parties, figures), never wrapped text
lines. Fields are added only with a new version; a script may rely on every
field the schema lists.
"""

from __future__ import annotations

from typing import Any

from secmark.encoding import format_time
from secmark.messages.verdict import CrossCheck, RivalClaim
from secmark.protocol.bundle_report import BundleReport, BundleStatus, Party, TrustedTime

__all__ = ["REPORT_TYPE", "REPORT_VERSION", "report_data"]

REPORT_TYPE = "secmark.bundle-report"
REPORT_VERSION = 1


def _party(party: Party | None) -> dict[str, Any] | None:
    return None if party is None else {"key_id": party.key_id, "name": party.name}


def _time(time: TrustedTime) -> dict[str, Any]:
    return {
        "event": time.event,
        "document_id": time.document_id,
        "time": format_time(time.time),
        "root_sha256": time.root_sha256,
        "root_source": time.root_source.value,
        "tokens": [
            {
                "source": token.source,
                "time": None if token.time is None else format_time(token.time),
                "tsa": token.tsa,
                "root_sha256": token.root_sha256,
                "error": token.error,
            }
            for token in time.tokens
        ],
    }


def _rival(rival: RivalClaim) -> dict[str, Any]:
    return {
        "claim_id": rival.claim_id,
        "owner": rival.owner,
        "commitment_time": format_time(rival.commitment_time),
        "release_time": None if rival.release_time is None else format_time(rival.release_time),
        "holds_on_suspect": rival.holds_on_suspect,
    }


def _cross_check(check: CrossCheck) -> dict[str, Any]:
    return {
        **check.to_fields(),
        "carries": check.carries,
        "proves": "copy" if check.proves_copy else "absence" if check.proves_absence else "nothing",
    }


def report_data(report: BundleReport, *, exit_code: int) -> dict[str, Any]:
    """``report`` as a ``secmark.bundle-report`` object; ``exit_code`` is the
    status the command exits with (0 verified, 10 self-asserted, the error
    class's code for a failed check)."""
    case = report.case
    figures = report.figures
    verdict = report.verdict
    failure = report.failure
    return {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        "status": report.status.value,
        "verified": report.status is BundleStatus.VERIFIED,
        "checks_passed": report.checks_passed,
        "exit_code": exit_code,
        "outcome": report.outcome,
        "time_trust": report.time_trust.value,
        "arbiter": report.arbiter_key_id,
        "arbiter_pinned": report.arbiter_pinned,
        "fully_trusted": report.fully_trusted,
        "checked_at": format_time(report.checked_at),
        "error": None if failure is None else failure.error,
        "message": None if failure is None else failure.message,
        "failed_check": None if failure is None else failure.check,
        "parties": {"owner": _party(report.owner), "arbiter": _party(report.arbiter)},
        "case": None
        if case is None
        else {
            "claim_id": case.claim_id,
            "suspect": case.suspect,
            "commitment_id": case.commitment_id,
            "family": case.family,
            "size": case.size,
            "model_label": case.model_label,
            "release": None
            if case.release_id is None
            else {
                "release_id": case.release_id,
                "model_name": case.release_model,
                "model_version": case.release_version,
                "model_digest": case.release_digest,
            },
        },
        "times": [_time(time) for time in report.times],
        "tsa_roots": [
            {
                "sha256": root.sha256,
                "subject": root.subject,
                "source": root.source.value,
                "in_bundle": root.in_bundle,
                "used": root.used,
            }
            for root in report.roots
        ],
        "checks": [check.to_data() for check in report.checks],
        "figures": None
        if figures is None
        else {
            "trials": figures.trials,
            "matches": figures.matches,
            "threshold": figures.threshold,
            "p0": figures.p0,
            "alpha": figures.alpha,
            "log2_alpha": figures.log2_alpha,
            "p_value": figures.p_value,
            "log2_p_value": figures.log2_p_value,
            "ci_low": figures.ci_low,
            "ci_high": figures.ci_high,
            "decision": figures.decision,
            "trigger_errors": figures.trigger_errors,
            "decoy_errors": figures.decoy_errors,
            "challenged": figures.challenged,
            "decoys": figures.decoys,
            "prior_challenges": figures.prior_challenges,
            "decoys_labelled": figures.decoys_labelled,
            "decoys_correct": figures.decoys_correct,
            "decoy_ci_low": figures.decoy_ci_low,
            "decoy_ci_high": figures.decoy_ci_high,
        },
        "verdict": None
        if verdict is None
        else {
            "outcome": verdict.outcome,
            "reason": verdict.reason,
            "issued": format_time(verdict.issued),
            "challenge_issued": format_time(verdict.challenge_issued),
            "challenge_expires": format_time(verdict.challenge_expires),
            "rivals": [_rival(rival) for rival in verdict.rivals],
            "cross_checks": [_cross_check(check) for check in verdict.cross_checks],
        },
    }
