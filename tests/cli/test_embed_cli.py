"""``secmark embed`` and ``secmark check`` on the digits example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main

pytest.importorskip("torch")

FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


def test_derive_embed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "owner", "--out-dir", str(tmp_path), "--unencrypted"]) == 0
    key, commitment = str(tmp_path / "owner.key"), str(tmp_path / "c.json")
    assert (
        main(
            [
                "commit",
                "--key",
                key,
                "--family",
                FAMILY,
                "--classes",
                "10",
                "--size",
                "64",
                "--out",
                commitment,
            ]
        )
        == 0
    )
    assert main(["derive", commitment, "--key", key, "--out", str(tmp_path / "triggers")]) == 0
    weights = str(tmp_path / "marked.safetensors")
    capsys.readouterr()
    assert (
        main(
            [
                "embed",
                str(tmp_path / "triggers"),
                "--factory",
                "secmark.examples.digits:DigitsCNN",
                "--data",
                "secmark.examples.digits:training_data",
                "--epochs",
                "25",
                "--out",
                weights,
                "--json",
            ]
        )
        == 0
    )
    embedded = json.loads(capsys.readouterr().out)
    assert embedded["watermark_accuracy_after"] > 0.5
    # A mark not learnt whole is said to be so, with what to change.
    assert ("warning" in embedded) == (embedded["watermark_accuracy_after"] < 0.95)
    assert "--per-batch" in embedded.get("warning", "--per-batch")
    assert (
        main(
            [
                "check",
                str(tmp_path / "triggers"),
                "--commitment",
                commitment,
                "--torch-factory",
                "secmark.examples.digits:DigitsCNN",
                "--weights",
                weights,
                "--json",
            ]
        )
        == 0
    )
    checked = json.loads(capsys.readouterr().out)
    assert checked["trials"] == 64 and checked["decision"] is True
    # The same trigger set against an unmarked model: no evidence.
    unmarked = str(tmp_path / "unmarked.safetensors")
    from secmark.embed import save_state
    from secmark.examples.digits import new_model

    save_state(new_model(seed=5), unmarked)
    assert (
        main(
            [
                "check",
                str(tmp_path / "triggers"),
                "--commitment",
                commitment,
                "--torch-factory",
                "secmark.examples.digits:DigitsCNN",
                "--weights",
                unmarked,
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["decision"] is False
