"""Fixtures of the white-box tests: a weights commitment on the digits CNN's
``classifier.1.weight``, its rows and bits, and two trained models, one
marked with the regulariser and one not (same seed, data and recipe).

Models are trained for a few epochs on one thread (about a second each) and
shared by the whole package; torch is imported inside the fixtures, as in
``tests/embed``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from secmark.crypto import IdentityKeys
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import WeightsFamily
from secmark.messages.labels import ClassLabels
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence
from tests.conftest import fixed_keys

if TYPE_CHECKING:
    from torch import nn

FAMILY = WeightsFamily("classifier.1.weight", (64, 512), "mean-out", "rademacher")
BITS = 256
"""T: rows and bits of the commitment."""
EPOCHS = 10
"""Enough for the regulariser to set every bit and the CNN to learn the digits."""
LAM = 0.1
SEED = 1


def commit(
    keys: IdentityKeys, label: str, family: WeightsFamily = FAMILY, size: int = BITS
) -> SignedDocument[Commitment]:
    return create_commitment(
        keys,
        family=family,
        labels=ClassLabels(2),
        size=size,
        model_label=f"white-box test {label}",
        nonce=hashlib.sha256(f"secmark white-box tests {label}".encode()).digest(),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


@dataclass(frozen=True)
class Marked:
    """The owner's weights commitment, its rows and bits, and the models."""

    keys: IdentityKeys
    signed: SignedDocument[Commitment]
    rows: np.ndarray
    bits: np.ndarray
    marked: Any  # a DigitsCNN trained with the regulariser
    unmarked: Any  # the same recipe without it
    bit_accuracy_before: float
    bit_accuracy_after: float
    clean_accuracy_marked: float
    clean_accuracy_unmarked: float


def state(model: nn.Module) -> dict[str, np.ndarray]:
    """A model's state dict as numpy arrays (a WeightsSuspect source)."""
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: the machine is shared."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def owner() -> IdentityKeys:
    return fixed_keys("white-box owner")


@pytest.fixture(scope="package")
def thief() -> IdentityKeys:
    return fixed_keys("white-box thief")


@pytest.fixture(scope="package")
def marked(owner: IdentityKeys) -> Marked:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from secmark.embed import WeightsRegularizer, embed_weights, evaluate_accuracy, weights_rows
    from secmark.examples import digits

    signed = commit(owner, "owner")
    rows, bits = weights_rows(owner, signed)
    data = digits.load_data()
    model = digits.new_model(SEED)
    report = embed_weights(
        model,
        digits.train_loader(data, seed=SEED),
        WeightsRegularizer(model, FAMILY, rows, bits, LAM),
        epochs=EPOCHS,
        lr=digits.DEFAULT_LR,
        seed=SEED,
        holdout=data.test,
        progress=False,
    )
    unmarked = digits.new_model(SEED)
    digits.train_clean(unmarked, data, seed=SEED, epochs=EPOCHS)
    return Marked(
        owner,
        signed,
        rows,
        bits,
        model,
        unmarked,
        report.bit_accuracy_before,
        report.bit_accuracy_after,
        report.clean_accuracy_after or 0.0,
        evaluate_accuracy(unmarked, data.test),
    )


@dataclass(frozen=True)
class Authority:
    """An in-process timestamp authority and the trust store naming it."""

    respond: Any
    trust: TrustStore

    def evidence(self, subject: str) -> bytes:
        return collect_evidence(subject, [self.respond]).to_json()


@pytest.fixture(scope="package")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    tsa = TimestampAuthority.initialize(
        tmp_path_factory.mktemp("tsa") / "tsa", passphrase=None, allow_unencrypted=True
    )
    return Authority(tsa.respond, TrustStore(roots=(tsa.root_certificate,)))


@pytest.fixture
def model_file(tmp_path: Path, marked: Marked) -> Path:
    """The marked model saved as safetensors, as it is released."""
    from secmark.embed import save_state

    return save_state(marked.marked, tmp_path / "marked.safetensors")
