"""Trigger-set files: atomic writing, digest-checked reading, full re-verification."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.encoding import canonical_json
from secmark.errors import EncodingError, ProofError, SecmarkError
from secmark.messages.families import NoiseFamily, TokensFamily
from secmark.messages.labels import ClassLabels, RegressionLabels
from secmark.triggers import (
    CommittedPool,
    TriggerBatch,
    derive_trigger,
    iter_triggers,
    read_trigger_set,
    verify_trigger_set,
    write_trigger_set,
)
from tests.conftest import fixed_keys, flip_byte
from tests.triggers.conftest import CASES, commit, make_pool

OWNER = fixed_keys("owner")


def _rewrite(directory: Path, name: str, array: np.ndarray) -> None:
    """Replace one array and fix its digest in the manifest, as a forger would."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    (directory / name).write_bytes(buffer.getvalue())
    manifest = json.loads((directory / "manifest.json").read_bytes())
    manifest["files"][name] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / "manifest.json").write_bytes(canonical_json(manifest))


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_round_trip_for_every_family(tmp_path: Path, name: str) -> None:
    _, family, labels, pool_dtype = next(case for case in CASES if case[0] == name)
    pool = make_pool(pool_dtype) if pool_dtype else None
    signed = commit(OWNER, family, labels, pool=pool)
    committed = CommittedPool.open(pool, signed.document) if pool is not None else None
    indices = [4, 0, 9, 33, 1]
    manifest = write_trigger_set(
        tmp_path / "set",
        signed,
        iter_triggers(OWNER, signed, indices, pool=committed, batch_size=2),
        5,
    )
    loaded = read_trigger_set(tmp_path / "set")
    assert loaded.manifest == manifest and len(loaded) == 5
    assert loaded.indices.tolist() == indices
    verify_trigger_set(loaded, signed, pool=committed)
    for row, index in enumerate(indices):
        trigger = derive_trigger(OWNER, signed, index, pool=committed)
        assert loaded.inputs[row].tobytes() == trigger.input.tobytes()
        assert loaded.proofs[row].tobytes() == trigger.proof
    assert sorted(os.listdir(tmp_path)) == ["set"]
    assert stat.S_IMODE(os.stat(tmp_path / "set").st_mode) == 0o700
    for entry in (tmp_path / "set").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Any]:
    signed = commit(
        OWNER, NoiseFamily((2, 3), "float32", 0.0, 1.0), RegressionLabels(-1.0, 1.0, 0.1)
    )
    write_trigger_set(tmp_path / "set", signed, iter_triggers(OWNER, signed, range(6)), 6)
    return tmp_path / "set", signed


def test_attack_changed_label_is_detected(written: tuple[Path, Any]) -> None:
    directory, signed = written
    labels = read_trigger_set(directory).labels.copy()
    labels[3] = 0.5
    _rewrite(directory, "labels.npy", labels)
    with pytest.raises(ProofError, match="trigger 3: the stored label"):
        verify_trigger_set(read_trigger_set(directory), signed)


def test_attack_changed_input_is_detected(written: tuple[Path, Any]) -> None:
    directory, signed = written
    inputs = read_trigger_set(directory).inputs.copy()
    inputs[5, 1, 2] = np.nextafter(inputs[5, 1, 2], np.float32(2))
    _rewrite(directory, "inputs.npy", inputs)
    with pytest.raises(ProofError, match="trigger 5: the stored input"):
        verify_trigger_set(read_trigger_set(directory), signed)


def test_attack_proof_moved_to_another_index_is_detected(written: tuple[Path, Any]) -> None:
    directory, signed = written
    indices = read_trigger_set(directory).indices.copy()
    indices[[0, 1]] = indices[[1, 0]]
    _rewrite(directory, "indices.npy", indices)
    with pytest.raises(ProofError, match="trigger 1"):
        verify_trigger_set(read_trigger_set(directory), signed)


def test_set_of_another_commitment_is_refused(written: tuple[Path, Any]) -> None:
    directory, signed = written
    other = commit(OWNER, signed.document.family, signed.document.labels, nonce=b"\x02" * 32)
    with pytest.raises(ProofError, match="another|not"):
        verify_trigger_set(read_trigger_set(directory), other)


def test_file_that_differs_from_its_digest_is_refused(written: tuple[Path, Any]) -> None:
    directory, _ = written
    data = (directory / "proofs.npy").read_bytes()
    (directory / "proofs.npy").write_bytes(flip_byte(data, len(data) - 1))
    with pytest.raises(EncodingError, match="digest"):
        read_trigger_set(directory)


def test_pickled_array_is_refused_even_with_a_matching_digest(written: tuple[Path, Any]) -> None:
    directory, _ = written
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (directory / "labels.npy").write_bytes(buffer.getvalue())
    manifest = json.loads((directory / "manifest.json").read_bytes())
    manifest["files"]["labels.npy"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(EncodingError, match="not a plain .npy"):
        read_trigger_set(directory)


def test_array_of_the_wrong_shape_is_refused(written: tuple[Path, Any]) -> None:
    directory, _ = written
    _rewrite(directory, "proofs.npy", np.zeros((6, 79), dtype=np.uint8))
    with pytest.raises(EncodingError, match="proofs.npy"):
        read_trigger_set(directory)


def test_repeated_indices_are_refused(written: tuple[Path, Any]) -> None:
    directory, _ = written
    _rewrite(directory, "indices.npy", np.array([0, 1, 2, 3, 4, 4], dtype=np.int64))
    with pytest.raises(EncodingError, match="distinct"):
        read_trigger_set(directory)


def test_manifest_must_be_canonical_and_complete(written: tuple[Path, Any]) -> None:
    directory, _ = written
    manifest = json.loads((directory / "manifest.json").read_bytes())
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with pytest.raises(EncodingError):
        read_trigger_set(directory)
    del manifest["files"]["inputs.npy"]
    (directory / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(EncodingError):
        read_trigger_set(directory)
    os.remove(directory / "manifest.json")
    with pytest.raises(EncodingError):
        read_trigger_set(directory)


def test_nothing_is_left_behind_when_writing_fails(tmp_path: Path) -> None:
    signed = commit(OWNER, TokensFamily(5, 100), ClassLabels(4))

    def failing() -> Iterator[TriggerBatch]:
        yield from iter_triggers(OWNER, signed, range(4))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_trigger_set(tmp_path / "set", signed, failing(), 8)
    assert os.listdir(tmp_path) == []
    with pytest.raises(EncodingError, match="4 triggers, not 8"):
        write_trigger_set(tmp_path / "set", signed, iter_triggers(OWNER, signed, range(4)), 8)
    with pytest.raises(EncodingError, match="more than"):
        write_trigger_set(tmp_path / "set", signed, iter_triggers(OWNER, signed, range(4)), 2)
    with pytest.raises(EncodingError, match="twice"):
        write_trigger_set(tmp_path / "set", signed, iter_triggers(OWNER, signed, [1, 2, 1]), 3)
    assert os.listdir(tmp_path) == []


def test_existing_directory_is_not_replaced(tmp_path: Path) -> None:
    signed = commit(OWNER, TokensFamily(5, 100), ClassLabels(4))
    (tmp_path / "set").mkdir()
    with pytest.raises(SecmarkError, match="already exists"):
        write_trigger_set(tmp_path / "set", signed, iter_triggers(OWNER, signed, range(1)), 1)
    with pytest.raises(SecmarkError, match="does not exist"):
        write_trigger_set(
            tmp_path / "missing" / "set", signed, iter_triggers(OWNER, signed, range(1)), 1
        )
    assert os.listdir(tmp_path) == ["set"]
