"""Bundle verification as named checks (specs/report.md 11.1): every check is
recorded in its declared order with its result and basis, a failure stops
the run at the check that failed and is never reported as a pass, and
``verify_bundle`` raises exactly what the failed check recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from secmark.errors import EncodingError, ProofError, SecmarkError, SignatureError
from secmark.protocol.bundle import examine_bundle, verify_bundle
from secmark.protocol.bundle_report import BundleReport, BundleStatus, RootSource, TimeTrust
from secmark.protocol.checks import NOT_REACHED, Basis, CheckResult
from tests.conftest import fixed_keys
from tests.protocol.conftest import CaseRun, bundle_members, bundle_with, resign

ATTESTED = (
    "suspect-answers",
    "decoy-labels",
    "rivals-and-cross-checks",
    "reveal-in-time",
    "policy",
)
NAMES = (
    "bundle-format",
    "tsa-roots",
    "arbiter-identity",
    "arbiter-pin",
    "claim-signature",
    "claim-terms",
    "commitment-time",
    "release-time",
    "challenge",
    "challenge-indices",
    "reveal",
    "revealed-triggers",
    "transcript",
    "trigger-inputs",
    "verdict-signature",
    "verdict-figures",
    "verdict-references",
    "verdict-outcome",
    *ATTESTED,
)
"""The stable names, in order: scripts and the JSON Schema rely on them."""


def _results(report: BundleReport) -> dict[str, CheckResult]:
    return {check.name: check.result for check in report.checks}


def test_an_honest_bundle_passes_every_check_in_the_declared_order(decided: CaseRun) -> None:
    report = examine_bundle(decided.bundle, decided.arbiter.trust)
    assert tuple(check.name for check in report.checks) == NAMES
    results = _results(report)
    assert {name for name, result in results.items() if result is not CheckResult.PASSED} == {
        "arbiter-pin",
        *ATTESTED,
    }
    assert all(check.evidence and check.title and check.subject for check in report.checks)
    assert [check.name for check in report.resting_on(Basis.ARBITER)] == list(ATTESTED)
    assert report.outcome == "upheld" and report.status is BundleStatus.VERIFIED
    assert report.failure is None and report.error is None and report.checks_passed
    assert report.verdict is not None and report.figures is not None
    assert report.figures.matches == report.figures.trials == report.figures.challenged


def test_the_time_checks_rest_on_the_roots_that_were_used(decided: CaseRun) -> None:
    judged = examine_bundle(decided.bundle, decided.arbiter.trust)
    alone = examine_bundle(decided.bundle)
    for report, basis, source in (
        (judged, Basis.JUDGE_ROOTS, RootSource.JUDGE),
        (alone, Basis.BUNDLE_ROOTS, RootSource.BUNDLE),
    ):
        bases = {check.name: check.rests_on for check in report.checks}
        assert bases["commitment-time"] is bases["release-time"] is basis
        assert [time.event for time in report.times] == ["commitment", "release"]
        assert {time.root_source for time in report.times} == {source}
        (root,) = report.roots  # the judge's root is the bundle's: listed once
        assert (root.source, root.in_bundle, root.used) == (source, True, True)
        assert root.sha256 == report.times[0].root_sha256
    assert judged.time_trust is TimeTrust.JUDGE_ROOTS and alone.time_trust.basis is (
        Basis.BUNDLE_ROOTS
    )
    assert alone.status is BundleStatus.SELF_ASSERTED and alone.checks_passed


def test_the_pin_is_a_check_that_passes_fails_or_is_not_made(decided: CaseRun) -> None:
    real = decided.arbiter.keys.key_id
    pinned = examine_bundle(decided.bundle, arbiter_key_id=real)
    (pin,) = [check for check in pinned.checks if check.name == "arbiter-pin"]
    assert (pin.result, pin.rests_on) == (CheckResult.PASSED, Basis.JUDGE_PIN)

    unpinned = examine_bundle(decided.bundle)
    (pin,) = [check for check in unpinned.checks if check.name == "arbiter-pin"]
    assert (pin.result, pin.rests_on) == (CheckResult.NOT_CHECKED, Basis.BUNDLE_ARBITER)
    assert "NOT pinned" in pin.evidence

    other = fixed_keys("other arbiter").key_id
    refused = examine_bundle(decided.bundle, arbiter_key_id=other)
    assert refused.failure is not None and refused.failure.check == "arbiter-pin"
    assert (refused.failure.error, refused.failure.exit_code) == ("SignatureError", 4)
    # The arbiter's identity was checked before the pin; nothing it signed was read.
    assert refused.arbiter is not None and refused.arbiter.key_id == real
    assert refused.owner is None and refused.case is None and refused.times == ()
    with pytest.raises(SignatureError, match="not by the pinned arbiter"):
        verify_bundle(decided.bundle, arbiter_key_id=other)


def _verdict_with_other_matches(run: CaseRun) -> bytes:
    def change(payload: dict[str, Any]) -> None:
        payload["test"]["matches"] -= 1

    return bundle_with(run.bundle, verdict=resign(run.verdict or b"", run.arbiter.keys, change))


def _transcript_signed_by_another_arbiter(run: CaseRun) -> bytes:
    transcript = bundle_members(run.bundle)["transcript"].encode()
    forged = resign(transcript, fixed_keys("other arbiter"), lambda payload: None)
    return bundle_with(run.bundle, transcript=forged)


def _not_a_bundle(run: CaseRun) -> bytes:
    return json.dumps({"not": "a bundle"}).encode()


@pytest.mark.parametrize(
    ("tamper", "failing", "error"),
    [
        (_not_a_bundle, "bundle-format", EncodingError),
        (_transcript_signed_by_another_arbiter, "transcript", SignatureError),
        (_verdict_with_other_matches, "verdict-figures", ProofError),
    ],
)
def test_a_tampered_bundle_is_reported_up_to_its_failing_check_and_never_as_a_pass(
    decided: CaseRun,
    tamper: Callable[[CaseRun], bytes],
    failing: str,
    error: type[SecmarkError],
) -> None:
    data = tamper(decided)
    report = examine_bundle(data, decided.arbiter.trust)
    assert report.status is BundleStatus.FAILED and not report.checks_passed
    assert report.outcome is None and report.verdict is None and not report.fully_trusted
    assert report.failure is not None and report.failure.check == failing
    assert report.failure.error == error.__name__ and report.failure.exit_code == error.exit_code
    assert isinstance(report.error, error)

    names = [check.name for check in report.checks]
    assert tuple(names) == NAMES
    position = names.index(failing)
    before, failed, after = (
        report.checks[:position],
        report.checks[position],
        report.checks[position + 1 :],
    )
    assert all(check.result is not CheckResult.FAILED for check in before)
    assert failed.result is CheckResult.FAILED and failed.evidence == report.failure.message
    assert all(
        (check.result, check.evidence) == (CheckResult.NOT_CHECKED, NOT_REACHED) for check in after
    )

    with pytest.raises(error) as raised:
        verify_bundle(data, decided.arbiter.trust)
    assert str(raised.value) == report.failure.message


def test_a_pin_that_is_not_a_key_id_is_the_judges_mistake_not_the_bundles(
    decided: CaseRun,
) -> None:
    with pytest.raises(EncodingError, match="64 lower-case hex"):
        examine_bundle(decided.bundle, arbiter_key_id="not a key id")
