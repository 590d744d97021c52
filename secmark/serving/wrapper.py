"""Marked answers for a model in this process, and the marking step the gateway shares.

:class:`BatchMarker` is the one place where queries are marked and logged,
for the HTTP gateway (:mod:`secmark.serving.gateway`) as for
:class:`MarkedClassifier`: given a client account, the canonical bytes of a
batch's inputs and the model's answer to each, it marks every row with the
operator's :class:`~secmark.serving.marking.Marker` and appends the rows the
policy logs to the query log in **one** append, returning only once the
append has returned. A marked answer is therefore never handed out before
it is in the log; when the append fails, the caller gets the sink's error
and must serve nothing.

:class:`MarkedClassifier` wraps a ``predict`` function: it canonicalises
each input (:func:`~secmark.serving.marking.canonical_input`), has the model
answer the canonical values (the model sees exactly what is logged), and
returns the served classes, or scores whose first place is the served class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import utc_now
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.messages.checkpoint import LogCheckpoint
from secmark.messages.document import SignedDocument
from secmark.serving.entry import LogEntry, client_account
from secmark.serving.marking import (
    Marker,
    Marking,
    canonical_input,
    decode_inputs,
    marked_scores,
)
from secmark.timestamp.evidence import collect_evidence

__all__ = [
    "DEFAULT_MAX_BATCH",
    "BatchMarker",
    "CheckpointSink",
    "EntrySink",
    "MarkedClassifier",
    "ModelAnswerError",
    "canonical_rows",
    "class_answers",
    "score_answers",
    "served_scores",
]

DEFAULT_MAX_BATCH = 1024
"""Most inputs in one request: each costs a VRF evaluation (about 0.2 ms),
so a larger batch would hold a worker for long."""


class ModelAnswerError(SecmarkError):
    """The model's output cannot be read as one answer per input: another
    shape or row count, a non-finite score, a class outside the policy's
    labels. Nothing is served for the batch."""


class EntrySink(Protocol):
    """Where logged queries go: :class:`secmark.serving.log.QueryLog`, or
    anything with its ``append``.

    ``append`` must return only once the entries are durable (committed),
    and raise if they are not. It is called from worker threads, several at
    a time: a sink must be thread-safe.
    """

    def append(self, entries: Sequence[LogEntry], /) -> list[int]: ...


@runtime_checkable
class CheckpointSink(EntrySink, Protocol):
    """A sink whose operator signs checkpoints of it and keeps their
    timestamps (``QueryLog``)."""

    def checkpoint(self, operator_keys: IdentityKeys, /) -> SignedDocument[LogCheckpoint]: ...

    def add_timestamp(self, size: int, evidence: bytes, /) -> None: ...


def canonical_rows(
    batch: Any, marker: Marker, *, max_batch: int = DEFAULT_MAX_BATCH
) -> list[bytes]:
    """The canonical bytes of each input of ``batch`` (shape ``[N, *input
    shape]``, 1 <= N <= ``max_batch``) under the marker's policy.

    Raises:
        EncodingError: another shape, an empty or too large batch, or an
            input :func:`~secmark.serving.marking.canonical_input` refuses
            (the message names the row).
    """
    encoding = marker.policy.input
    try:
        array = np.asarray(batch)
    except (ValueError, TypeError) as error:
        raise EncodingError(f"the batch is not a numeric array: {error}") from None
    if array.ndim != len(encoding.shape) + 1 or array.shape[1:] != encoding.shape:
        raise EncodingError(
            f"a batch must have shape [N, {', '.join(map(str, encoding.shape))}], "
            f"not {list(array.shape)}"
        )
    if not 1 <= array.shape[0] <= max_batch:
        raise EncodingError(f"a batch holds 1 to {max_batch} inputs, not {array.shape[0]}")
    rows = []
    for index, row in enumerate(array):
        try:
            rows.append(canonical_input(row, encoding))
        except EncodingError as error:
            raise EncodingError(f"input {index}: {error}") from None
    return rows


def class_answers(values: Any, rows: int, num_classes: int) -> list[int]:
    """The model's classes from an output of shape ``[rows]`` or ``[rows, 1]``.

    Raises:
        ModelAnswerError: another shape, a non-integral value, or a class
            outside ``[0, num_classes)``.
    """
    array = np.asarray(values)
    if array.shape not in ((rows,), (rows, 1)):
        raise ModelAnswerError(
            f"the model's classes have shape {list(array.shape)}, not [{rows}] or [{rows}, 1]"
        )
    if array.dtype.kind not in "iu":
        raise ModelAnswerError(f"the model's classes must be integers, not {array.dtype}")
    flat = array.reshape(rows)
    if rows and (int(flat.min()) < 0 or int(flat.max()) >= num_classes):
        raise ModelAnswerError(f"the model answered a class outside [0, {num_classes})")
    return [int(value) for value in flat]


def score_answers(scores: Any, rows: int, num_classes: int) -> list[int]:
    """The model's classes from scores of shape ``[rows, num_classes]``: the
    first maximum of each row (as :func:`~secmark.serving.marking.marked_scores`
    reads it).

    Raises:
        ModelAnswerError: another shape, non-numeric or non-finite scores.
    """
    array = np.asarray(scores)
    if array.shape != (rows, num_classes):
        raise ModelAnswerError(
            f"the model's scores have shape {list(array.shape)}, not [{rows}, {num_classes}]"
        )
    if array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        raise ModelAnswerError("the model's scores must be finite numbers")
    return [int(value) for value in np.argmax(array, axis=1)]


def served_scores(scores: Any, markings: Sequence[Marking]) -> npt.NDArray[Any]:
    """``scores`` (checked by :func:`score_answers`) with each row's first
    place moved to its served answer.

    Raises:
        ModelAnswerError: a marked row whose scores tie at the top, so that no
            swap puts the served answer alone in first place (a reader taking
            the first maximum would read another class).
    """
    out = np.array(scores, copy=True)
    for index, marking in enumerate(markings):
        if marking.selected:
            out[index] = marked_scores(out[index], marking.served_answer)
            if int(np.argmax(out[index])) != marking.served_answer:
                raise ModelAnswerError(
                    f"the model's scores for input {index} tie at the top: the marked "
                    "answer cannot be served as scores"
                )
    return out


class BatchMarker:
    """Marks a batch's answers (:meth:`mark`), then logs the logged ones in
    one append (:meth:`log`); a caller serves the batch only after both.
    """

    def __init__(self, marker: Marker, sink: EntrySink) -> None:
        self._marker = marker
        self._sink = sink
        # The policy id is the SHA-256 of the policy's canonical payload
        # (SignedDocument.digest), which the Marker does not expose.
        self._policy_id = marker.policy_id

    @property
    def marker(self) -> Marker:
        return self._marker

    @property
    def policy_id(self) -> bytes:
        return self._policy_id

    def account(self, api_key: str) -> str:
        """The client account (hex digest) of ``api_key`` under this policy.

        Raises:
            ProtocolError: an empty key: every logged query must belong to
                an account.
            EncodingError: a key that is not valid Unicode.
        """
        if not api_key:
            raise ProtocolError("a query needs the client's API key")
        return client_account(self._policy_id, api_key)

    def mark(self, rows: Sequence[bytes], model_answers: Sequence[int]) -> list[Marking]:
        """Mark each row (canonical input bytes) given the model's answer to it.

        Serve nothing from the markings before :meth:`log` has returned.
        Blocking (one VRF evaluation per row): call it in a worker thread
        from an event loop.

        Raises:
            EncodingError: a model answer outside the policy's classes, or
                rows and answers of different lengths.
        """
        if len(rows) != len(model_answers):
            raise EncodingError("one model answer per input is needed")
        return [self._marker.mark(row, answer) for row, answer in zip(rows, model_answers)]

    def log(self, client: str, rows: Sequence[bytes], markings: Sequence[Marking]) -> None:
        """Append the logged rows of a marked batch to the sink in one append,
        returning once it has returned (nothing to log: no append).

        Blocking (a database commit): call it in a worker thread from an
        event loop.

        Raises:
            EncodingError: a malformed entry (a client that is no account).
            Exception: whatever the sink's ``append`` raises; the batch is
                then not to be served.
        """
        now = utc_now()
        entries = [
            LogEntry(
                policy_id=self._policy_id,
                client=client,
                time=now,
                input=row,
                model_answer=marking.model_answer,
                served_answer=marking.served_answer,
                marked=marking.selected,
                proof=marking.proof,
            )
            for row, marking in zip(rows, markings)
            if marking.logged and marking.proof is not None
        ]
        if entries:
            self._sink.append(entries)

    def checkpoint(
        self, operator_keys: IdentityKeys, timestamp_authorities: Sequence[str] = ()
    ) -> SignedDocument[LogCheckpoint] | None:
        """Have the sink sign a checkpoint with ``operator_keys`` and, with
        ``timestamp_authorities`` (TSA URLs), store their timestamps of it;
        None when the sink signs none (it is no :class:`CheckpointSink`).

        Raises:
            TimestampError: a TSA failed (the checkpoint is signed and
                stored; its timestamps are not).
            Exception: whatever the sink's ``checkpoint`` raises.
        """
        if not isinstance(self._sink, CheckpointSink):
            return None
        signed = self._sink.checkpoint(operator_keys)
        if timestamp_authorities:
            evidence = collect_evidence(signed.digest, list(timestamp_authorities))
            self._sink.add_timestamp(signed.document.size, evidence.to_json())
        return signed


class MarkedClassifier:
    """A classifier whose answers are marked and logged under a serving policy.

    ``predict`` takes a ``[N, *input shape]`` array of the policy's dtype
    and returns class indices (``[N]`` or ``[N, 1]``) or scores
    (``[N, K]``). It is handed the canonical values of the inputs, so the
    model answers exactly what the log records.
    """

    def __init__(
        self,
        predict: Callable[[npt.NDArray[Any]], npt.NDArray[Any]],
        marker: Marker,
        sink: EntrySink,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._predict = predict
        self._marking = BatchMarker(marker, sink)
        self._max_batch = max_batch

    def predict(self, batch: Any, *, api_key: str) -> npt.NDArray[np.int64]:
        """The served class of each input, as an int64 array ``[N]``.

        Raises:
            ProtocolError: no API key.
            EncodingError: a batch or input the policy's encoding refuses.
            ModelAnswerError: the model's output is not one answer per input.
            Exception: whatever ``predict`` or the sink raises; nothing is
                served then.
        """
        client = self._marking.account(api_key)
        rows, output = self._run(batch)
        num_classes = self._marking.marker.policy.labels.num_classes
        if output.ndim == 2 and output.shape[1] == num_classes and num_classes > 1:
            answers = score_answers(output, len(rows), num_classes)
        else:
            answers = class_answers(output, len(rows), num_classes)
        markings = self._marking.mark(rows, answers)
        self._marking.log(client, rows, markings)
        return np.array([marking.served_answer for marking in markings], dtype=np.int64)

    def predict_scores(self, batch: Any, *, api_key: str) -> npt.NDArray[Any]:
        """The model's scores ``[N, K]``, with each marked row's first place
        moved to its served class (:func:`~secmark.serving.marking.marked_scores`).

        Raises:
            as :meth:`predict`; ModelAnswerError also when ``predict`` does
            not return scores, or a marked row's scores tie at the top.
        """
        client = self._marking.account(api_key)
        rows, output = self._run(batch)
        num_classes = self._marking.marker.policy.labels.num_classes
        markings = self._marking.mark(rows, score_answers(output, len(rows), num_classes))
        served = served_scores(output, markings)
        self._marking.log(client, rows, markings)
        return served

    def _run(self, batch: Any) -> tuple[list[bytes], npt.NDArray[Any]]:
        marker = self._marking.marker
        rows = canonical_rows(batch, marker, max_batch=self._max_batch)
        return rows, np.asarray(self._predict(decode_inputs(rows, marker.policy.input)))
