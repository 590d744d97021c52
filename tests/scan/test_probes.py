"""ScanProbe: an opened deposit is refused unless its arrays are what its
commitment's family and label space derive."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from secmark.errors import EncodingError
from secmark.messages.families import NoiseFamily, TokensFamily, WeightsFamily
from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
from secmark.scan import ProbeSet, ScanPlan, ScanProbe
from secmark.stats import MAX_TRIALS
from tests.scan.conftest import FAMILY, SPACE, noise_probe, weights_probe

INPUTS = np.zeros((4, 1, 8, 8), dtype=np.float32)
LABELS = np.array([0, 1, 2, 9], dtype=np.int64)


def test_a_probe_states_its_test() -> None:
    probe = noise_probe("owner-a", seed=1, count=10)
    assert (len(probe), probe.trials, probe.p0, probe.white_box) == (10, 10, Fraction(1, 10), False)
    assert probe.input_key == ((1, 8, 8), "<f4")
    assert not probe.inputs.flags.writeable and not probe.labels.flags.writeable
    tokens = ScanProbe(
        "lm",
        np.zeros((5, 7), dtype=np.int64),
        np.zeros((5, 3), dtype=np.int64),
        TokenLabels(100, 3),
        TokensFamily(7, 1000),
    )
    assert (tokens.trials, tokens.p0) == (15, Fraction(1, 100))
    with pytest.raises(EncodingError, match="outside what the tokens family"):
        ScanProbe("lm", np.full((5, 7), 1000), tokens.labels, tokens.space, tokens.family)
    assert weights_probe("w", seed=1).white_box


def test_the_arrays_are_copied() -> None:
    inputs, labels = INPUTS.copy(), LABELS.copy()
    probe = ScanProbe("a", inputs, labels, SPACE, FAMILY)
    inputs[0] = 1.0
    labels[0] = 5
    assert probe.inputs[0].max() == 0.0 and probe.labels[0] == 0


def test_either_byte_order_is_taken() -> None:
    probe = ScanProbe("a", INPUTS.astype(">f4"), LABELS.astype(">i8"), SPACE, FAMILY)
    assert probe.inputs.dtype == np.float32 and probe.labels.dtype == np.int64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"deposit_id": ""}, "deposit id"),
        ({"deposit_id": "a\nb"}, "printable"),
        ({"deposit_id": "x" * 129}, "deposit id"),
        ({"inputs": INPUTS.astype(np.float64)}, "array of float32"),
        ({"inputs": INPUTS.reshape(4, 64)}, r"N x \(1, 8, 8\)"),
        ({"inputs": INPUTS.tolist()}, "not list"),
        ({"inputs": INPUTS[:0], "labels": LABELS[:0]}, "1 to 65536 trials"),
        ({"inputs": INPUTS + 2}, "256 input value.s. lie outside what the noise family"),
        ({"inputs": np.full_like(INPUTS, np.nan)}, "outside what the noise family"),
        ({"labels": LABELS[:3]}, "one per input"),
        ({"labels": LABELS.astype(np.float64)}, "integers"),
        ({"labels": np.array([0, 1, 2, 10])}, "outside the classes label space"),
        ({"labels": np.array([0, 1, 2, -1])}, "outside"),
        ({"space": "classes"}, "label space"),
        ({"family": object()}, "trigger families"),
    ],
)
def test_a_probe_that_is_not_what_its_commitment_derives_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {
        "deposit_id": "a",
        "inputs": INPUTS,
        "labels": LABELS,
        "space": SPACE,
        "family": FAMILY,
    }
    with pytest.raises(EncodingError, match=message):
        ScanProbe(**{**fields, **changes})


def test_regression_labels_lie_in_the_range() -> None:
    space = RegressionLabels(0.0, 1.0, 0.01)
    family = NoiseFamily((2,), "float32", 0.0, 1.0)
    inputs = np.zeros((2, 2), dtype=np.float32)
    ScanProbe("r", inputs, np.array([0.0, 1.0]), space, family)
    for bad in ([0.5, np.nan], [0.5, 1.5]):
        with pytest.raises(EncodingError, match="outside the regression"):
            ScanProbe("r", inputs, np.array(bad), space, family)
    with pytest.raises(EncodingError, match="floats"):
        ScanProbe("r", inputs, np.array([0, 1]), space, family)


def test_a_token_probe_is_bounded_by_one_exact_test() -> None:
    space, family = TokenLabels(10, 1024), TokensFamily(2, 10)
    count = MAX_TRIALS // 1024
    ScanProbe(
        "t",
        np.zeros((count, 2), np.int64),
        np.zeros((count, 1024), np.int64),
        space,
        family,
    )
    with pytest.raises(EncodingError, match="trials"):
        ScanProbe(
            "t",
            np.zeros((count + 1, 2), np.int64),
            np.zeros((count + 1, 1024), np.int64),
            space,
            family,
        )


def test_a_weights_probe_has_sign_rows_and_bits() -> None:
    family = WeightsFamily("layer.weight", (3, 4))
    rows = np.array([[1, -1, 1, 1], [-1, -1, 1, -1]], dtype=np.int8)
    bits = np.array([0, 1])
    ScanProbe("w", rows, bits, ClassLabels(2), family)
    with pytest.raises(EncodingError, match="outside what the weights family"):
        ScanProbe("w", rows * 0, bits, ClassLabels(2), family)
    with pytest.raises(EncodingError, match="ClassLabels"):
        ScanProbe("w", rows, bits, ClassLabels(3), family)


def test_a_probe_set_states_its_plan_and_thresholds() -> None:
    probes = [noise_probe("a", 1), noise_probe("b", 2, count=16)]
    probe_set = ProbeSet.build(probes, n_models=5, alpha=2.0**-20)
    assert probe_set.plan == ScanPlan(Fraction(1, 2**20), 5, 2)
    assert probe_set.plan.per_pair_alpha == Fraction(1, 10 * 2**20)
    assert probe_set.thresholds[0] > probe_set.thresholds[1]
    with pytest.raises(EncodingError, match="repeats"):
        ProbeSet.build([probes[0], probes[0]], n_models=1)
    with pytest.raises(EncodingError, match="number of deposits"):
        ProbeSet.build([], n_models=1)
    with pytest.raises(EncodingError, match="plan counts"):
        ProbeSet(ScanPlan(Fraction(1, 2), 1, 3), tuple(probes))
    for alpha in (0.0, 1.0, Fraction(3, 2), True):
        with pytest.raises(EncodingError, match="alpha"):
            ScanPlan(alpha, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match="number of models"):
        ScanPlan(Fraction(1, 2), 0, 1)
