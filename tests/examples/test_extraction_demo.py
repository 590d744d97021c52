"""``secmark demo --extraction``: the model-extraction story ends as it should.

The demo runs once for the module (it trains three small models); each test
reads what it left.
"""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secmark.cli.main import main
from secmark.protocol.bundle_report import TimeTrust
from secmark.protocol.extraction_bundle import examine_extraction_bundle
from secmark.timestamp import TrustStore

pytest.importorskip("torch")


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    status: int
    summary: dict[str, Any]
    story: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("extraction") / "demo"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["demo", "--extraction", "--out", str(folder), "--json"])
    # With --json the story goes to standard error: standard output is one object.
    return DemoRun(folder, status, json.loads(out.getvalue()), err.getvalue())


def test_the_student_is_upheld_and_the_innocent_model_rejected(run: DemoRun) -> None:
    summary = run.summary
    assert run.status == 0 and summary["succeeded"] is True
    assert summary["outcomes"] == {"student": "upheld", "innocent": "rejected"}
    student, innocent = summary["suspects"]["student"], summary["suspects"]["innocent"]
    assert student["matches"] >= student["threshold"] > innocent["matches"]
    assert student["tested"] == innocent["tested"] == summary["thief_marks"]
    # The thief asked more than the plan says a copy needs, and got enough marks.
    plan = summary["plan"]
    assert plan["rate"] == "1/50" and plan["accounts"] == 3
    assert summary["thief_queries"] >= plan["queries_needed"]
    assert summary["thief_marks"] >= plan["marks_needed"]
    accuracy = summary["accuracy"]
    assert accuracy["original"] >= accuracy["served"] > 0.9
    assert accuracy["student"] > 0.9 and accuracy["innocent"] > 0.9
    assert "UPHELD" in run.story and "REJECTED" in run.story
    assert summary["threads"] == 1


def test_both_bundles_verify_with_the_judges_roots(
    run: DemoRun, capsys: pytest.CaptureFixture[str]
) -> None:
    judge = TrustStore.from_pem_files([run.folder / "tsa/root.pem"])
    for name, expected in (("student", "upheld"), ("innocent", "rejected")):
        bundle = Path(run.summary["suspects"][name]["bundle"])
        assert bundle == run.folder / f"{name}.bundle.json"
        report = examine_extraction_bundle(
            bundle.read_bytes(), trust=judge, arbiter_key_id=run.summary["arbiter"]
        )
        assert report.passed and report.outcome == expected
        assert report.time_trust is TimeTrust.JUDGE_ROOTS and report.arbiter_pinned
    # The printed commands do the same from the command line: exit status 0.
    commands = run.summary["verify_commands"]
    assert len(commands) == 2
    for command in commands:
        assert command[:2] == ["secmark", "verify-bundle"] and "--arbiter" in command
        assert main(command[1:]) == 0
    capsys.readouterr()


def test_the_files_listed_exist(run: DemoRun) -> None:
    listed = {entry["path"] for entry in run.summary["files"]}
    for path in listed:
        assert Path(path.rstrip("/")).exists()
    for name in (
        "tsa/root.pem",
        "serving-policy.json",
        "serving-policy.evidence.json",
        "query-log.sqlite",
        "checkpoint.evidence.json",
        "thief.extract.json",
        "student.claim.json",
        "innocent.claim.json",
        "student.bundle.json",
        "innocent.bundle.json",
    ):
        assert str(run.folder / name) in listed
    assert f"{run.folder / 'arbiter'}/" in listed
    # Each suspect is named by the SHA-256 of its weights file.
    for name in ("student", "innocent"):
        weights = run.folder / f"{name}.safetensors"
        assert str(weights) in listed
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        assert run.summary["suspects"][name]["reference"] == f"sha256:{digest}"
