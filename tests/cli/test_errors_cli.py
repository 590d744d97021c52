"""Failures on the command line: one line on standard error, the error class's
exit code, and with --json a JSON object a script can read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main


def test_a_failure_is_reported_in_json_when_json_was_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(b'{"not": "a bundle"}')
    status = main(["verify-bundle", str(bundle), "--json"])
    captured = capsys.readouterr()
    failure = json.loads(captured.out)
    assert status == failure["exit_code"] == 3
    assert failure["error"] == "EncodingError" and failure["message"]
    assert captured.err.startswith("secmark: error: ") and captured.err.count("\n") == 1


def test_without_json_a_failure_prints_nothing_on_standard_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["verify-bundle", str(tmp_path / "missing.json")])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert "missing.json" in captured.err
