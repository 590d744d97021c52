"""The white-box regulariser and the training loops that add it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError
from secmark.messages.families import NoiseFamily, WeightsFamily
from secmark.messages.labels import ClassLabels
from tests.whitebox.conftest import FAMILY, LAM, Marked, commit

torch = pytest.importorskip("torch")

from secmark.embed import (
    TriggerDataset,
    WeightsRegularizer,
    embed,
    reduce_tensor,
    train,
    weights_rows,
)
from secmark.examples import digits


def rows_and_bits(count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(0)
    rows = np.where(generator.random((count, 512)) < 0.5, -1, 1).astype(np.int8)
    return rows, generator.integers(0, 2, count)


def test_the_term_is_the_binary_cross_entropy_of_the_projections() -> None:
    model = digits.new_model(3)
    rows, bits = rows_and_bits()
    regularizer = WeightsRegularizer(model, FAMILY, rows, bits, 0.5)
    weights = model.get_parameter(FAMILY.parameter).detach().double()
    logits = torch.from_numpy(rows.astype(np.float64)) @ weights.mean(dim=0)
    expected = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.from_numpy(bits).double()
    )
    term = regularizer()
    assert term.requires_grad
    assert float(term.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert regularizer.predicted_bits().tolist() == (logits > 0).long().tolist()
    assert len(regularizer) == 8 and regularizer.lam == 0.5


def test_reduce_tensor_matches_the_numpy_reduction() -> None:
    from secmark.models import reduce_parameter

    weights = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    for reduction in ("mean-out", "flatten"):
        assert np.allclose(
            reduce_tensor(weights, reduction).numpy(), reduce_parameter(weights.numpy(), reduction)
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"family": WeightsFamily("classifier.9.weight", (64, 512))}, "no parameter"),
        ({"family": WeightsFamily("classifier.1.weight", (32, 512))}, "shape"),
        ({"rows": np.ones((8, 256), dtype=np.int8)}, "rows must be"),
        ({"rows": np.zeros((8, 512), dtype=np.int8)}, r"\+1 and -1"),
        ({"bits": np.full(8, 2)}, "bits must be"),
        ({"bits": np.zeros(7, dtype=np.int64)}, "bits must be"),
        ({"lam": 0.0}, "lam"),
        ({"lam": float("nan")}, "lam"),
    ],
)
def test_a_regulariser_that_cannot_apply_is_refused(change: dict[str, Any], message: str) -> None:
    rows, bits = rows_and_bits()
    arguments: dict[str, Any] = {"family": FAMILY, "rows": rows, "bits": bits, "lam": LAM}
    arguments.update(change)
    with pytest.raises(EncodingError, match=message):
        WeightsRegularizer(digits.new_model(1), **arguments)


def test_rows_come_only_from_a_weights_commitment(owner: IdentityKeys) -> None:
    from secmark.messages.commitment import create_commitment

    noise = create_commitment(
        owner,
        family=NoiseFamily((4,), "uint8", 0, 255),
        labels=ClassLabels(2),
        size=4,
        model_label="m",
    )
    with pytest.raises(EncodingError, match="no weight rows"):
        weights_rows(owner, noise)
    rows, bits = weights_rows(owner, commit(owner, "rows", size=16))
    assert rows.shape == (16, 512) and rows.dtype == np.int8 and bits.shape == (16,)


class Counting:
    """A regulariser that counts its calls and adds nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return torch.zeros(())


def test_train_and_embed_add_the_regulariser_at_every_step() -> None:
    data = digits.load_data()
    loader = digits.train_loader(data, seed=0)
    steps = len(list(loader))
    counting = Counting()
    train(
        digits.new_model(0), loader, epochs=1, lr=1e-3, seed=0, progress=False, regularizer=counting
    )
    assert counting.calls == steps
    counting = Counting()
    triggers = TriggerDataset(np.zeros((4, 1, 8, 8), dtype=np.float32), np.zeros(4, dtype=np.int64))
    embed(
        digits.new_model(0),
        loader,
        triggers,
        epochs=1,
        lr=1e-3,
        seed=0,
        progress=False,
        regularizer=counting,
    )
    assert counting.calls == steps


def test_embedding_reports_bit_and_clean_accuracy(marked: Marked) -> None:
    assert marked.bit_accuracy_after >= 0.99
    assert 0.9 <= marked.clean_accuracy_marked <= 1.0


def test_embed_weights_refuses_a_regulariser_of_another_model() -> None:
    from secmark.embed import embed_weights

    rows, bits = rows_and_bits()
    regularizer = WeightsRegularizer(digits.new_model(1), FAMILY, rows, bits, LAM)
    with pytest.raises(EncodingError, match="another model"):
        embed_weights(digits.new_model(2), [], regularizer, epochs=1, lr=1e-3, seed=0)
