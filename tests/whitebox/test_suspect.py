"""WeightsSuspect: reading a suspect's weights safely and answering rows with bits."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from secmark.crypto import IdentityKeys
from secmark.errors import SuspectError
from secmark.messages.families import WeightsFamily
from secmark.models import Suspect, WeightsSuspect, reduce_parameter
from tests.whitebox.conftest import FAMILY, Marked, commit, state


def bits_matched(suspect: WeightsSuspect, rows: np.ndarray, bits: np.ndarray) -> float:
    return float(np.mean(suspect.predict(rows) == bits))


def test_the_marked_model_gives_its_bits(marked: Marked) -> None:
    assert marked.bit_accuracy_before < 0.65
    assert marked.bit_accuracy_after >= 0.99
    suspect = WeightsSuspect.from_family(state(marked.marked), FAMILY)
    assert bits_matched(suspect, marked.rows, marked.bits) >= 0.99
    # Embedding costs no more than a few test images (one is 0.28 points).
    assert marked.clean_accuracy_marked >= marked.clean_accuracy_unmarked - 0.02


def test_an_unmarked_model_gives_about_half(marked: Marked) -> None:
    suspect = WeightsSuspect.from_family(state(marked.unmarked), FAMILY)
    # Binomial(256, 1/2): a standard deviation is 8 bits, 3.1 % of them.
    assert 0.40 <= bits_matched(suspect, marked.rows, marked.bits) <= 0.60


def test_a_thiefs_commitment_over_stolen_weights_gives_about_half(
    marked: Marked, thief: IdentityKeys
) -> None:
    """The thief commits, after the theft, to rows over the very parameter
    the owner marked: his bits are drawn by his VRF, not chosen, so the
    stolen weights match them at chance."""
    from secmark.embed import weights_rows

    rows, bits = weights_rows(thief, commit(thief, "thief"))
    suspect = WeightsSuspect.from_family(state(marked.marked), FAMILY)
    assert 0.40 <= bits_matched(suspect, rows, bits) <= 0.60


def test_predict_is_the_sign_of_the_projection(marked: Marked) -> None:
    values = state(marked.marked)[FAMILY.parameter]
    suspect = WeightsSuspect.from_family(state(marked.marked), FAMILY)
    reduced = values.astype(np.float64).mean(axis=0)
    assert np.array_equal(suspect.reduced, reduced)
    assert suspect.predict(marked.rows).tolist() == [
        int(row @ reduced > 0) for row in marked.rows.astype(np.float64)
    ]
    assert suspect.predict(marked.rows).dtype == np.int64
    assert isinstance(suspect, Suspect)


def test_flatten_reduction() -> None:
    weights = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    assert reduce_parameter(weights, "flatten").tolist() == (weights.reshape(-1)).tolist()
    assert reduce_parameter(weights, "mean-out").tolist() == weights.mean(axis=0).tolist()
    suspect = WeightsSuspect({"w": weights}, "w", "flatten")
    assert suspect.projected_size == 12
    assert suspect.predict(np.ones((1, 12), dtype=np.int8)).tolist() == [int(weights.sum() > 0)]


def test_a_safetensors_file_is_read_and_described_by_its_digest(
    model_file: Path, marked: Marked
) -> None:
    suspect = WeightsSuspect.from_family(model_file, FAMILY)
    assert suspect.describe() == "sha256:" + hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert bits_matched(suspect, marked.rows, marked.bits) >= 0.99


def test_a_state_dict_is_described_by_its_safetensors_digest(
    marked: Marked, tmp_path: Path
) -> None:
    values = state(marked.marked)
    save_file(values, tmp_path / "same.safetensors")
    expected = "sha256:" + hashlib.sha256((tmp_path / "same.safetensors").read_bytes()).hexdigest()
    assert WeightsSuspect.from_family(values, FAMILY).describe() == expected


def test_a_weights_only_torch_checkpoint_is_read(marked: Marked, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    buffer = io.BytesIO()
    torch.save(marked.marked.state_dict(), buffer)
    path.write_bytes(buffer.getvalue())
    suspect = WeightsSuspect.from_family(path, FAMILY)
    assert bits_matched(suspect, marked.rows, marked.bits) >= 0.99


def test_bfloat16_weights_are_read_without_torch(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.0, 0.25], [0.5, 3.0, -1.0]], dtype=np.float32)
    # bfloat16 is the top half of float32: these values are exact in it.
    halves = (values.view(np.uint32) >> 16).astype("<u2")
    header = b'{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}'
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + halves.tobytes())
    suspect = WeightsSuspect(path, "w", "mean-out", shape=(2, 3))
    assert suspect.reduced.tolist() == values.astype(np.float64).mean(axis=0).tolist()


def test_a_missing_parameter_is_a_different_architecture(model_file: Path) -> None:
    other = WeightsFamily("encoder.layer.0.weight", (64, 512))
    with pytest.raises(
        SuspectError, match="no parameter 'encoder.layer.0.weight'.*architecture differs"
    ):
        WeightsSuspect.from_family(model_file, other)


def test_another_shape_is_a_different_architecture(model_file: Path) -> None:
    wider = WeightsFamily("classifier.1.weight", (128, 512))
    with pytest.raises(
        SuspectError, match=r"shape \(64, 512\).*\(128, 512\).*architecture differs"
    ):
        WeightsSuspect.from_family(model_file, wider)


def test_rows_of_another_width_are_refused(model_file: Path) -> None:
    suspect = WeightsSuspect.from_family(model_file, FAMILY)
    with pytest.raises(SuspectError, match="rows must have 512 values"):
        suspect.predict(np.ones((2, 256), dtype=np.int8))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full((4, 4), np.nan, dtype=np.float32), "NaN"),
        (np.ones((4, 4), dtype=np.int8), "not floating point"),
    ],
)
def test_unusable_parameters_are_refused(values: np.ndarray, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        WeightsSuspect({"w": values}, "w")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SuspectError, match="no model file"):
        WeightsSuspect(tmp_path / "absent.safetensors", "w")


class _Payload:
    """A pickle that would write a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("container", ["raw pickle", "torch.save archive"])
def test_a_malicious_pickle_is_refused_and_never_run(tmp_path: Path, container: str) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    payload = {"classifier.1.weight": _Payload(marker)}
    if container == "raw pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
    with pytest.raises(
        SuspectError, match="neither a safetensors file nor a weights-only torch checkpoint"
    ):
        WeightsSuspect.from_family(path, FAMILY)
    assert not marker.exists()


def test_a_checkpoint_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "nested.pt"
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2, 2)}}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(SuspectError, match="flat mapping"):
        WeightsSuspect(path, "w")


def test_garbage_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(SuspectError):
        WeightsSuspect(path, "w")
