"""``verify-bundle`` and ``report`` on the command line: the same exit statuses
(0 verified, 10 self-asserted, the failed check's code), the structured
``--json`` report also for a refused bundle, and an exhibit that is written
atomically, never over an existing file without ``--force``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.cli.verification import EXIT_SELF_ASSERTED
from tests.report.conftest import Exhibits


def test_verify_bundle_json_is_the_structured_report(
    exhibits: Exhibits, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["verify-bundle", str(exhibits.bundle), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == EXIT_SELF_ASSERTED == data["exit_code"]
    assert (data["status"], data["verified"], data["checks_passed"]) == (
        "self-asserted",
        False,
        True,
    )
    assert "report" not in data  # no wrapped text lines any more
    assert all(set(check) >= {"name", "result", "rests_on"} for check in data["checks"])

    status = main(
        [
            "verify-bundle",
            str(exhibits.bundle),
            "--trust",
            str(exhibits.roots),
            "--arbiter",
            exhibits.arbiter_key_id,
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0 == data["exit_code"]
    assert data["verified"] and data["fully_trusted"] and data["arbiter"] == exhibits.arbiter_key_id


def test_a_refused_bundle_is_reported_with_its_failing_check(
    exhibits: Exhibits, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["verify-bundle", str(exhibits.tampered), "--json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert status == 5 == data["exit_code"]
    assert (data["error"], data["failed_check"], data["outcome"]) == (
        "ProofError",
        "verdict-figures",
        None,
    )
    assert captured.err.startswith("secmark: error: the verdict's figures differ")
    assert captured.err.count("\n") == 1

    status = main(["verify-bundle", str(exhibits.tampered)])
    captured = capsys.readouterr()
    assert status == 5
    assert "bundle REFUSED: the check verdict-figures failed" in captured.out
    assert "bundle verified" not in captured.out and "verdict: upheld" not in captured.out


def test_report_writes_the_exhibit_and_exits_as_verify_bundle(
    exhibits: Exhibits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "verdict.html"
    assert main(["report", str(exhibits.bundle), "--out", str(out)]) == EXIT_SELF_ASSERTED
    assert "exhibit written to" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "self-asserted" in page
    assert oct(os.stat(out).st_mode & 0o777) == "0o644"

    # An existing exhibit is kept unless --force.
    assert main(["report", str(exhibits.bundle), "--out", str(out)]) == 1
    assert "give --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == page
    trusted = [
        "report",
        str(exhibits.bundle),
        "--out",
        str(out),
        "--trust",
        str(exhibits.roots),
        "--arbiter",
        exhibits.arbiter_key_id,
    ]
    assert main([*trusted, "--force"]) == 0
    assert "UPHELD: verified against the judge" in out.read_text(encoding="utf-8")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["verdict.html"]


def test_report_of_a_refused_bundle_shows_the_failure_and_exits_with_its_code(
    exhibits: Exhibits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refused.html"
    assert main(["report", str(exhibits.tampered), "--out", str(out)]) == 5
    captured = capsys.readouterr()
    assert "secmark: error: the verdict's figures differ" in captured.err
    page = out.read_text(encoding="utf-8")
    assert "REFUSED" in page and 'class="failed" data-check="verdict-figures"' in page
    assert "UPHELD" not in page and "verified against the judge" not in page


def test_report_to_standard_output_keeps_the_summary_off_it(
    exhibits: Exhibits, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["report", str(exhibits.bundle), "--out", "-"]) == EXIT_SELF_ASSERTED
    captured = capsysbinary.readouterr()
    assert captured.out.startswith(b"<!DOCTYPE html>") and captured.out.endswith(b"</html>\n")
    assert b"exhibit written to standard output" in captured.err


def test_report_of_a_missing_bundle_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "verdict.html"
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(out)]) == 1
    assert "missing.json" in capsys.readouterr().err and not out.exists()
