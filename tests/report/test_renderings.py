"""The text and the JSON renderings of a bundle report say the same thing as
its records (specs/report.md 11.2), and text from documents cannot reorder or
hide what a reader sees."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import pytest
from jsonschema import Draft202012Validator

from secmark import schemas
from secmark.encoding import utc_now
from secmark.protocol.bundle import examine_bundle
from secmark.protocol.bundle_report import BundleReport, Figures, TimeTrust
from secmark.protocol.checks import Basis, Check, CheckResult
from secmark.protocol.extraction_bundle import ExtractionReport
from secmark.report import (
    REPORT_TYPE,
    render_exhibit,
    render_extraction_text,
    render_text,
    report_data,
)
from secmark.report.distribution import MAX_PLOTTED_POINTS, null_curve
from secmark.report.plot import null_plot
from secmark.report.words import format_level, format_p_value, visible
from secmark.stats import binomial_test, decision_threshold, log2_binomial_tail
from secmark.timestamp import TrustStore
from tests.report.conftest import HOSTILE_NAME, Exhibits

VALIDATOR = Draft202012Validator(schemas.load("bundle-report"))


@pytest.fixture(scope="module")
def reports(exhibits: Exhibits) -> dict[str, BundleReport]:
    trust = TrustStore.from_pem_files([exhibits.roots])
    bundle, tampered = exhibits.bundle.read_bytes(), exhibits.tampered.read_bytes()
    return {
        "verified": examine_bundle(bundle, trust, arbiter_key_id=exhibits.arbiter_key_id),
        "self-asserted": examine_bundle(bundle),
        "failed": examine_bundle(tampered, trust),
    }


def test_the_text_names_every_check_and_ends_with_the_status(
    reports: dict[str, BundleReport],
) -> None:
    text = render_text(reports["self-asserted"])
    for check in reports["self-asserted"].checks:
        assert any(f" {check.name} [" in line for line in text)
    assert text[-1].startswith("bundle NOT verified against your roots")
    assert "SELF-ASSERTED" in text[-1] and "NOT pinned" in text[-1]
    assert f"named “{HOSTILE_NAME}”" in "\n".join(text)

    verified = render_text(reports["verified"])
    assert verified[-1].startswith("bundle verified:") and "is the pinned one" in verified[-1]
    assert not any("SELF-ASSERTED" in line or "NOT pinned" in line for line in verified)


def test_the_text_of_a_failed_bundle_shows_the_failure_and_no_outcome(
    reports: dict[str, BundleReport],
) -> None:
    text = render_text(reports["failed"])
    assert text[-1].startswith("bundle REFUSED: the check verdict-figures failed (ProofError:")
    assert any(line.startswith("  FAILED") and "verdict-figures" in line for line in text)
    assert not any(line.startswith(("verdict:", "statistics:")) for line in text)
    assert not any("bundle verified" in line for line in text)


def test_document_text_cannot_hide_or_reorder_what_the_report_shows(
    reports: dict[str, BundleReport],
) -> None:
    report = reports["verified"]
    assert report.verdict is not None
    hostile = "evil\u202egnp.exe\x1b[2J\u200b end"
    changed = dataclasses.replace(
        report, verdict=dataclasses.replace(report.verdict, reason=hostile)
    )
    text = "\n".join(render_text(changed))
    assert "\u202e" not in text and "\x1b" not in text and "\u200b" not in text
    assert "evil\\u202egnp.exe\\x1b[2J\\u200b end" in text
    page = render_exhibit(changed)
    assert "\u202e" not in page and "\x1b" not in page
    assert "evil\\u202egnp.exe\\x1b[2J\\u200b end" in page
    assert visible("plain text, ünïcödé") == "plain text, ünïcödé"


@pytest.mark.parametrize("name", ["verified", "self-asserted", "failed"])
def test_the_json_matches_its_schema_and_the_records(
    reports: dict[str, BundleReport], name: str
) -> None:
    report = reports[name]
    exit_code = {"verified": 0, "self-asserted": 10, "failed": 5}[name]
    data = report_data(report, exit_code=exit_code)
    # Through the encoder and back, as a script receives it; no NaN or infinity.
    data = json.loads(json.dumps(data, allow_nan=False))
    VALIDATOR.validate(data)
    assert (data["type"], data["version"], data["status"]) == (REPORT_TYPE, 1, name)
    assert data["verified"] is (name == "verified") and data["exit_code"] == exit_code
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.checks]
    assert [c["result"] for c in data["checks"]] == [c.result.value for c in report.checks]
    assert data["parties"]["arbiter"]["name"] == HOSTILE_NAME
    if name == "failed":
        assert data["outcome"] is None and data["verdict"] is None and data["figures"] is None
        assert (data["failed_check"], data["error"]) == ("verdict-figures", "ProofError")
    else:
        assert data["outcome"] == "upheld" and data["error"] is None
        assert data["figures"]["matches"] == data["figures"]["trials"] == 48
        assert data["figures"]["alpha"] == "1/18446744073709551616"
        assert [t["root_source"] for t in data["times"]] == (
            ["judge", "judge"] if name == "verified" else ["bundle", "bundle"]
        )


def test_a_bundle_without_labelled_decoys_says_so_in_every_rendering(
    reports: dict[str, BundleReport],
) -> None:
    report = reports["verified"]
    said = "decoys with known labels: none (no labelled decoys)"
    assert any(line.startswith(said) for line in render_text(report))
    assert said in render_exhibit(report)
    figures = report_data(report, exit_code=0)["figures"]
    assert (figures["decoys_labelled"], figures["decoys_correct"]) == (0, 0)
    assert figures["decoy_ci_low"] is figures["decoy_ci_high"] is None


def test_levels_and_p_values_are_written_for_people() -> None:
    assert format_level("1/18446744073709551616") == "2^-64"
    assert format_level("1/1000000") == "1/1000000 (about 2^-19.93)"
    assert format_p_value(-159.4525) == "2^-159.45 (1e-48)"
    assert format_p_value(-2000.0) == "2^-2000.00"
    assert format_p_value(0.0) == "1"


def test_the_null_curve_is_the_exact_binomial_and_meets_alpha_at_the_threshold() -> None:
    p0, alpha = Fraction(1, 10), Fraction(1, 2**64)
    threshold = decision_threshold(48, p0, alpha)
    curve = null_curve(48, p0, threshold, observed=48)
    assert curve.points == tuple(range(49))
    assert sum(2.0**v for v in curve.log2_pmf) == pytest.approx(1.0, rel=1e-12)
    assert curve.log2_pmf[0] == pytest.approx(48 * (-0.15200309344504997), rel=1e-12)
    assert curve.log2_tail[0] == 0.0 and curve.log2_tail[48] == pytest.approx(-48 * 3.321928)
    # The threshold is where the exact tail first falls to alpha.
    assert curve.log2_threshold_tail <= -64 < curve.log2_tail[threshold - 1]

    # Sampled beyond MAX_PLOTTED_POINTS, exactly or in log space, alike.
    for p0, exact in ((Fraction(1, 3), True), (Fraction(1, 50000), False)):
        large = null_curve(10000, p0, 1000, observed=5000)
        assert large.exact is exact and len(large.points) <= MAX_PLOTTED_POINTS + 2
        assert {0, 1000, 5000, 10000} <= set(large.points)
        middle = large.points.index(5000)
        assert large.log2_tail[middle] == pytest.approx(
            log2_binomial_tail(10000, 5000, p0), rel=1e-9
        )
        assert large.log2_pmf[middle] < large.log2_tail[middle]


def _figures(trials: int, matches: int, threshold: int) -> Figures:
    test = binomial_test(trials, matches, Fraction(1, 10), Fraction(1, 2**64))
    return Figures(
        trials=trials,
        matches=matches,
        threshold=threshold,
        p0="1/10",
        alpha="1/18446744073709551616",
        log2_alpha=-64.0,
        p_value=test.p_value,
        log2_p_value=test.log2_p_value,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        decision=matches >= threshold,
        trigger_errors=0,
        decoy_errors=0,
        challenged=trials,
        decoys=trials,
        prior_challenges=0,
        decoys_labelled=0,
        decoys_correct=0,
        decoy_ci_low=None,
        decoy_ci_high=None,
    )


def test_the_plot_scales_to_large_challenges_and_to_ones_that_cannot_decide() -> None:
    large = null_plot(_figures(1000, 300, decision_threshold(1000, Fraction(1, 10), 2.0**-64)))
    assert '<path class="pmf"' in large and '<rect class="pmf"' not in large
    assert 'id="observed"' in large and 'class="threshold"' in large
    # Twenty trials can never reach 2^-64 at p0 = 1/10: no threshold is drawn.
    small = null_plot(_figures(20, 20, 21))
    assert 'class="threshold"' not in small and 'class="rejection-region"' not in small
    assert 'class="alpha"' in small and 'id="observed"' in small


def test_an_extraction_report_escapes_what_documents_put_in_it() -> None:
    # The evidence of a check quotes documents (an error message, a reference):
    # a hostile one must not move the cursor or forge a line.
    hostile = "evil\u202egnp.exe\x1b[2J\nok   forged-check: passed"
    check = Check(
        "claim-signature", "the claim is signed", "claim", CheckResult.FAILED, hostile,
        Basis.CRYPTOGRAPHY,
    )  # fmt: skip
    report = ExtractionReport(
        outcome=None,
        time_trust=TimeTrust.SELF_ASSERTED,
        arbiter_key_id=None,
        arbiter_pinned=False,
        checked_at=utc_now(),
        checks=(check,),
    )
    lines = render_extraction_text(report)
    text = "\n".join(lines)
    assert "\u202e" not in text and "\x1b" not in text
    assert not any(line.startswith("ok   forged-check") for line in lines)
    assert lines[0] == "outcome: NOT VERIFIED"
    assert "FAILED" in lines[2] and "claim-signature" in lines[2]
