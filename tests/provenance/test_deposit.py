"""The arbiter hashes a deposited release the way it was registered: a
folder release by its model-signing digest, a file release by its SHA-256,
and refuses a deposit of the other kind (specs/dispute.md 8.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secmark.errors import ProtocolError
from secmark.messages.release import MODEL_SIGNING_FILES_SHA256, SHA256_FILE, model_file_digest
from secmark.protocol.arbiter import _deposited_digest
from secmark.provenance import model_folder_digest
from tests.provenance.conftest import write_model_folder

CLAIM = "ab" * 32


def test_a_folder_deposit_is_hashed_as_its_folder_release(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "model")
    registered = model_folder_digest(folder)
    assert _deposited_digest(folder, MODEL_SIGNING_FILES_SHA256, CLAIM) == registered
    shard = next(path for path in sorted(folder.iterdir()) if path.suffix == ".safetensors")
    shard.write_bytes(shard.read_bytes() + b"\0")
    assert _deposited_digest(folder, MODEL_SIGNING_FILES_SHA256, CLAIM) != registered


def test_a_file_deposit_is_hashed_as_its_file_release(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "model")
    shard = next(path for path in sorted(folder.iterdir()) if path.suffix == ".safetensors")
    assert _deposited_digest(shard, SHA256_FILE, CLAIM) == model_file_digest(shard)


def test_a_deposit_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "model")
    shard = next(path for path in sorted(folder.iterdir()) if path.suffix == ".safetensors")
    with pytest.raises(ProtocolError, match="registers a model folder"):
        _deposited_digest(shard, MODEL_SIGNING_FILES_SHA256, CLAIM)
    with pytest.raises(ProtocolError, match="registers a model file"):
        _deposited_digest(folder, SHA256_FILE, CLAIM)
