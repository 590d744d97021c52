"""save_state / load_state: safetensors round trips, weights-only torch files,
and refusals (mismatched models, damaged files, pickled code)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch
from torch import nn

from secmark.embed import load_state, save_state
from secmark.errors import EncodingError, SecmarkError
from secmark.examples.digits import DigitsCNN, new_model


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    path = save_state(new_model(1), tmp_path / "model.safetensors", metadata={"owner": "test"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restored = new_model(2)
    assert not same_weights(new_model(1), restored)
    load_state(path, restored)
    assert same_weights(new_model(1), restored)


def test_an_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    path = save_state(new_model(1), tmp_path / "model.safetensors")
    with pytest.raises(SecmarkError, match="already exists"):
        save_state(new_model(2), path)
    save_state(new_model(2), path, overwrite=True, mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    restored = new_model(3)
    load_state(path, restored)
    assert same_weights(new_model(2), restored)


class Tied(nn.Module):
    """Two layers sharing one weight, and a normalisation with buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.norm = nn.BatchNorm1d(4)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight


def test_tied_weights_and_buffers_are_saved(tmp_path: Path) -> None:
    original = Tied()
    nn.init.normal_(original.first.weight)
    assert original.norm.running_mean is not None
    original.norm.running_mean.fill_(3.0)
    restored = Tied()
    load_state(save_state(original, tmp_path / "tied.safetensors"), restored)
    assert same_weights(original, restored)
    assert restored.second.weight is restored.first.weight


def test_a_weights_only_torch_checkpoint_loads(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(new_model(1).state_dict(), path)
    restored = new_model(2)
    load_state(path, restored)
    assert same_weights(new_model(1), restored)


def test_a_pickled_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.mkdir, (str(marker),)

    path = tmp_path / "hostile.pt"
    state: dict[str, object] = dict(new_model(1).state_dict())
    state["extra"] = Payload()
    torch.save(state, path)
    with pytest.raises(EncodingError, match="weights-only torch checkpoint"):
        load_state(path, new_model(2))
    assert not marker.exists()


def test_a_nested_training_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": new_model(1).state_dict(), "epoch": 3}, path)
    with pytest.raises(EncodingError, match="flat mapping"):
        load_state(path, new_model(2))


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"PK\x03\x04garbage", (40).to_bytes(8, "little") + b"{" + b"x" * 39],
)
def test_damaged_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "damaged"
    path.write_bytes(content)
    with pytest.raises(EncodingError):
        load_state(path, new_model(1))


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SecmarkError, match="no model file"):
        load_state(tmp_path / "absent.safetensors", new_model(1))


def test_missing_and_unexpected_names_are_listed(tmp_path: Path) -> None:
    path = save_state(nn.Sequential(nn.Linear(2, 2)), tmp_path / "other.safetensors")
    with pytest.raises(
        SecmarkError,
        match=r"missing .*features\.0\.bias.* and 3 more; unexpected 0\.bias, 0\.weight",
    ):
        load_state(path, DigitsCNN())


def test_mismatched_shapes_are_listed(tmp_path: Path) -> None:
    path = save_state(nn.Linear(3, 2), tmp_path / "small.safetensors")
    target = nn.Linear(4, 2)
    before = target.weight.clone()
    with pytest.raises(SecmarkError, match=r"weight \(2, 3\) vs \(2, 4\)"):
        load_state(path, target)
    assert torch.equal(target.weight, before)


def test_non_string_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncodingError, match="metadata"):
        save_state(new_model(1), tmp_path / "m.safetensors", metadata={"epochs": 3})  # type: ignore[dict-item]
    assert not (tmp_path / "m.safetensors").exists()
