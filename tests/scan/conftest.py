"""Fixtures of the platform-scan tests: deposits on the digits CNN and two
hosted models, one marked with deposit ``owner-a`` and one trained clean.

The models are trained once per test run, for a few epochs on one thread
(about a second each), and saved as safetensors: a scan opens them from
their files as a platform would. torch is imported inside the
fixtures, so the tests that need no model run without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.messages.families import NoiseFamily, WeightsFamily
from secmark.messages.labels import ClassLabels
from secmark.models import reduce_parameter
from secmark.models.base import check_batch
from secmark.protocol.querying import input_digest
from secmark.scan import ScanProbe

FAMILY = NoiseFamily((1, 8, 8), "float32", 0.0, 1.0)
"""The digits CNN's trigger family: noise in the images' range."""
SPACE = ClassLabels(10)
TRIGGERS = 64
"""Triggers per deposit: 64 of 64 matches at p0 = 1/10 is a tail of 2^-212."""
WEIGHTS_FAMILY = WeightsFamily("classifier.1.weight", (64, 512))
ROWS = 128


def noise_probe(deposit_id: str, seed: int, count: int = TRIGGERS) -> ScanProbe:
    """A deposit of ``count`` noise triggers with uniform labels, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    inputs = rng.random((count, *FAMILY.shape), dtype=np.float32)
    labels = rng.integers(0, SPACE.num_classes, size=count, dtype=np.int64)
    return ScanProbe(deposit_id, inputs, labels, SPACE, FAMILY)


def weights_probe(deposit_id: str, seed: int, weights: Path | None = None) -> ScanProbe:
    """A white-box deposit of ROWS rows: its bits are those of ``weights``
    (a marked model's) when given, else uniform (a deposit nobody embedded)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.array([-1, 1], dtype=np.int8), size=(ROWS, 512))
    if weights is None:
        bits = rng.integers(0, 2, size=ROWS, dtype=np.int64)
    else:
        import safetensors.numpy

        values = safetensors.numpy.load_file(str(weights))[WEIGHTS_FAMILY.parameter]
        reduced = reduce_parameter(values, WEIGHTS_FAMILY.reduction)
        bits = (rows.astype(np.float64) @ reduced > 0).astype(np.int64)
    return ScanProbe(deposit_id, rows, bits, ClassLabels(2), WEIGHTS_FAMILY)


class RecordingSuspect:
    """A suspect answering with ``answer(batch)``, recording each batch's shape and dtype."""

    def __init__(self, answer: Callable[[np.ndarray], Any]) -> None:
        self._answer = answer
        self.calls: list[tuple[tuple[int, ...], str]] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch)
        self.calls.append((batch.shape, batch.dtype.str))
        return np.asarray(self._answer(batch))

    def describe(self) -> str:
        return "label:recording suspect"


def oracle(*probes: ScanProbe, otherwise: int = 0) -> RecordingSuspect:
    """A suspect that knows the probes' labels (a marked model without the
    training): it answers each trigger with its label, anything else with
    ``otherwise``."""
    known = {
        input_digest(value): label
        for probe in probes
        for value, label in zip(probe.inputs, probe.labels)
    }
    return RecordingSuspect(
        lambda batch: np.array(
            [known.get(input_digest(row), otherwise) for row in batch], dtype=np.int64
        )
    )


@dataclass(frozen=True)
class Hosted:
    """Two digits CNNs saved as safetensors, and the deposits around them."""

    marked: Path
    clean: Path
    deposit_a: ScanProbe
    """The deposit embedded in the marked model."""
    deposit_b: ScanProbe
    """A deposit nobody embedded."""


def train_and_save(folder: Path, deposit: ScanProbe) -> None:
    """The marked and the clean model of :class:`Hosted`, saved in ``folder``."""
    from secmark.embed import save_state
    from secmark.examples import digits

    data = digits.load_data()
    marked = digits.new_model(seed=1)
    triggers = digits.trigger_set(np.array(deposit.inputs), np.array(deposit.labels))
    digits.embed_watermark(marked, data, triggers, seed=1, epochs=10)
    clean = digits.new_model(seed=2)
    digits.train_clean(clean, data, seed=2, epochs=5)
    save_state(clean, folder / "clean.safetensors")
    save_state(marked, folder / "marked.safetensors")


@pytest.fixture(scope="session")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Hosted:
    """Trained once per run: the pytest-xdist workers share the files of the
    first one to get here (their base folders share a parent of this run's)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from filelock import FileLock

    deposit_a, deposit_b = noise_probe("owner-a", seed=11), noise_probe("owner-b", seed=12)
    base = tmp_path_factory.getbasetemp()
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with FileLock(folder / "scan-models.lock"):
        if not (folder / "marked.safetensors").exists():
            train_and_save(folder, deposit_a)
    return Hosted(
        marked=folder / "marked.safetensors",
        clean=folder / "clean.safetensors",
        deposit_a=deposit_a,
        deposit_b=deposit_b,
    )
