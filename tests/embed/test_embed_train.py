"""embed and train on the digits example: effect, reproducibility, contracts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from torch import nn

from secmark.embed import (
    EmbedReport,
    TriggerDataset,
    embed,
    evaluate_accuracy,
    predict_labels,
    train,
    watermark_accuracy,
)
from secmark.errors import EncodingError, SecmarkError
from secmark.examples import digits
from secmark.examples.digits import DigitsData


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_fine_tuning_embeds_64_triggers_without_hurting_clean_accuracy(
    digits_data: DigitsData,
) -> None:
    model = digits.new_model(seed=11)
    digits.train_clean(model, digits_data, seed=11, epochs=20)
    triggers = digits.noise_triggers(64, seed=12)
    report = embed(
        model,
        digits.train_loader(digits_data, seed=13),
        triggers,
        epochs=20,
        lr=1e-3,
        seed=13,
        holdout=digits_data.test,
        progress=False,
    )
    assert isinstance(report, EmbedReport)
    assert report.clean_accuracy_before is not None and report.clean_accuracy_before > 0.95
    assert report.watermark_accuracy_before < 0.3
    assert report.watermark_accuracy_after >= 0.95
    assert report.clean_accuracy_drop is not None and report.clean_accuracy_drop <= 0.03
    assert (report.triggers, report.per_batch, report.epochs, report.device) == (64, 8, 20, "cpu")
    assert report.seconds > 0
    assert report.watermark_accuracy_after == watermark_accuracy(model, triggers)
    assert not model.training


def test_an_unmarked_model_matches_the_secret_labels_near_chance(digits_data: DigitsData) -> None:
    model = digits.new_model(seed=21)
    digits.train_clean(model, digits_data, seed=21, epochs=5)
    assert watermark_accuracy(model, digits.noise_triggers(256, seed=22)) < 0.3


def test_the_same_seed_gives_the_same_weights(digits_data: DigitsData) -> None:
    triggers = digits.noise_triggers(32, seed=1)

    def run(seed: int) -> dict[str, torch.Tensor]:
        model = digits.new_model(seed=2)
        digits.embed_watermark(model, digits_data, triggers, seed=seed, epochs=2)
        return weights(model)

    first = run(3)
    assert same_weights(first, run(3))
    assert not same_weights(first, run(4))


def test_a_loader_shuffling_with_the_global_generator_is_reproducible(
    digits_data: DigitsData,
) -> None:
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(digits_data.train_inputs), torch.from_numpy(digits_data.train_labels)
    )

    def run() -> dict[str, torch.Tensor]:
        model = digits.new_model(seed=2)
        loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=True)
        train(model, loader, epochs=1, lr=1e-3, seed=9, progress=False)
        return weights(model)

    assert same_weights(run(), run())


def test_the_callers_torch_state_is_restored(digits_data: DigitsData) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    deterministic = torch.are_deterministic_algorithms_enabled()
    model = digits.new_model(seed=2)
    digits.embed_watermark(model, digits_data, digits.noise_triggers(8, seed=1), seed=5, epochs=1)
    assert torch.equal(torch.rand(3), expected)
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_sgd_and_non_deterministic_mode_train(digits_data: DigitsData) -> None:
    model = digits.new_model(seed=4)
    seconds = train(
        model,
        digits.train_loader(digits_data, seed=4),
        epochs=3,
        lr=0.05,
        seed=4,
        optimizer="sgd",
        deterministic=False,
        progress=False,
    )
    assert seconds > 0
    assert evaluate_accuracy(model, digits_data.test) > 0.8


def test_progress_goes_to_stderr_only_when_asked(
    digits_data: DigitsData, capsys: pytest.CaptureFixture[str]
) -> None:
    loader = digits.train_loader(digits_data, seed=1)
    triggers = digits.noise_triggers(8, seed=1)
    embed(digits.new_model(1), loader, triggers, epochs=1, lr=1e-3, seed=1, progress=False)
    assert capsys.readouterr() == ("", "")
    embed(digits.new_model(1), loader, triggers, epochs=1, lr=1e-3, seed=1, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "embedding" in captured.err


def test_accuracy_from_arrays_and_from_a_loader_agree(digits_data: DigitsData) -> None:
    model = digits.new_model(seed=6)
    digits.train_clean(model, digits_data, seed=6, epochs=2)
    inputs, labels = digits_data.test
    from_arrays = evaluate_accuracy(model, (inputs, labels))
    from_tensors = evaluate_accuracy(model, (torch.from_numpy(inputs), torch.from_numpy(labels)))
    batches = [
        (torch.from_numpy(inputs[i : i + 50]), torch.from_numpy(labels[i : i + 50]))
        for i in range(0, len(labels), 50)
    ]
    assert from_arrays == from_tensors == evaluate_accuracy(model, batches)
    predicted = predict_labels(model, inputs)
    assert predicted.dtype == np.int64 and predicted.shape == labels.shape
    assert from_arrays == float(np.mean(predicted == labels))


def test_evaluation_restores_the_model_mode(digits_data: DigitsData) -> None:
    model = digits.new_model(seed=6)
    model.train()
    evaluate_accuracy(model, digits_data.test)
    assert model.training


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"per_batch": 0}, "per_batch"),
    ],
)
def test_bad_recipes_are_refused(
    digits_data: DigitsData, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"epochs": 1, "lr": 1e-3, "seed": 0, "progress": False}
    arguments.update(changes)
    with pytest.raises(EncodingError, match=message):
        embed(
            digits.new_model(0),
            digits.train_loader(digits_data, seed=0),
            digits.noise_triggers(4, seed=0),
            **arguments,  # type: ignore[arg-type]
        )


def test_an_empty_loader_is_refused() -> None:
    with pytest.raises(EncodingError, match="no batches"):
        train(digits.new_model(0), [], epochs=1, lr=1e-3, seed=0, progress=False)


def test_empty_evaluation_data_is_refused() -> None:
    model = digits.new_model(0)
    with pytest.raises(EncodingError, match="no samples"):
        evaluate_accuracy(model, [])
    with pytest.raises(EncodingError, match="no samples"):
        evaluate_accuracy(model, (np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64)))
    with pytest.raises(EncodingError, match="labels"):
        evaluate_accuracy(model, (np.zeros((2, 1, 8, 8), np.float32), np.zeros(3, np.int64)))


def test_a_model_that_does_not_return_logits_is_refused() -> None:
    triggers = TriggerDataset(np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64))
    with pytest.raises(EncodingError, match="logits"):
        watermark_accuracy(nn.Flatten(0), triggers)


def test_divergence_is_reported(digits_data: DigitsData) -> None:
    with pytest.raises(SecmarkError, match="diverged"):
        train(
            digits.new_model(0),
            digits.train_loader(digits_data, seed=0),
            epochs=2,
            lr=1e30,
            seed=0,
            optimizer="sgd",
            progress=False,
        )


def test_digits_triggers_must_fit_the_model() -> None:
    labels = np.zeros(2, np.int64)
    with pytest.raises(EncodingError, match="shape"):
        digits.trigger_set(np.zeros((2, 8, 8), np.float32), labels)
    with pytest.raises(EncodingError, match=r"\[0, 1\]"):
        digits.trigger_set(np.full((2, 1, 8, 8), 2.0, np.float32), labels)
    with pytest.raises(EncodingError, match="above"):
        digits.trigger_set(np.zeros((2, 1, 8, 8), np.float32), np.array([3, 10]))


def test_the_digits_split_is_fixed(digits_data: DigitsData) -> None:
    again = digits.load_data()
    assert digits_data.train_inputs.shape == (1437, 1, 8, 8)
    assert digits_data.test_inputs.shape == (360, 1, 8, 8)
    assert (
        digits_data.train_inputs.dtype == np.float32 and digits_data.train_labels.dtype == np.int64
    )
    assert 0.0 <= digits_data.train_inputs.min() and digits_data.train_inputs.max() <= 1.0
    assert np.array_equal(again.test_labels, digits_data.test_labels)
    # Stratified: each class keeps its share of the data in the test split.
    assert all(35 <= count <= 37 for count in np.bincount(digits_data.test_labels))
    assert same_weights(weights(digits.new_model(3)), weights(digits.new_model(3)))


def test_training_data_is_the_loader_and_the_test_split(digits_data: DigitsData) -> None:
    loader, (inputs, labels) = digits.training_data()
    assert np.array_equal(inputs, digits_data.test_inputs)
    assert np.array_equal(labels, digits_data.test_labels)
    assert sum(len(batch_labels) for _, batch_labels in loader) == len(digits_data.train_labels)
