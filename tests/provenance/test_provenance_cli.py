"""``secmark release --model-dir [--sigstore-bundle]`` and ``secmark attest``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from tests.provenance.conftest import (
    sign_folder,
    signed_subject,
    write_key_pair,
    write_model_folder,
)

FAMILY = '{"name":"noise","shape":[1,8,8],"dtype":"float32","low":0,"high":1}'


def run(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> dict[str, object]:
    found = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert found == status, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


@pytest.fixture
def owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    run(capsys, "keygen", "Owner", "--out-dir", str(tmp_path / "keys"), "--unencrypted")
    run(
        capsys,
        "commit",
        "--key",
        str(tmp_path / "keys/Owner.key"),
        "--classes",
        "10",
        "--size",
        "64",
        "--family",
        FAMILY,
        "--out",
        str(tmp_path / "commitment.json"),
    )
    return tmp_path


def _release(
    capsys: pytest.CaptureFixture[str], base: Path, *extra: str, status: int = 0
) -> dict[str, object]:
    return run(
        capsys,
        "release",
        "--key",
        str(base / "keys/Owner.key"),
        "--commitment",
        str(base / "commitment.json"),
        "--name",
        "tiny-model",
        "--version",
        "1.0",
        "--out",
        str(base / "release.json"),
        *extra,
        status=status,
    )


def _signed_folder(owner: Path) -> Path:
    """A model folder with a model-signing signature ``model.sig`` inside it,
    by the key pair ``signer.pem`` / ``signer.pub`` in ``owner``."""
    folder = write_model_folder(owner / "tiny-model")
    private, _ = write_key_pair(owner, "signer")
    sign_folder(folder, private, folder / "model.sig")
    return folder


def _signed_release_flags(folder: Path) -> tuple[str, ...]:
    return (
        "--model-dir",
        str(folder),
        "--sigstore-bundle",
        str(folder / "model.sig"),
        "--sigstore-public-key",
        str(folder.parent / "signer.pub"),
    )


def test_a_signed_folder_is_registered_and_attested(
    owner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _signed_folder(owner)
    summary = _release(capsys, owner, *_signed_release_flags(folder))
    assert summary["model_digest"] == signed_subject(folder / "model.sig")
    assert summary["model_digest_algorithm"] == "model-signing-files-sha256"
    statement = owner / "release.statement.json"
    run(
        capsys,
        "attest",
        "export",
        str(owner / "release.json"),
        "--key",
        str(owner / "keys/Owner.key"),
        "--out",
        str(statement),
    )
    verified = run(
        capsys,
        "attest",
        "verify",
        str(statement),
        "--identity",
        str(owner / "keys/Owner.identity.json"),
    )
    assert verified["subject_sha256"] == summary["model_digest"]
    assert verified["document_id"] == summary["release_id"]


def test_a_tampered_folder_is_refused_and_nothing_written(
    owner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _signed_folder(owner)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"swapped weights")
    failure = _release(capsys, owner, *_signed_release_flags(folder), status=4)
    assert failure["error"] == "SignatureError"
    assert not (owner / "release.json").exists()


def test_a_folder_without_a_signature_and_a_file_both_register(
    owner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_model_folder(owner / "tiny-model")
    summary = _release(capsys, owner, "--model-dir", str(folder))
    assert summary["model_digest_algorithm"] == "model-signing-files-sha256"
    (owner / "release.json").unlink()
    summary = _release(
        capsys, owner, "--model-file", str(folder / "model-00001-of-00002.safetensors")
    )
    assert summary["model_digest_algorithm"] == "sha256-file"


def test_a_statement_by_another_identity_is_refused(
    owner: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "keygen", "Other", "--out-dir", str(owner / "keys"), "--unencrypted")
    statement = owner / "commitment.statement.json"
    run(
        capsys,
        "attest",
        "export",
        str(owner / "commitment.json"),
        "--key",
        str(owner / "keys/Owner.key"),
        "--out",
        str(statement),
    )
    failure = run(
        capsys,
        "attest",
        "verify",
        str(statement),
        "--identity",
        str(owner / "keys/Other.identity.json"),
        status=4,
    )
    assert failure["error"] == "SignatureError"
