"""``secmark keygen`` and ``secmark identity show``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.crypto import read_key_file
from tests.conftest import flip_byte


def test_keygen_then_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECMARK_PASSPHRASE", "a passphrase")
    assert main(["keygen", "Owner Ltd", "--out-dir", str(tmp_path), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    key_path = tmp_path / "Owner_Ltd.key"
    assert created["key_file"] == str(key_path) and created["encrypted"] is True
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert read_key_file(key_path, b"a passphrase").key_id == created["key_id"]

    assert main(["identity", "show", str(tmp_path / "Owner_Ltd.identity.json"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key_id"] == created["key_id"] and shown["name"] == "Owner Ltd"

    assert main(["identity", "show", str(tmp_path / "Owner_Ltd.identity.json")]) == 0
    assert "self-signature: valid" in capsys.readouterr().out


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "a", "--out-dir", str(tmp_path), "--unencrypted"]) == 0
    before = (tmp_path / "a.key").read_bytes()
    assert main(["keygen", "a", "--out-dir", str(tmp_path), "--unencrypted"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "a.key").read_bytes() == before


def test_keygen_without_passphrase_source_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SECMARK_PASSPHRASE", raising=False)
    assert main(["keygen", "a", "--out-dir", str(tmp_path)]) == 6
    assert "no passphrase" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_passphrase_file(tmp_path: Path) -> None:
    (tmp_path / "pass.txt").write_text("from a file\n")
    assert (
        main(
            [
                "keygen",
                "a",
                "--out-dir",
                str(tmp_path),
                "--passphrase-file",
                str(tmp_path / "pass.txt"),
            ]
        )
        == 0
    )
    assert read_key_file(tmp_path / "a.key", b"from a file").key_id


def test_tampered_identity_is_reported_with_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["keygen", "a", "--out-dir", str(tmp_path), "--unencrypted"])
    path = tmp_path / "a.identity.json"
    data = path.read_bytes()
    path.write_bytes(flip_byte(data, len(data) - 5))
    status = main(["identity", "show", str(path)])
    assert status in (3, 4)
    err = capsys.readouterr().err
    assert err.startswith("secmark: error: ") and err.count("\n") == 1
