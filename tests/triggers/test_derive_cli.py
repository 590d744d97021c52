"""``secmark derive`` through a parser of its own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from secmark.cli import derive as derive_command
from secmark.crypto import INTERACTIVE_KDF, write_key_file
from secmark.errors import EncodingError, KeyMaterialError, ProofError, SecmarkError
from secmark.messages.families import NoiseFamily, PoolFamily
from secmark.messages.labels import ClassLabels
from secmark.triggers import (
    CommittedPool,
    derive_trigger,
    read_trigger_set,
    verify_trigger_set,
)
from tests.conftest import fixed_keys
from tests.triggers.conftest import commit, make_pool

OWNER = fixed_keys("owner")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="secmark")
    derive_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    signed = commit(OWNER, NoiseFamily((2, 4, 4), "uint8", 0, 255), ClassLabels(10), size=20)
    (tmp_path / "commitment.json").write_bytes(signed.to_json())
    write_key_file(tmp_path / "owner.key", OWNER, None, unencrypted=True)
    return {
        "commitment": tmp_path / "commitment.json",
        "key": tmp_path / "owner.key",
        "dir": tmp_path,
    }


def test_derive_all_with_json_summary(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "set"
    status = _run(
        [
            "derive",
            str(files["commitment"]),
            "--key",
            str(files["key"]),
            "--out",
            str(out),
            "--json",
        ]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 20 and summary["directory"] == str(out)
    loaded = read_trigger_set(out)
    assert loaded.indices.tolist() == list(range(20))
    assert summary["files"] == loaded.manifest.digests


def test_derive_selected_indices_with_passphrase(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key = files["dir"] / "protected.key"
    write_key_file(key, OWNER, b"owner passphrase", kdf=INTERACTIVE_KDF)
    (files["dir"] / "pass.txt").write_text("owner passphrase\n")
    out = files["dir"] / "some"
    status = _run(
        [
            "derive",
            str(files["commitment"]),
            "--key",
            str(key),
            "--out",
            str(out),
            "--indices",
            "3-5,1,4,19",
            "--passphrase-file",
            str(files["dir"] / "pass.txt"),
        ]
    )
    assert status == 0
    text = capsys.readouterr().out
    assert "triggers:   5 of N = 20 (indices 1,3-5,19)" in text
    assert read_trigger_set(out).indices.tolist() == [1, 3, 4, 5, 19]


def test_pool_family_needs_and_checks_its_pool(tmp_path: Path) -> None:
    pool = make_pool("uint8")
    family = PoolFamily(9, pool.shape[1:], "uint8")
    signed = commit(OWNER, family, ClassLabels(3), pool=pool, size=10)
    (tmp_path / "c.json").write_bytes(signed.to_json())
    write_key_file(tmp_path / "k", OWNER, None, unencrypted=True)
    base = ["derive", str(tmp_path / "c.json"), "--key", str(tmp_path / "k")]
    with pytest.raises(SecmarkError, match="--pool"):
        _run([*base, "--out", str(tmp_path / "a")])
    wrong = pool.copy()
    wrong[0, 0, 0, 0] ^= 1
    np.save(tmp_path / "wrong.npy", wrong)
    with pytest.raises(ProofError):
        _run([*base, "--out", str(tmp_path / "a"), "--pool", str(tmp_path / "wrong.npy")])
    np.save(tmp_path / "pool.npy", pool)
    assert _run([*base, "--out", str(tmp_path / "a"), "--pool", str(tmp_path / "pool.npy")]) == 0
    committed = CommittedPool.open(pool, signed.document)
    verify_trigger_set(read_trigger_set(tmp_path / "a"), signed, pool=committed)
    assert read_trigger_set(tmp_path / "a").inputs[2].tobytes() == (
        derive_trigger(OWNER, signed, 2, pool=committed).input.tobytes()
    )


def test_key_of_another_identity_is_refused(files: dict[str, Path]) -> None:
    other = files["dir"] / "other.key"
    write_key_file(other, fixed_keys("other"), None, unencrypted=True)
    with pytest.raises(KeyMaterialError, match="belongs to"):
        _run(
            [
                "derive",
                str(files["commitment"]),
                "--key",
                str(other),
                "--out",
                str(files["dir"] / "x"),
            ]
        )
    assert not (files["dir"] / "x").exists()


@pytest.mark.parametrize("spec", ["", "a", "3-1", "20", "0-20", "1,,2", "-3", "²"])
def test_bad_index_lists_are_refused(spec: str) -> None:
    with pytest.raises(EncodingError):
        derive_command.parse_indices(spec, 20)


def test_index_lists_merge_overlaps() -> None:
    assert derive_command.parse_indices("5-9,0,7-12,13", 20) == [range(1), range(5, 14)]


def test_existing_output_and_unreadable_commitment(files: dict[str, Path]) -> None:
    (files["dir"] / "exists").mkdir()
    with pytest.raises(SecmarkError, match="already exists"):
        _run(
            [
                "derive",
                str(files["commitment"]),
                "--key",
                str(files["key"]),
                "--out",
                str(files["dir"] / "exists"),
            ]
        )
    with pytest.raises(SecmarkError, match="cannot read"):
        _run(
            [
                "derive",
                str(files["dir"] / "missing.json"),
                "--key",
                str(files["key"]),
                "--out",
                str(files["dir"] / "y"),
            ]
        )
