"""TorchSuspect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from secmark.errors import SuspectError
from secmark.models import Suspect
from secmark.models.torch_module import TorchSuspect
from tests.models.conftest import BIAS, WEIGHTS, digit_like_inputs, linear_logits


def linear_module(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The served linear classifier as a torch module."""
    linear = torch.nn.Linear(64, 10).to(dtype)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(WEIGHTS.T))
        linear.bias.copy_(torch.from_numpy(BIAS))
    return torch.nn.Sequential(torch.nn.Flatten(), linear)


class Recorder(torch.nn.Module):
    """Records how it was called, answers zeros logits."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
        self.calls: list[tuple[torch.dtype, int, bool, bool]] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls.append((inputs.dtype, inputs.shape[0], torch.is_grad_enabled(), self.training))
        return torch.zeros(inputs.shape[0], 3, dtype=self.scale.dtype) * self.scale


def test_argmax_labels_match_the_reference() -> None:
    inputs = digit_like_inputs(50)
    suspect = TorchSuspect(linear_module(torch.float64))
    answers = suspect.predict(inputs)
    assert answers.dtype == np.int64
    np.testing.assert_array_equal(answers, np.argmax(linear_logits(inputs), axis=1))
    assert isinstance(suspect, Suspect)


def test_values_are_the_logits() -> None:
    inputs = digit_like_inputs(5)
    values = TorchSuspect(linear_module(torch.float64), output="values").predict(inputs)
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, linear_logits(inputs), rtol=1e-12)


def test_batching_eval_mode_no_grad_and_dtype() -> None:
    module = Recorder()
    module.train()
    suspect = TorchSuspect(module, batch_size=4)
    suspect.predict(np.zeros((10, 2), dtype=np.uint8))
    assert module.calls == [(torch.float64, 4, False, False)] * 2 + [
        (torch.float64, 2, False, False)
    ]
    assert module.training  # the caller's mode is restored


def test_mixed_train_eval_modes_are_restored() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    module.train()
    module[1].eval()
    TorchSuspect(module, output="values").predict(np.ones((3, 2)))
    assert module.training and module[0].training and not module[1].training


def test_dropout_is_off_during_queries() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.9)).train()
    suspect = TorchSuspect(module, output="values")
    batch = np.ones((8, 4), dtype=np.float32)
    np.testing.assert_array_equal(suspect.predict(batch), suspect.predict(batch))


def test_token_model_with_integer_inputs_and_label_outputs() -> None:
    class NextTokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(16, 4)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            self.embed(tokens)  # fails unless the tokens arrive as integers
            return (tokens + 1) % 16

    tokens = np.array([[1, 2, 3], [15, 0, 7]])
    suspect = TorchSuspect(NextTokens(), output="labels", input_dtype=torch.int64)
    np.testing.assert_array_equal(suspect.predict(tokens), [[2, 3, 4], [0, 1, 8]])


def test_reversed_views_are_accepted() -> None:
    inputs = digit_like_inputs(6)
    suspect = TorchSuspect(linear_module(torch.float64))
    np.testing.assert_array_equal(suspect.predict(inputs[::-1]), suspect.predict(inputs)[::-1])


def test_device_defaults_to_the_module_device() -> None:
    assert TorchSuspect(linear_module()).device == torch.device("cpu")
    assert TorchSuspect(linear_module(), device="cpu").device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(SuspectError, match=r"CUDA is not available"):
        TorchSuspect(linear_module(), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_answers_equal_cpu_answers() -> None:
    inputs = digit_like_inputs(300)
    cpu = TorchSuspect(linear_module(torch.float64)).predict(inputs)
    suspect = TorchSuspect(linear_module(torch.float64), device="cuda", batch_size=64)
    assert suspect.device.type == "cuda"
    np.testing.assert_array_equal(suspect.predict(inputs), cpu)


@pytest.mark.parametrize(
    ("module", "options", "message"),
    [
        (torch.nn.Identity(), {"device": "warp-drive"}, r"unknown torch device"),
        (torch.nn.Identity(), {"batch_size": 0}, r"batch_size"),
        (torch.nn.Identity(), {"output": "probabilities"}, r"unknown output kind"),
        (object(), {}, r"needs a torch.nn.Module, got object"),
    ],
)
def test_invalid_configuration_is_refused(module: object, options: dict, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        TorchSuspect(module, **options)  # type: ignore[arg-type]


class Fails(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class ReturnsTuple(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return inputs, inputs


class ReturnsNaN(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.full((inputs.shape[0], 3), float("nan"))


class ReturnsBool(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, 0] > 0


@pytest.mark.parametrize(
    ("module", "output", "message"),
    [
        (
            Fails(),
            "argmax",
            r"label:torch tests.models.test_torch_module.Fails: the module raised RuntimeError: mat1",
        ),
        (ReturnsTuple(), "argmax", r"must return one tensor, got tuple"),
        (ReturnsNaN(), "argmax", r"input 0 is not finite"),
        (ReturnsBool(), "labels", r"got dtype bool"),
        (torch.nn.Identity(), "argmax", r"at least 2 scores per input, got shape \(2, 1\)"),
    ],
)
def test_bad_modules_are_refused(module: torch.nn.Module, output: str, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        TorchSuspect(module, output=output).predict(np.ones((2, 1)))  # type: ignore[arg-type]


def test_bfloat16_outputs_are_read() -> None:
    module = linear_module(torch.bfloat16)
    answers = TorchSuspect(module, output="values").predict(digit_like_inputs(2))
    assert answers.dtype == np.float64 and answers.shape == (2, 10)


def test_describe_names_the_module_class() -> None:
    assert (
        TorchSuspect(Recorder()).describe() == "label:torch tests.models.test_torch_module.Recorder"
    )
    assert (
        TorchSuspect(linear_module()).describe()
        == "label:torch torch.nn.modules.container.Sequential"
    )


def test_from_file_is_described_by_the_files_digest(tmp_path: Path) -> None:
    from secmark.embed import save_state

    path = tmp_path / "model.safetensors"
    save_state(linear_module(), path)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    suspect = TorchSuspect.from_file(module, path, output="argmax")
    assert suspect.describe() == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    inputs = digit_like_inputs(6)
    np.testing.assert_array_equal(suspect.predict(inputs), linear_logits(inputs).argmax(axis=1))


def test_from_file_refuses_a_file_that_does_not_fit(tmp_path: Path) -> None:
    from secmark.embed import save_state

    path = tmp_path / "other.safetensors"
    save_state(torch.nn.Linear(3, 2), path)
    with pytest.raises(SuspectError, match="does not fit the model"):
        TorchSuspect.from_file(linear_module(), path)
    with pytest.raises(SuspectError, match="cannot read model file"):
        TorchSuspect.from_file(linear_module(), tmp_path / "missing.safetensors")


def test_a_given_reference_must_be_a_model_file_digest() -> None:
    reference = "sha256:" + "0f" * 32
    assert TorchSuspect(Recorder(), reference=reference).describe() == reference
    with pytest.raises(SuspectError, match="not a model file reference"):
        TorchSuspect(Recorder(), reference="label:the thief's model")
