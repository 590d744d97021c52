"""The answer and batch checks every adapter shares."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from secmark.errors import SecmarkError, SuspectError
from secmark.models import check_answers, check_batch, check_batch_size, check_output


def test_argmax_reduces_scores_to_int64_labels() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]], dtype=np.float32)
    labels = check_answers(scores, rows=2, output="argmax")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 0])


def test_argmax_breaks_ties_towards_the_first_index() -> None:
    np.testing.assert_array_equal(
        check_answers(np.array([[1.0, 3.0, 3.0]]), rows=1, output="argmax"), [1]
    )


@pytest.mark.parametrize(
    "answers",
    [
        np.array([3, 1, 4]),
        np.array([[3], [1], [4]]),
        [3.0, 1.0, 4.0],
        np.array([3, 1, 4], dtype=np.uint8),
    ],
)
def test_scalar_labels_in_either_shape_become_a_vector(answers: Any) -> None:
    labels = check_answers(answers, rows=3, output="labels")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [3, 1, 4])


def test_token_sequences_keep_their_shape() -> None:
    tokens = np.array([[5, 6, 7], [8, 9, 10]], dtype=np.int32)
    result = check_answers(tokens, rows=2, output="labels", row_shape=(3,))
    assert result.dtype == np.int64
    assert result.shape == (2, 3)


def test_row_shape_one_keeps_the_column() -> None:
    assert check_answers(np.array([[1], [2]]), rows=2, output="labels", row_shape=(1,)).shape == (
        2,
        1,
    )


def test_values_are_float64() -> None:
    values = check_answers(np.array([[0.5], [1.5]], dtype=np.float16), rows=2, output="values")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [0.5, 1.5])


@pytest.mark.parametrize(
    ("answers", "rows", "output", "row_shape", "message"),
    [
        (np.array([1, 2]), 3, "labels", None, r"expected 3 answers \(one per input\), got 2"),
        (np.array(4), 1, "labels", None, r"got a scalar"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), 2, "argmax", None, r"input 0 is not finite"),
        (np.array([1.0, np.inf]), 2, "values", None, r"input 1 is not finite"),
        (np.array([1.0, 2.5]), 2, "labels", None, r"input 1 is not an integer label"),
        (np.array([2.0**63]), 1, "labels", None, r"does not fit in a 64-bit integer"),
        (np.array([2**64 - 1], dtype=np.uint64), 1, "labels", None, r"64-bit integer"),
        (np.array([True, False]), 2, "labels", None, r"integers or floats, got dtype bool"),
        (np.array(["1", "2"]), 2, "labels", None, r"integers or floats, got dtype <U1"),
        (np.array([1 + 2j]), 1, "values", None, r"integers or floats, got dtype complex128"),
        ([[1, 2], [3]], 2, "labels", None, r"not a regular array"),
        (np.array([[1], [2]]), 2, "argmax", None, r"at least 2 scores per input"),
        (np.zeros((2, 3, 4)), 2, "argmax", None, r"at least 2 scores per input"),
        (np.zeros((2, 0)), 2, "values", None, r"hold no values"),
        (np.array([[1, 2], [3, 4]]), 2, "labels", (3,), r"shape \(3,\), got \(2,\)"),
        (np.array([1, 2]), 2, "logits", None, r"unknown output kind 'logits'"),
    ],
)
def test_bad_answers_are_refused(
    answers: Any, rows: int, output: Any, row_shape: tuple[int, ...] | None, message: str
) -> None:
    with pytest.raises(SuspectError, match=message):
        check_answers(answers, rows=rows, output=output, row_shape=row_shape, source="probe")


def test_errors_name_their_source() -> None:
    with pytest.raises(SuspectError, match=r"^oip:http://h/v2/models/m: expected 2"):
        check_answers(np.array([1]), rows=2, output="labels", source="oip:http://h/v2/models/m")


def test_suspect_error_is_a_secmark_error() -> None:
    with pytest.raises(SecmarkError):
        check_output("nope")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([[1.0, 2.0]], r"numpy array, got list"),
        (np.array(["a"]), r"integers or floats"),
        (np.array([True]), r"integers or floats"),
        (np.float64(1.0), r"numpy array"),
        (np.array(1.0), r"at least one row"),
        (np.zeros((0, 3)), r"at least one row"),
        (np.array([[np.nan]]), r"only finite values"),
        (np.array([[-np.inf]]), r"only finite values"),
    ],
)
def test_bad_batches_are_refused(batch: Any, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        check_batch(batch)


@pytest.mark.parametrize("size", [0, -1, True, 2.0, "8"])
def test_bad_batch_sizes_are_refused(size: Any) -> None:
    with pytest.raises(SuspectError, match=r"batch_size must be a positive integer"):
        check_batch_size(size)


def test_models_package_imports_without_torch() -> None:
    # None in sys.modules makes any `import torch` fail, as if torch were absent.
    script = """
import sys
sys.modules["torch"] = None
import numpy as np
import secmark.models
from secmark.models import CallableSuspect, OipSuspect
suspect = CallableSuspect(lambda batch: batch.sum(axis=1).astype(np.int64))
assert suspect.predict(np.ones((2, 3))).tolist() == [3, 3]
OipSuspect("http://127.0.0.1:9", "m").close()
try:
    import secmark.models.torch_module
except ImportError:
    print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_models_package_does_not_load_torch() -> None:
    script = "import sys, secmark.models; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
