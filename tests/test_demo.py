"""The README's first command: ``secmark demo`` tells the whole story and succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from secmark.cli.main import main

pytest.importorskip("torch")


def test_demo_upholds_the_owner_and_rejects_the_thief(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "owner UPHELD, thief REJECTED, chosen inputs REJECTED" in out
    assert "every check passed" in out
    for name in (
        "owner.bundle.json",
        "owner.commitment.json",
        "thief.release.json",
        "arbiter.identity.json",
    ):
        assert (tmp_path / "demo" / name).is_file()
    assert (
        main(
            [
                "verify-bundle",
                str(tmp_path / "demo" / "owner.bundle.json"),
                "--trust",
                str(tmp_path / "demo" / "tsa" / "root.pem"),
            ]
        )
        == 0
    )
