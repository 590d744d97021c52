"""White-box checks from the command line: ``--weights-file``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.triggers import iter_triggers, write_trigger_set
from tests.whitebox.conftest import Marked


def _trigger_set(tmp_path: Path, marked: Marked) -> tuple[Path, Path]:
    signed: SignedDocument[Commitment] = marked.signed
    commitment = tmp_path / "commitment.json"
    commitment.write_bytes(signed.to_json())
    folder = tmp_path / "rows"
    size = signed.document.size
    write_trigger_set(folder, signed, iter_triggers(marked.keys, signed, range(size)), size)
    return commitment, folder


def test_check_reads_the_weights_file(
    tmp_path: Path, marked: Marked, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commitment, rows = _trigger_set(tmp_path, marked)
    status = main(
        [
            "check",
            str(rows),
            "--commitment",
            str(commitment),
            "--weights-file",
            str(model_file),
            "--json",
        ]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decision"] is True and result["matches"] >= 0.99 * result["trials"]


def test_a_weights_commitment_is_not_queried_as_a_model(
    tmp_path: Path, marked: Marked, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commitment, rows = _trigger_set(tmp_path, marked)
    status = main(
        [
            "check",
            str(rows),
            "--commitment",
            str(commitment),
            "--torch-factory",
            "secmark.examples.digits:DigitsCNN",
            "--weights",
            str(model_file),
        ]
    )
    assert status == 1
    assert "checked with --weights-file" in capsys.readouterr().err
