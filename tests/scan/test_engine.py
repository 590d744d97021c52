"""The scan engine on real digits CNNs: hits, batching, white-box probes, failures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from secmark.errors import EncodingError, SuspectError
from secmark.examples.digits import DigitsCNN
from secmark.messages.families import NoiseFamily, TokensFamily
from secmark.messages.labels import RegressionLabels, TokenLabels
from secmark.models import Suspect
from secmark.scan import HostedModel, PairResult, ProbeSet, ScanPlan, ScanProbe, scan_model
from secmark.stats import DEFAULT_ALPHA, decision_threshold, log2_binomial_tail
from tests.scan.conftest import (
    SPACE,
    TRIGGERS,
    Hosted,
    RecordingSuspect,
    noise_probe,
    oracle,
    weights_probe,
)


def probe_set(*probes: ScanProbe, n_models: int = 1) -> ProbeSet:
    return ProbeSet.build(probes, n_models=n_models)


def by_deposit(results: list[PairResult]) -> dict[str, PairResult]:
    return {result.deposit_id: result for result in results}


def torch_model(model_id: str, weights: Path) -> HostedModel:
    return HostedModel(model_id, weights=weights, factory=DigitsCNN)


def assert_failed(result: PairResult, text: str) -> None:
    assert result.error is not None and text in result.error
    assert (result.matches, result.failures, result.log2_p_value, result.hit) == (
        None,
        None,
        None,
        False,
    )
    assert not result.counted


def test_marked_model_hits_its_own_deposit_only(hosted: Hosted) -> None:
    probes = probe_set(hosted.deposit_a, hosted.deposit_b, n_models=2)
    results = by_deposit(scan_model(torch_model("marked", hosted.marked), probes))
    own, other = results["owner-a"], results["owner-b"]
    assert own.hit and own.error is None and own.matches is not None
    assert own.matches >= own.threshold
    assert own.log2_p_value == log2_binomial_tail(TRIGGERS, own.matches, Fraction(1, 10))
    assert not other.hit and other.error is None
    assert other.matches is not None and other.matches < TRIGGERS // 4
    # Bonferroni over 2 models x 2 deposits, decided exactly.
    assert own.plan == ScanPlan(DEFAULT_ALPHA, 2, 2)
    assert own.plan.per_pair_alpha == DEFAULT_ALPHA / 4
    assert own.threshold == decision_threshold(TRIGGERS, Fraction(1, 10), DEFAULT_ALPHA / 4)


def test_unmarked_model_hits_nothing(hosted: Hosted) -> None:
    probes = probe_set(hosted.deposit_a, hosted.deposit_b)
    for result in scan_model(torch_model("clean", hosted.clean), probes):
        assert result.counted and not result.hit
        assert result.log2_p_value is not None and result.log2_p_value > -20


def test_one_pass_per_input_shape_in_slices_of_the_batch_size(hosted: Hosted) -> None:
    inner = torch_model("marked", hosted.marked).open_suspect()
    wrapper = RecordingSuspect(inner.predict)
    uint8 = NoiseFamily((1, 8, 8), "uint8", 0, 1)
    rng = np.random.default_rng(5)
    uint8_probe = ScanProbe(
        "owner-u",
        rng.integers(0, 2, size=(40, 1, 8, 8), dtype=np.uint8),
        rng.integers(0, 10, size=40, dtype=np.int64),
        SPACE,
        uint8,
    )
    probes = probe_set(
        hosted.deposit_a,
        hosted.deposit_b,
        uint8_probe,
        noise_probe("owner-c", seed=13),
        weights_probe("owner-w", seed=14),
    )
    results = by_deposit(
        scan_model(HostedModel("marked", weights=hosted.marked, suspect=wrapper), probes)
    )
    assert wrapper.calls == [((192, 1, 8, 8), "<f4"), ((40, 1, 8, 8), "|u1")]
    assert [d for d, r in results.items() if r.hit] == ["owner-a"]
    assert all(r.counted for r in results.values())

    wrapper.calls.clear()
    sliced = by_deposit(
        scan_model(
            HostedModel("marked", weights=hosted.marked, suspect=wrapper), probes, batch_size=100
        )
    )
    assert [shape[0] for shape, _ in wrapper.calls] == [100, 92, 40]
    assert sliced == results


def test_white_box_probes_read_the_safetensors_file(hosted: Hosted) -> None:
    marked_rows = weights_probe("owner-w", seed=21, weights=hosted.marked)
    other_rows = weights_probe("owner-x", seed=22)
    probes = probe_set(marked_rows, other_rows, hosted.deposit_a)
    results = by_deposit(scan_model(HostedModel("weights only", weights=hosted.marked), probes))
    assert results["owner-w"].hit and results["owner-w"].matches == 128
    assert results["owner-x"].counted and not results["owner-x"].hit
    # Without an architecture the black-box deposit cannot be checked.
    assert_failed(results["owner-a"], "weights file only")

    clean = by_deposit(scan_model(torch_model("clean", hosted.clean), probes))
    assert not any(result.hit for result in clean.values())
    assert all(result.counted for result in clean.values())


def failing_factory() -> DigitsCNN:
    raise RuntimeError("no such architecture")


def test_a_model_that_cannot_be_opened_gives_errors_and_no_hit(
    hosted: Hosted, tmp_path: Path
) -> None:
    probes = probe_set(hosted.deposit_a, weights_probe("owner-w", seed=21, weights=hosted.marked))
    missing = scan_model(torch_model("missing", tmp_path / "none.safetensors"), probes)
    assert_failed(missing[0], "cannot open the model")
    assert_failed(missing[1], "cannot read the model's weights")

    raising = HostedModel("raising", weights=hosted.marked, factory=failing_factory)
    assert_failed(scan_model(raising, probes)[0], "RuntimeError: no such architecture")

    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not a model")
    for result in scan_model(torch_model("other", other), probes):
        assert_failed(result, "cannot")


def raise_suspect_error(batch: np.ndarray) -> np.ndarray:
    raise SuspectError("endpoint unreachable")


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        (raise_suspect_error, "endpoint unreachable"),
        (lambda batch: np.zeros(len(batch) - 1, dtype=np.int64), "answers, one per input"),
        (lambda batch: np.zeros(len(batch), dtype=np.float64), "not integers"),
        (lambda batch: np.full(len(batch), 10, dtype=np.int64), "no classes label"),
    ],
    ids=["raises", "too few answers", "floats for classes", "outside the classes"],
)
def test_a_model_that_answers_badly_gives_errors_and_no_hit(answer: object, text: str) -> None:
    suspect = RecordingSuspect(answer)  # type: ignore[arg-type]
    results = scan_model(HostedModel("bad", suspect=suspect), probe_set(noise_probe("a", 11)))
    assert_failed(results[0], text)


def test_a_few_answers_outside_the_space_count_as_misses() -> None:
    probe = noise_probe("owner-a", seed=11)
    good = oracle(probe)

    def answer(batch: np.ndarray) -> np.ndarray:
        answers = good.predict(batch)
        answers[:8] = -1  # the arbiter's budget: 8 failures of 64 queries
        return answers

    (result,) = scan_model(HostedModel("m", suspect=RecordingSuspect(answer)), probe_set(probe))
    assert (result.matches, result.failures, result.hit) == (56, 8, True)


def test_token_and_regression_answers_are_counted_as_the_arbiter_counts() -> None:
    rng = np.random.default_rng(3)
    tokens = ScanProbe(
        "tokens",
        rng.integers(0, 100, size=(20, 6), dtype=np.int64),
        rng.integers(0, 50, size=(20, 3), dtype=np.int64),
        TokenLabels(50, 3),
        TokensFamily(6, 100),
    )
    answered = np.array(tokens.labels)
    answered[0, 0] = (answered[0, 0] + 1) % 50  # one token of 60 wrong
    token_result = scan_model(
        HostedModel("lm", suspect=RecordingSuspect(lambda batch: answered)), probe_set(tokens)
    )[0]
    assert (token_result.trials, token_result.matches, token_result.hit) == (60, 59, True)

    space = RegressionLabels(0.0, 1.0, 0.01)
    targets = rng.random(30)
    values = ScanProbe(
        "values",
        rng.random((30, 4), dtype=np.float32),
        targets,
        space,
        NoiseFamily((4,), "float32", 0.0, 1.0),
    )
    near = targets + np.where(np.arange(30) < 25, 0.005, 0.02)  # 25 within the tolerance
    value_result = scan_model(
        HostedModel("regressor", suspect=RecordingSuspect(lambda batch: near)), probe_set(values)
    )[0]
    assert value_result.matches == 25 and value_result.hit


def test_hosted_models_are_checked() -> None:
    suspect: Suspect = oracle()
    with pytest.raises(EncodingError, match="needs a weights file"):
        HostedModel("m", factory=DigitsCNN)
    with pytest.raises(EncodingError, match="not both"):
        HostedModel("m", weights="w.safetensors", factory=DigitsCNN, suspect=suspect)
    with pytest.raises(EncodingError, match="give a weights file, a suspect"):
        HostedModel("m")
    with pytest.raises(EncodingError, match="model id"):
        HostedModel("", suspect=suspect)
    with pytest.raises(EncodingError, match="output"):
        HostedModel("m", suspect=suspect, output="logits")  # type: ignore[arg-type]
    assert HostedModel("m", weights="w.safetensors").weights == Path("w.safetensors")
    with pytest.raises(EncodingError, match="batch_size"):
        scan_model(HostedModel("m", suspect=suspect), probe_set(noise_probe("a", 1)), batch_size=0)
