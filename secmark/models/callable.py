"""In-process suspects: any Python function, or a scikit-learn style estimator.

Neither adapter needs torch. Both call the model on consecutive slices of the
batch of at most ``batch_size`` rows, check each slice's answers with
:func:`~secmark.models.base.check_answers` and return them concatenated. An
exception raised by the model becomes a SuspectError (the original is chained
as ``__cause__``), so the arbiter handles a crashing suspect like an
unreachable one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from secmark.errors import SuspectError
from secmark.models.base import (
    Output,
    check_answers,
    check_batch,
    check_batch_size,
    check_output,
    check_reference,
)
from secmark.models.reference import MAX_LABEL_LENGTH, arbiter_label

__all__ = ["DEFAULT_BATCH_SIZE", "CallableSuspect", "EstimatorSuspect"]

DEFAULT_BATCH_SIZE = 256
"""Rows per call: bounds the memory one call to the model may use."""

# Cut-off for the text of a model's exception quoted in a SuspectError.
_MAX_ERROR_TEXT = 200


def _qualified_name(obj: object) -> str:
    """``module.QualName`` of a function or of the class of an instance."""
    # Instances have no __qualname__ of their own; functions and classes do.
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{target.__qualname__}"


def _describe(kind: str, model: object, reference: str | None) -> str:
    """``reference`` checked, or the adapter's own ``label:`` for ``model``."""
    if reference is not None:
        return check_reference(reference)
    text = f"{kind} {_qualified_name(model)}"[:MAX_LABEL_LENGTH].strip()
    return arbiter_label(text if text.isprintable() else kind)


def _predict_in_slices(
    function: Callable[[np.ndarray], Any],
    batch: np.ndarray,
    *,
    batch_size: int,
    output: Output,
    source: str,
) -> np.ndarray:
    parts = []
    for start in range(0, batch.shape[0], batch_size):
        chunk = batch[start : start + batch_size]
        try:
            answers = function(chunk)
        except Exception as exc:  # any failure of foreign code is the suspect's failure
            text = str(exc)[:_MAX_ERROR_TEXT]
            raise SuspectError(f"{source}: the model raised {type(exc).__name__}: {text}") from exc
        parts.append(check_answers(answers, rows=chunk.shape[0], output=output, source=source))
    return np.concatenate(parts)


class CallableSuspect:
    """A suspect that is a Python function from a batch to its answers.

    ``function`` takes a numpy array of rows and returns one answer per row
    (an array, or anything numpy turns into a regular numeric array).
    ``output`` says what those answers are (see :mod:`secmark.models.base`);
    the default ``"labels"`` expects integer class labels.

    ``describe()`` is ``reference`` when given: ``sha256:<hex>`` of the
    weights file the function's model was loaded from, as whoever builds the
    adapter states it (the arbiter, when it queries the suspect: it binds
    that reference to the claim's). Otherwise it is
    ``label:callable <module>.<qualified name>``, which no claim can name.
    """

    __slots__ = ("_batch_size", "_function", "_output", "_reference")

    def __init__(
        self,
        function: Callable[[np.ndarray], Any],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        output: Output = "labels",
        reference: str | None = None,
    ) -> None:
        if not callable(function):
            raise SuspectError(f"a CallableSuspect needs a callable, got {type(function).__name__}")
        self._function = function
        self._batch_size = check_batch_size(batch_size)
        self._output = check_output(output)
        self._reference = _describe("callable", function, reference)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Answers of the function to every row of ``batch``; SuspectError on failure."""
        return _predict_in_slices(
            self._function,
            check_batch(batch),
            batch_size=self._batch_size,
            output=self._output,
            source=self._reference,
        )

    def describe(self) -> str:
        return self._reference


class EstimatorSuspect:
    """A suspect with a scikit-learn style ``predict(X)`` method.

    Each row of the batch is flattened to one feature vector, since such
    estimators take ``X`` of shape ``(n_samples, n_features)``; a batch of
    8x8 images is sent as ``(N, 64)``. ``predict`` of a classifier returns
    labels, so the default output is ``"labels"``; use ``"values"`` for a
    regressor. There is no ``"argmax"`` here on purpose: the columns of
    ``predict_proba`` follow ``estimator.classes_``, not the label index, and
    reducing them would silently mislabel a model trained on other classes.
    The estimator's classes must therefore be the integer labels themselves;
    string classes are refused. ``describe()`` is ``reference`` when given
    (as for :class:`CallableSuspect`), else
    ``label:estimator <module>.<class name>``.
    """

    __slots__ = ("_batch_size", "_estimator", "_output", "_reference")

    def __init__(
        self,
        estimator: Any,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        output: Output = "labels",
        reference: str | None = None,
    ) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise SuspectError(
                f"an EstimatorSuspect needs an object with a predict method, "
                f"got {type(estimator).__name__}"
            )
        if check_output(output) == "argmax":
            raise SuspectError("an EstimatorSuspect answers labels or values, not 'argmax'")
        self._estimator = estimator
        self._batch_size = check_batch_size(batch_size)
        self._output = output
        self._reference = _describe("estimator", estimator, reference)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The estimator's predictions for every row of ``batch``; SuspectError on failure."""
        batch = check_batch(batch)
        return _predict_in_slices(
            self._estimator.predict,
            batch.reshape(batch.shape[0], -1),
            batch_size=self._batch_size,
            output=self._output,
            source=self._reference,
        )

    def describe(self) -> str:
        return self._reference
