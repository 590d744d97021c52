"""Black-box verification: query a suspect with triggers hidden among decoys.

The arbiter sends the revealed triggers and fresh decoys in an order drawn
from the operating system's CSPRNG, so the suspect cannot tell which queries
matter; it then counts how many trigger answers match the committed labels
and runs the exact binomial test. Every query is recorded in the order sent,
with the digest of its input, the raw answer or the error, and which ones
were triggers.

A trigger the suspect refused or answered malformed counts as a trial that
did not match: refusing cannot help an owner, and under the null hypothesis a
non-match only makes the test more conservative. Errors are counted and
reported, never dropped.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, SuspectError
from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels, TokenLabels
from secmark.models.base import Suspect
from secmark.stats import DEFAULT_ALPHA, BinomialTestResult, binomial_test, null_match_probability

__all__ = [
    "BlackBoxResult",
    "QueryRecord",
    "answer_matches",
    "input_digest",
    "query_suspect",
    "score_answers",
]

DEFAULT_QUERY_BATCH = 64


@dataclass(frozen=True)
class QueryRecord:
    """One query as sent: ``answer`` or ``error`` is set, never both.

    ``answer`` is JSON-ready: an int (class), a float (regression value) or a
    list of ints (token ids).
    """

    position: int
    input_sha256: str
    trigger_index: int | None
    answer: int | float | list[int] | None
    error: str | None

    @property
    def is_trigger(self) -> bool:
        return self.trigger_index is not None


@dataclass(frozen=True)
class BlackBoxResult:
    """The transcript's records and the verdict statistics they give."""

    records: tuple[QueryRecord, ...]
    trials: int
    matches: int
    trigger_errors: int
    decoy_errors: int
    test: BinomialTestResult


def input_digest(value: npt.NDArray[Any]) -> str:
    """Hex SHA-256 of an input's C-order bytes (little-endian)."""
    array = np.ascontiguousarray(value)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(array.tobytes()).hexdigest()


def _json_answer(value: Any, space: LabelSpace) -> int | float | list[int]:
    if isinstance(space, ClassLabels):
        return int(value)
    if isinstance(space, RegressionLabels):
        return float(value)
    return [int(token) for token in np.asarray(value).reshape(-1)]


def answer_matches(space: LabelSpace, label: Any, answer: float | list[int]) -> int:
    """How many trials of one trigger matched (0 or 1; up to L for token labels).

    An answer of the wrong kind for the label space (a float or a list for
    classes, a list for a regression target, a scalar for token labels)
    matches nothing: a transcript is data, not a promise of well-typed answers.
    """
    if isinstance(space, ClassLabels):
        return int(type(answer) is int and answer == int(label))
    if isinstance(space, RegressionLabels):
        if type(answer) not in (int, float):
            return 0
        # Exact rational comparison: no rounding can turn a miss into a match.
        distance = abs(Fraction(answer) - Fraction(float(label)))  # type: ignore[arg-type]
        return int(distance <= Fraction(space.tolerance))
    expected = [int(token) for token in np.asarray(label).reshape(-1)]
    if not isinstance(answer, list) or len(answer) != len(expected):
        return 0
    return sum(int(type(a) is int and a == e) for a, e in zip(answer, expected))


def trials_per_trigger(space: LabelSpace) -> int:
    return space.length if isinstance(space, TokenLabels) else 1


def score_answers(
    space: LabelSpace,
    labels: Sequence[Any],
    records: Sequence[QueryRecord],
    *,
    alpha: Fraction | float = DEFAULT_ALPHA,
) -> BlackBoxResult:
    """Count matches of the trigger records against ``labels`` and run the
    exact test.

    ``labels[j]`` is the label of the trigger with the j-th smallest index.
    A third party re-scoring a transcript calls this with its records.

    Raises:
        EncodingError: the records do not hold exactly one record per label.
    """
    trigger_records = sorted((r for r in records if r.is_trigger), key=lambda r: r.trigger_index)  # type: ignore[arg-type, return-value]
    if len(trigger_records) != len(labels):
        raise EncodingError(
            f"{len(trigger_records)} trigger queries recorded for {len(labels)} revealed triggers"
        )
    per_trigger = trials_per_trigger(space)
    matches = 0
    for record, label in zip(trigger_records, labels):
        if record.answer is not None:
            matches += answer_matches(space, label, record.answer)
    trials = per_trigger * len(labels)
    return BlackBoxResult(
        records=tuple(records),
        trials=trials,
        matches=matches,
        trigger_errors=sum(1 for r in trigger_records if r.error is not None),
        decoy_errors=sum(1 for r in records if not r.is_trigger and r.error is not None),
        test=binomial_test(trials, matches, null_match_probability(space), alpha),
    )


def _ask(suspect: Suspect, batch: npt.NDArray[Any]) -> list[tuple[Any, str | None]]:
    """Answers for a batch; on failure, each input alone, to isolate errors."""
    try:
        return [(answer, None) for answer in suspect.predict(batch)]
    except SuspectError as error:
        if len(batch) == 1:
            return [(None, str(error))]
    results: list[tuple[Any, str | None]] = []
    for row in batch:
        try:
            results.append((suspect.predict(row[None, ...])[0], None))
        except SuspectError as error:
            results.append((None, str(error)))
    return results


def query_suspect(
    suspect: Suspect,
    space: LabelSpace,
    trigger_indices: Sequence[int],
    trigger_inputs: npt.NDArray[Any],
    trigger_labels: Sequence[Any],
    decoys: npt.NDArray[Any],
    *,
    alpha: Fraction | float = DEFAULT_ALPHA,
    batch_size: int = DEFAULT_QUERY_BATCH,
) -> BlackBoxResult:
    """Query ``suspect`` with triggers and decoys shuffled together; score it.

    ``trigger_indices[j]``, ``trigger_inputs[j]``, ``trigger_labels[j]``
    describe trigger j (indices ascending). Decoys must have the triggers'
    shape and dtype. The order is a uniformly random permutation from
    ``secrets.SystemRandom``.

    Raises:
        EncodingError: mismatched lengths, shapes or dtypes.
    """
    count = len(trigger_indices)
    if not (len(trigger_inputs) == len(trigger_labels) == count) or count == 0:
        raise EncodingError("give one input and one label per trigger index, at least one")
    if list(trigger_indices) != sorted(set(trigger_indices)):
        raise EncodingError("trigger indices must be distinct and ascending")
    if len(decoys) and (
        decoys.shape[1:] != trigger_inputs.shape[1:] or decoys.dtype != trigger_inputs.dtype
    ):
        raise EncodingError("decoys must have the triggers' shape and dtype")
    inputs = np.concatenate([trigger_inputs, decoys]) if len(decoys) else trigger_inputs
    roles: list[int | None] = [int(i) for i in trigger_indices] + [None] * len(decoys)
    order = list(range(len(inputs)))
    secrets.SystemRandom().shuffle(order)
    records: list[QueryRecord] = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = inputs[chosen]
        for offset, (row, (answer, error)) in enumerate(zip(chosen, _ask(suspect, batch))):
            records.append(
                QueryRecord(
                    position=start + offset,
                    input_sha256=input_digest(inputs[row]),
                    trigger_index=roles[row],
                    answer=None if answer is None else _json_answer(answer, space),
                    error=error,
                )
            )
    return score_answers(space, trigger_labels, records, alpha=alpha)
