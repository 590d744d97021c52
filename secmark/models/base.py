"""What every suspect adapter is, and the checks all of them share.

A *suspect* is whatever the arbiter queries: it takes a batch of inputs (one
per row of a numpy array) and returns one answer per row. The arbiter compares
those answers with the labels derived from a commitment, so an answer array it
accepts must be unambiguous: exactly one answer per input, every answer of the
same shape, finite, and integral where labels are expected. The adapters run
:func:`check_batch` on what goes in and :func:`check_answers` on what comes
out; anything else is refused with a :class:`~secmark.errors.SuspectError`
that says what was wrong, and nothing is ever repaired silently (a NaN is not
turned into a label, a 3.5 is not rounded to 3).

Answers are of one of three kinds, chosen by the caller because an adapter
cannot tell logits from labels by looking at them:

``"argmax"``
    each answer is a row of K >= 2 scores (logits or probabilities); it is
    reduced to the index of the largest score, the first one on a tie, as int64.
``"labels"``
    each answer is already an integer: a class label, or a row of token ids
    for a sequence model; returned as int64.
``"values"``
    each answer is one or more real numbers (regression); returned as float64.

For ``"labels"`` and ``"values"`` an answer of shape ``(1,)`` is taken as a
scalar, so ``(N,)`` and ``(N, 1)`` both give ``(N,)``: servers differ in
which of the two they return for one scalar per input.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

from secmark.errors import EncodingError, SuspectError
from secmark.models.reference import check_file_reference

__all__ = [
    "OUTPUTS",
    "Output",
    "Suspect",
    "check_answers",
    "check_batch",
    "check_batch_size",
    "check_output",
    "check_reference",
]

Output = Literal["argmax", "labels", "values"]
"""How an adapter turns what the model returns into answers (module docstring)."""

OUTPUTS: tuple[Output, ...] = ("argmax", "labels", "values")

# Bounds of int64 as floats: 2**63 is exactly representable, so a float label
# is in range when it lies in [-2**63, 2**63).
_INT64_LOW = -float(2**63)
_INT64_HIGH = float(2**63)
_INT64_MAX = np.iinfo(np.int64).max


@runtime_checkable
class Suspect(Protocol):
    """A model the arbiter can query.

    ``predict`` returns one answer per row of ``batch``, already checked by
    :func:`check_answers` for the adapter's output kind; it raises
    :class:`~secmark.errors.SuspectError` for every failure of the model or
    of the way to reach it, and never returns partial results.

    ``describe`` returns the reference of what ``predict`` actually queries,
    canonical as :mod:`secmark.models.reference` defines it: the string a
    claim and a challenge are bound to, so equal suspects must describe
    themselves identically. The arbiter binds it to the claim's reference
    (:func:`secmark.protocol.suspects.bind_suspect`) before it queries. The
    adapters report:

    - ``oip:<url>``: the canonical URL of the model endpoint requests are
      posted to (:class:`~secmark.models.OipSuspect`);
    - ``json:<url>``: the canonical URL a JSON API's requests are posted to
      (:class:`~secmark.models.JsonApiSuspect`);
    - ``openai:<url>#<model>``: the canonical URL an OpenAI-compatible API's
      requests are posted to and the ``model`` member they carry
      (:class:`~secmark.models.OpenAICompletionsSuspect`,
      :class:`~secmark.models.OpenAIChatSuspect`);
    - ``sha256:<hex>``: the SHA-256 of the weights file the model was read
      from (:class:`~secmark.models.WeightsSuspect`,
      ``TorchSuspect.from_file``), or the one the builder of an in-process
      adapter states with ``reference=`` (that is the builder's word: the
      arbiter's, when the arbiter builds it);
    - ``label:<text>``: an in-process model with no such reference, named by
      the adapter. No claim can name one, so such a suspect cannot be bound
      to a claim.
    """

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def describe(self) -> str: ...


def check_output(output: str) -> Output:
    """Return ``output`` if it names an output kind; raise SuspectError if not."""
    for known in OUTPUTS:
        if output == known:
            return known
    raise SuspectError(f"unknown output kind {output!r}; expected one of {', '.join(OUTPUTS)}")


def check_reference(reference: str) -> str:
    """Return ``reference`` if it is a canonical ``sha256:`` reference of a
    model file (what an in-process adapter may be given as ``reference=``);
    raise SuspectError if not."""
    try:
        return check_file_reference(reference)
    except EncodingError as error:
        raise SuspectError(f"reference: {error}") from None


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` if it is a positive int; raise SuspectError if not."""
    # bool is an int subclass; batch_size=True is a bug, not a size of 1.
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SuspectError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def check_batch(batch: object) -> np.ndarray:
    """Check a batch of inputs before it is sent to a suspect.

    ``batch`` must be a numpy array of integers or floats with at least one
    dimension and at least one row, and every value must be finite (a NaN
    input has no use as a trigger and cannot be encoded in JSON). Returns the
    same array; raises SuspectError naming the first rule broken.
    """
    if not isinstance(batch, np.ndarray):
        raise SuspectError(f"a batch must be a numpy array, got {type(batch).__name__}")
    if batch.dtype.kind not in "iuf":
        raise SuspectError(f"a batch must hold integers or floats, got dtype {batch.dtype}")
    if batch.ndim == 0 or batch.shape[0] == 0:
        raise SuspectError(f"a batch must hold at least one row, got shape {batch.shape}")
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise SuspectError("a batch must hold only finite values (found NaN or infinity)")
    return batch


def check_answers(
    answers: object,
    *,
    rows: int,
    output: Output,
    row_shape: tuple[int, ...] | None = None,
    source: str = "suspect",
) -> np.ndarray:
    """Check what a suspect answered for ``rows`` inputs and normalise it.

    ``answers`` is an array (or anything numpy turns into a regular numeric
    array) whose first dimension is the input row. Checks, in order: the
    values are integers or floats (not booleans, strings, objects or ragged
    lists); there is exactly one answer per row; every answer holds at least
    one value (for ``"argmax"``: a single row of at least two scores); all
    values are finite; for ``"labels"``, every value is integral and fits in
    int64; finally, when ``row_shape`` is given, the shape of one normalised
    answer equals it (``()`` for a scalar, ``(T,)`` for T tokens).

    Returns int64 labels of shape ``(rows,)`` for ``"argmax"``, int64 of shape
    ``(rows, *row_shape)`` for ``"labels"``, float64 for ``"values"``, with a
    ``(rows, 1)`` answer flattened to ``(rows,)`` unless ``row_shape`` asks
    for ``(1,)``. Raises SuspectError, prefixed with ``source``, naming the
    first rule broken.
    """
    output = check_output(output)
    try:
        array = np.asarray(answers)
    except (ValueError, TypeError) as exc:
        raise SuspectError(f"{source}: answers are not a regular array ({exc})") from exc
    if array.dtype.kind not in "iuf":
        raise SuspectError(f"{source}: answers must be integers or floats, got dtype {array.dtype}")
    if array.ndim == 0 or array.shape[0] != rows:
        got = "a scalar" if array.ndim == 0 else f"{array.shape[0]}"
        raise SuspectError(
            f"{source}: expected {rows} answers (one per input), got {got} (shape {array.shape})"
        )
    if output == "argmax" and (array.ndim != 2 or array.shape[1] < 2):
        raise SuspectError(
            f"{source}: output 'argmax' needs one row of at least 2 scores per input, got shape "
            f"{array.shape}; use output 'labels' or 'values' for a model that answers scalars"
        )
    if array.size == 0:
        raise SuspectError(f"{source}: answers hold no values (shape {array.shape})")
    if output == "values" and array.dtype.kind in "iu":
        # A model that answers integers is a classifier: its class index is
        # not a value, and must never be compared with a regression target.
        raise SuspectError(
            f"{source}: output 'values' needs floating-point answers, got dtype {array.dtype} "
            "(a class index is not a regression value)"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.argmax(~np.isfinite(array).reshape(rows, -1).all(axis=1)))
        raise SuspectError(f"{source}: the answer to input {bad} is not finite (NaN or infinity)")

    result: np.ndarray
    if output == "argmax":
        # np.argmax returns the first maximal index, which makes ties deterministic.
        result = np.argmax(array, axis=1).astype(np.int64)
    elif output == "labels":
        result = _to_int64(array, source)
    else:
        result = array.astype(np.float64)

    if result.ndim == 2 and result.shape[1] == 1 and row_shape != (1,):
        result = result.reshape(rows)
    if row_shape is not None and result.shape[1:] != tuple(row_shape):
        raise SuspectError(
            f"{source}: each answer must have shape {tuple(row_shape)}, got {result.shape[1:]}"
        )
    return result


def _to_int64(array: np.ndarray, source: str) -> np.ndarray:
    """Integral values of ``array`` as int64, refusing anything that would change."""
    if array.dtype.kind == "f":
        integral = array == np.floor(array)
        if not integral.all():
            bad = int(np.argmax(~integral.reshape(array.shape[0], -1).all(axis=1)))
            raise SuspectError(f"{source}: the answer to input {bad} is not an integer label")
        if not ((array >= _INT64_LOW) & (array < _INT64_HIGH)).all():
            raise SuspectError(f"{source}: a label does not fit in a 64-bit integer")
    elif array.dtype.kind == "u" and array.dtype.itemsize == 8 and (array > _INT64_MAX).any():
        raise SuspectError(f"{source}: a label does not fit in a 64-bit integer")
    return array.astype(np.int64)
