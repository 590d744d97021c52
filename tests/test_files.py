"""Directories written all at once: a reader never sees one half-written,
and a failed run leaves nothing behind to be mistaken for a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from secmark.errors import SecmarkError
from secmark.files import new_directory


def test_a_directory_appears_whole_when_its_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with new_directory(target) as folder:
        (folder / "weights.safetensors").write_bytes(b"w")
        assert not target.exists()  # nothing to see while it is written
    assert sorted(p.name for p in target.iterdir()) == ["weights.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_failure_in_the_block_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), new_directory(target) as folder:
        (folder / "weights.safetensors").write_bytes(b"half")
        raise Interrupted
    assert list(tmp_path.iterdir()) == []
    with new_directory(target) as folder:  # the run can simply be repeated
        (folder / "weights.safetensors").write_bytes(b"w")
    assert (target / "weights.safetensors").read_bytes() == b"w"


def test_an_existing_path_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    with pytest.raises(SecmarkError, match="already exists"), new_directory(target):
        pass
    # Created while the block ran (rename() would replace an empty directory).
    other = tmp_path / "other"
    with pytest.raises(SecmarkError, match="already exists"), new_directory(other) as folder:
        (folder / "file").write_bytes(b"x")
        other.mkdir()
    assert list(other.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "model",
        "other",
    ]
    with pytest.raises(SecmarkError, match="does not exist"), new_directory(tmp_path / "a" / "b"):
        pass
