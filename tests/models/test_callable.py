"""CallableSuspect and EstimatorSuspect."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.models import CallableSuspect, EstimatorSuspect, Suspect
from tests.models.conftest import digit_like_inputs, linear_logits


def row_sum_label(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(batch.shape[0], -1).sum(axis=1).astype(np.int64) % 10


def test_callable_answers_every_row_in_batches() -> None:
    sizes: list[int] = []

    def model(batch: np.ndarray) -> np.ndarray:
        sizes.append(batch.shape[0])
        return row_sum_label(batch)

    inputs = digit_like_inputs(10)
    suspect = CallableSuspect(model, batch_size=4)
    np.testing.assert_array_equal(suspect.predict(inputs), row_sum_label(inputs))
    assert sizes == [4, 4, 2]
    assert isinstance(suspect, Suspect)


def test_callable_logits_with_argmax() -> None:
    inputs = digit_like_inputs(20)
    answers = CallableSuspect(linear_logits, output="argmax").predict(inputs)
    np.testing.assert_array_equal(answers, np.argmax(linear_logits(inputs), axis=1))


def test_callable_may_return_a_list() -> None:
    suspect = CallableSuspect(lambda batch: [7] * batch.shape[0])
    np.testing.assert_array_equal(suspect.predict(np.zeros((3, 2))), [7, 7, 7])


def test_callable_values() -> None:
    suspect = CallableSuspect(lambda batch: batch.mean(axis=1, keepdims=True), output="values")
    np.testing.assert_array_equal(suspect.predict(np.array([[1.0, 2.0], [3.0, 5.0]])), [1.5, 4.0])


def test_callable_exception_becomes_suspect_error() -> None:
    def broken(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("out of memory")

    with pytest.raises(SuspectError, match=r"raised RuntimeError: out of memory") as raised:
        CallableSuspect(broken).predict(np.zeros((1, 2)))
    assert isinstance(raised.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda batch: np.zeros(batch.shape[0] + 1, dtype=np.int64), r"expected 2 answers"),
        (lambda batch: np.full(batch.shape[0], np.nan), r"not finite"),
        (lambda batch: np.full(batch.shape[0], 0.5), r"not an integer label"),
        (lambda batch: None, r"integers or floats, got dtype object"),
    ],
)
def test_callable_bad_answers_are_refused(function: Any, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        CallableSuspect(function).predict(np.zeros((2, 2)))


def test_callable_describe() -> None:
    assert CallableSuspect(row_sum_label).describe() == (
        "label:callable tests.models.test_callable.row_sum_label"
    )
    partial = functools.partial(row_sum_label)
    assert CallableSuspect(partial).describe() == "label:callable functools.partial"


def test_callable_refuses_non_callables() -> None:
    with pytest.raises(SuspectError, match=r"needs a callable"):
        CallableSuspect(42)  # type: ignore[arg-type]


class ThresholdEstimator:
    """A minimal scikit-learn style estimator: only ``predict``."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.shapes.append(features.shape)
        return (features.mean(axis=1) > 8).astype(np.int64)


def test_estimator_gets_flattened_rows_in_batches() -> None:
    estimator = ThresholdEstimator()
    inputs = digit_like_inputs(10)
    suspect = EstimatorSuspect(estimator, batch_size=4)
    np.testing.assert_array_equal(
        suspect.predict(inputs), (inputs.reshape(10, -1).mean(axis=1) > 8).astype(np.int64)
    )
    assert estimator.shapes == [(4, 64), (4, 64), (2, 64)]
    assert suspect.describe() == "label:estimator tests.models.test_callable.ThresholdEstimator"
    assert isinstance(suspect, Suspect)


def test_estimator_without_predict_or_with_argmax_is_refused() -> None:
    with pytest.raises(SuspectError, match=r"needs an object with a predict method"):
        EstimatorSuspect(object())
    with pytest.raises(SuspectError, match=r"labels or values, not 'argmax'"):
        EstimatorSuspect(ThresholdEstimator(), output="argmax")


def test_sklearn_classifier_labels_match_its_own_predict() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    train = digit_like_inputs(200, seed=3)
    classifier = linear_model.LogisticRegression(max_iter=2000).fit(
        train.reshape(200, -1), np.argmax(linear_logits(train), axis=1)
    )
    inputs = digit_like_inputs(50, seed=4)
    suspect = EstimatorSuspect(classifier)
    answers = suspect.predict(inputs)
    assert answers.dtype == np.int64
    np.testing.assert_array_equal(answers, classifier.predict(inputs.reshape(50, -1)))
    assert suspect.describe() == "label:estimator sklearn.linear_model._logistic.LogisticRegression"


def test_sklearn_regressor_values() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    inputs = np.arange(12, dtype=np.float64).reshape(6, 2)
    regressor = linear_model.LinearRegression().fit(inputs, inputs.sum(axis=1) * 0.5)
    values = EstimatorSuspect(regressor, output="values").predict(inputs)
    np.testing.assert_allclose(values, inputs.sum(axis=1) * 0.5)


def test_sklearn_string_classes_are_refused() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    inputs = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = linear_model.LogisticRegression().fit(inputs, ["cat", "cat", "dog", "dog"])
    with pytest.raises(SuspectError, match=r"integers or floats, got dtype <U3"):
        EstimatorSuspect(model).predict(inputs)


def test_callable_and_estimator_describe_the_reference_they_are_given() -> None:
    reference = "sha256:" + "ab" * 32
    assert CallableSuspect(row_sum_label, reference=reference).describe() == reference
    estimator = EstimatorSuspect(ThresholdEstimator(), reference=reference)
    assert estimator.describe() == reference


@pytest.mark.parametrize(
    "reference",
    ["sha256:" + "AB" * 32, "sha256:" + "ab" * 31, "label:mine", "oip:http://h/v2/models/m", ""],
)
def test_a_given_reference_must_be_a_canonical_model_file_digest(reference: str) -> None:
    """An in-process model is named by the digest of its weights file only:
    a free label, or an endpoint it is not, would be a reference of another
    thing than what is queried."""
    with pytest.raises(SuspectError, match="not a model file reference"):
        CallableSuspect(row_sum_label, reference=reference)
    with pytest.raises(SuspectError, match="not a model file reference"):
        EstimatorSuspect(ThresholdEstimator(), reference=reference)
