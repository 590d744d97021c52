"""A release's folder digest is model-signing's subject digest, byte for byte."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from secmark.errors import SecmarkError
from secmark.messages.release import MODEL_SIGNING_FILES_SHA256, SHA256_FILE, Release
from secmark.provenance import model_folder_digest, model_signing_digest
from tests.provenance.conftest import (
    sign_folder,
    signed_subject,
    write_key_pair,
    write_model_folder,
)

_T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_folder_digest_is_the_subject_of_a_model_signing_signature(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    private, _ = write_key_pair(tmp_path, "signer")
    sign_folder(folder, private, tmp_path / "model.sig")
    assert model_folder_digest(folder) == signed_subject(tmp_path / "model.sig")


def test_a_signature_inside_the_folder_is_left_out_as_model_signing_leaves_it(
    tmp_path: Path,
) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    before = model_folder_digest(folder)
    private, _ = write_key_pair(tmp_path, "signer")
    sign_folder(folder, private, folder / "model.sig")
    assert model_folder_digest(folder, ignore=[folder / "model.sig"]) == before
    assert signed_subject(folder / "model.sig") == before
    assert model_folder_digest(folder) != before


def test_git_files_are_left_out_and_every_model_file_counts(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    digest = model_folder_digest(folder)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    (folder / ".gitignore").write_text("*.tmp\n")
    assert model_folder_digest(folder) == digest
    (folder / "tokenizer_config.json").write_text('{"pad": 0}')
    assert model_folder_digest(folder) != digest


def test_a_symbolic_link_is_refused_as_model_signing_refuses_it(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    (folder / "alias.json").symlink_to(folder / "config.json")
    with pytest.raises(SecmarkError, match="symlink"):
        model_folder_digest(folder)


def test_a_file_or_an_empty_folder_is_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SecmarkError, match="no file"):
        model_folder_digest(tmp_path / "empty")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(SecmarkError, match="not a directory"):
        model_folder_digest(tmp_path / "file")


def test_a_file_release_names_its_model_as_model_signing_hashes_one_file(
    tmp_path: Path,
) -> None:
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights" * 1000)
    release = Release("ab" * 32, hashlib.sha256(path.read_bytes()).hexdigest(), "m", "1", _T)
    assert release.model_digest_algorithm == SHA256_FILE
    statement = Payload(hashing.hash(path)).statement
    assert model_signing_digest(release) == statement.pb.subject[0].digest["sha256"]
    folder_release = Release("ab" * 32, "cd" * 32, "m", "1", _T, MODEL_SIGNING_FILES_SHA256)
    assert model_signing_digest(folder_release) == "cd" * 32
