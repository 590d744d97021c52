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
reported, never dropped. But a suspect that fails more than a few queries
(:func:`failure_budget`) was not really queried: the query step then stops
with a :class:`~secmark.errors.SuspectError` and gives no figures at all,
so an unreachable or misdescribed endpoint never becomes a "rejected".

What is sent is fixed first, as a :class:`QueryPlan` (inputs and order), so
that a query step that stopped can be resumed with exactly the same inputs
in the same order: a suspect that sees a query step twice sees every input
twice, and repetition tells it nothing about which inputs are triggers.

Decoys drawn from a labelled decoy pool carry their known label
(:func:`checked_decoy_labels`); the suspect's accuracy on them is counted
beside the test, by the trigger match rule, and plays no part in the
decision (``specs/statistics.md`` 8).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import safetensors.numpy

from secmark.errors import EncodingError, SuspectError
from secmark.messages.labels import (
    ClassLabels,
    LabelSpace,
    RegressionLabels,
    ResponseLabels,
    TokenLabels,
)
from secmark.messages.responses import NO_RESPONSE
from secmark.messages.transcript import MAX_ERROR_TEXT, TranscriptEntry
from secmark.messages.verdict import TestFigures
from secmark.models.base import Suspect
from secmark.stats import DEFAULT_ALPHA, BinomialTestResult, binomial_test, null_match_probability

__all__ = [
    "BlackBoxResult",
    "DecoyLabel",
    "QueryPlan",
    "QueryRecord",
    "answer_matches",
    "checked_decoy_labels",
    "failure_budget",
    "input_digest",
    "query_suspect",
    "run_plan",
    "score_answers",
]

DEFAULT_QUERY_BATCH = 64

MIN_FAILURE_BUDGET = 8
"""Failed queries a query step tolerates (a few refusals or timeouts), if
they are fewer than half of its queries."""

FAILURE_FRACTION = 16
"""Beyond the minimum, one failed query in this many is tolerated."""

# Bound on a stored plan: MAX_QUERIES inputs of up to 16 MiB each would be
# absurd; a plan is the inputs of one challenge and its decoys.
_MAX_PLAN_SIZE = 1 << 32


QueryRecord = TranscriptEntry
"""One query as sent: ``answer`` or ``error`` is set, never both. ``answer``
is JSON-ready: an int (class), a float (regression value) or a list of ints
(token ids). It is the transcript's entry itself, so records are written and
re-read without conversion."""

DecoyLabel = int | float
"""The known label of a decoy: a class (int) or a regression value (float)."""


@dataclass(frozen=True)
class BlackBoxResult:
    """The transcript's records and the verdict statistics they give.

    ``decoys_labelled`` counts the decoys with a known label and
    ``decoys_correct`` those of them answered with it (by
    :func:`answer_matches`, the triggers' rule): evidence beside the test,
    never part of it.
    """

    records: tuple[QueryRecord, ...]
    trials: int
    matches: int
    trigger_errors: int
    decoy_errors: int
    decoys_labelled: int
    decoys_correct: int
    test: BinomialTestResult

    def figures(self) -> TestFigures:
        """The figures a verdict states for this result."""
        test = self.test
        return TestFigures(
            trials=self.trials,
            matches=self.matches,
            p0=test.p0_exact,
            alpha=test.alpha_exact,
            threshold=test.threshold,
            p_value=test.p_value,
            log2_p_value=test.log2_p_value,
            ci_low=test.ci_low,
            ci_high=test.ci_high,
            trigger_errors=self.trigger_errors,
            decoy_errors=self.decoy_errors,
            decoys_labelled=self.decoys_labelled,
            decoys_correct=self.decoys_correct,
        )


def input_digest(value: npt.NDArray[Any]) -> str:
    """Hex SHA-256 of an input's C-order bytes (little-endian)."""
    array = np.ascontiguousarray(value)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(array.tobytes()).hexdigest()


def _json_answer(value: Any, space: LabelSpace) -> int | float | list[int]:
    """``value`` as the JSON answer a transcript records, if it is an answer
    of the label space's kind: an int in [0, K) for classes (and for
    responses, :data:`~secmark.messages.responses.NO_RESPONSE` for an answer
    that gives none of them, which matches no label), a finite binary64
    number for a regression target, ``length`` ints in [0, V) for tokens.

    Raises:
        SuspectError: an answer of the wrong kind (an integer or a bool for a
            regression target, a float or a bool for a class or a token id),
            NaN or an infinity, a class outside [0, K), a token id outside
            [0, V), a token sequence of another length than the labels', or
            anything else no transcript could hold. The caller records it as
            the query's error: it matches nothing, so it is never converted
            into an answer of another kind (class 3 into the value 3.0), and
            it cannot leave a transcript unwritable (2^60 is no JSON number).
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    boolean = isinstance(value, (bool, np.bool_))
    integer = not boolean and isinstance(value, (int, np.integer))
    if isinstance(space, ResponseLabels) and integer and int(value) == NO_RESPONSE:
        return NO_RESPONSE
    if isinstance(space, ClassLabels):
        if not integer:
            raise SuspectError(
                f"the suspect answered {type(value).__name__} {value!r:.40} where a class "
                f"label is asked: an integer in [0, {space.num_classes})"
            )
        if not 0 <= int(value) < space.num_classes:
            raise SuspectError(
                f"the suspect answered class {int(value)!r:.40}, outside [0, {space.num_classes})"
            )
        return int(value)
    if isinstance(space, RegressionLabels):
        if boolean or not isinstance(value, (float, np.floating)):
            raise SuspectError(
                f"the suspect answered {type(value).__name__} {value!r:.40} where a regression "
                "value is asked: a float (an integer answer is a class, not a value)"
            )
        number = float(value)
        if not np.isfinite(number) or (type(value) is not float and type(value)(number) != value):
            raise SuspectError(
                f"the suspect answered {value!r:.40}, which is not a finite binary64 number"
            )
        return number
    try:
        tokens = np.asarray(value)
    except (ValueError, TypeError):
        tokens = np.asarray(None)
    if tokens.dtype.kind not in "iu":
        raise SuspectError(
            f"the suspect answered {type(value).__name__} (dtype {tokens.dtype}) where token "
            "ids are asked: integers"
        )
    flat = tokens.reshape(-1)
    if len(flat) != space.length:
        raise SuspectError(
            f"the suspect answered {len(flat)} token ids where the labels have {space.length}"
        )
    if len(flat) and not (0 <= flat.min() and flat.max() < space.vocab_size):
        raise SuspectError(
            f"the suspect answered a token id outside [0, {space.vocab_size}): "
            f"{int(flat.min())} to {int(flat.max())}"
        )
    return [int(token) for token in flat]


def answer_matches(space: LabelSpace, label: Any, answer: float | list[int]) -> int:
    """How many trials of one trigger matched (0 or 1; up to L for token labels).

    An answer of the wrong kind for the label space (a float or a list for
    classes, a list for a regression target, a scalar for token labels)
    matches nothing: a transcript is data, not a promise of well-typed answers.
    A regression answer may be an int: canonical JSON writes the float 3.0 as
    ``3``, which reads back as the int 3 (the query step records no int for a
    regression target, :func:`_json_answer`). A non-finite number matches
    nothing.
    """
    if isinstance(space, ClassLabels):
        return int(type(answer) is int and answer == int(label))
    if isinstance(space, RegressionLabels):
        if type(answer) not in (int, float) or (type(answer) is float and not np.isfinite(answer)):
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


def checked_decoy_labels(
    space: LabelSpace, labels: npt.ArrayLike, items: int
) -> tuple[DecoyLabel, ...]:
    """``labels`` checked as the known labels of a decoy pool of ``items``
    items: one per item, in the pool's order, each a label of ``space``.

    Classes take an integer array of values in [0, K); a regression target
    a float array of finite values in [lo, hi]. Token labels take none.

    Raises:
        EncodingError: a token label space; not a one-dimensional array of
            numbers; another count than ``items``; floats for classes or
            integers for a regression target; a label outside the space
            (NaN and the infinities included). The message names the first
            wrong item and what to give instead.
    """
    if isinstance(space, TokenLabels):
        raise EncodingError(
            "decoy labels are known classes or regression values; a commitment with token "
            "labels takes none: query without decoy labels"
        )
    try:
        array = np.asarray(labels)
    except (ValueError, TypeError):
        array = np.asarray(None)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise EncodingError(
            "decoy labels are a one-dimensional array of numbers, one per decoy-pool item, "
            f"not an array of shape {array.shape} and dtype {array.dtype}"
        )
    if len(array) != items:
        raise EncodingError(
            f"{len(array)} decoy labels for {items} decoy-pool items: give exactly one label "
            "per item, in the pool's order"
        )
    if isinstance(space, ClassLabels):
        if array.dtype.kind == "f":
            raise EncodingError(
                f"class labels are integers, but the decoy labels are {array.dtype}: save "
                "them as an integer array"
            )
        wrong = np.flatnonzero((array < 0) | (array >= space.num_classes))
        if len(wrong):
            item = int(wrong[0])
            raise EncodingError(
                f"the decoy label of item {item} is {array[item]}, not a class in "
                f"[0, {space.num_classes}): {len(wrong)} label(s) outside the label space"
            )
        return tuple(int(value) for value in array)
    if array.dtype.kind != "f":
        raise EncodingError(
            f"regression labels are floats, but the decoy labels are {array.dtype}: save them "
            "as a float array"
        )
    values = array.astype(np.float64)
    wrong = np.flatnonzero(~((values >= space.lo) & (values <= space.hi)))  # NaN is neither
    if len(wrong):
        item = int(wrong[0])
        raise EncodingError(
            f"the decoy label of item {item} is {float(values[item])!r}, not a finite value in "
            f"[{space.lo!r}, {space.hi!r}]: {len(wrong)} label(s) outside the label space"
        )
    return tuple(float(value) for value in values)


def _check_decoy_label(space: LabelSpace, label: DecoyLabel, position: int) -> None:
    """Raises:
    EncodingError: ``label``, recorded at ``position``, is not a label of
        ``space`` (as :func:`checked_decoy_labels` requires of each)."""
    if isinstance(space, ClassLabels):
        known = type(label) is int and 0 <= label < space.num_classes
    elif isinstance(space, RegressionLabels):
        number = type(label) is int or (type(label) is float and math.isfinite(label))
        known = number and space.lo <= label <= space.hi
    else:
        known = False
    if not known:
        raise EncodingError(
            f"the decoy label {label!r:.40} at position {position} is not a label of the "
            f"commitment's {space.KIND} label space"
        )


def score_answers(
    space: LabelSpace,
    labels: Sequence[Any],
    records: Sequence[QueryRecord],
    *,
    alpha: Fraction | float = DEFAULT_ALPHA,
    p0: Fraction | None = None,
) -> BlackBoxResult:
    """Count matches of the trigger records against ``labels`` and run the
    exact test, at the null match probability of ``space`` unless ``p0``
    states another (a serving policy's marked answers have their own,
    ``specs/serving.md`` 4).

    ``labels[j]`` is the label of the trigger with the j-th smallest index.
    A third party re-scoring a transcript calls this with its records. The
    decoys with a known label are counted too (``decoys_labelled``), and
    those answered with it by the same rule (``decoys_correct``).

    Raises:
        EncodingError: the records do not hold exactly one record per label,
            or a decoy label is not a label of ``space``.
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
    labelled = correct = 0
    for record in records:
        if record.decoy_label is not None:
            _check_decoy_label(space, record.decoy_label, record.position)
            labelled += 1
            if record.answer is not None:
                correct += answer_matches(space, record.decoy_label, record.answer)
    trials = per_trigger * len(labels)
    return BlackBoxResult(
        records=tuple(records),
        trials=trials,
        matches=matches,
        trigger_errors=sum(1 for r in trigger_records if r.error is not None),
        decoy_errors=sum(1 for r in records if not r.is_trigger and r.error is not None),
        decoys_labelled=labelled,
        decoys_correct=correct,
        test=binomial_test(
            trials, matches, null_match_probability(space) if p0 is None else p0, alpha
        ),
    )


def failure_budget(queries: int) -> int:
    """The failed queries a query step of ``queries`` queries tolerates:
    ``max(MIN_FAILURE_BUDGET, queries // FAILURE_FRACTION)``, and always
    fewer than half of them, ``(queries - 1) // 2``. Steps of few queries
    decide when p0 is small (a language model's targets): a suspect that
    failed half of them or more was not reached, and must get no verdict."""
    return min(max(MIN_FAILURE_BUDGET, queries // FAILURE_FRACTION), max(0, (queries - 1) // 2))


@dataclass(frozen=True)
class QueryPlan:
    """Every input a suspect is sent, in the order sent.

    ``inputs[p]`` is sent at position ``p``; ``roles[p]`` is its trigger
    index, or None for a decoy; ``labels[p]`` the known label of a decoy,
    None for a trigger and for a decoy without one.
    """

    inputs: npt.NDArray[Any]
    roles: tuple[int | None, ...]
    labels: tuple[DecoyLabel | None, ...]

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.roles) or not self.roles:
            raise EncodingError("a query plan holds one role per input, at least one")
        indices = [role for role in self.roles if role is not None]
        if len(indices) != len(set(indices)) or any(i < 0 for i in indices):
            raise EncodingError("a query plan names each trigger index once")
        if len(self.labels) != len(self.roles) or any(
            role is not None and label is not None for role, label in zip(self.roles, self.labels)
        ):
            raise EncodingError("a query plan holds one label or None per input, None for triggers")

    @classmethod
    def shuffled(
        cls,
        trigger_indices: Sequence[int],
        trigger_inputs: npt.NDArray[Any],
        decoys: npt.NDArray[Any],
        decoy_labels: Sequence[DecoyLabel | None] | None = None,
    ) -> QueryPlan:
        """Triggers and decoys in an order drawn from ``secrets.SystemRandom``;
        ``decoy_labels[j]`` is the known label of decoy j, or None.

        Raises:
            EncodingError: mismatched lengths, shapes or dtypes.
        """
        if len(trigger_inputs) != len(trigger_indices) or not len(trigger_indices):
            raise EncodingError("give one input per trigger index, at least one")
        if decoy_labels is not None and len(decoy_labels) != len(decoys):
            raise EncodingError("give one label (or None) per decoy")
        if len(decoys) and (
            decoys.shape[1:] != trigger_inputs.shape[1:] or decoys.dtype != trigger_inputs.dtype
        ):
            raise EncodingError("decoys must have the triggers' shape and dtype")
        inputs = np.concatenate([trigger_inputs, decoys]) if len(decoys) else trigger_inputs
        roles: list[int | None] = [int(i) for i in trigger_indices] + [None] * len(decoys)
        labels = [None] * len(trigger_indices) + list(decoy_labels or [None] * len(decoys))
        order = list(range(len(inputs)))
        secrets.SystemRandom().shuffle(order)
        return cls(
            np.ascontiguousarray(inputs[order]),
            tuple(roles[i] for i in order),
            tuple(labels[i] for i in order),
        )

    def to_bytes(self) -> bytes:
        """The plan as safetensors bytes: decoys have role -1; known decoy
        labels, if any, are a tensor ``decoy_labels`` (int64 classes with -1
        for none, or float64 values with NaN for none)."""
        roles = np.array([-1 if r is None else r for r in self.roles], dtype=np.int64)
        tensors = {"inputs": np.ascontiguousarray(self.inputs), "roles": roles}
        known = [label for label in self.labels if label is not None]
        if known and all(type(label) is int for label in known):
            tensors["decoy_labels"] = np.array(
                [-1 if label is None else label for label in self.labels], dtype=np.int64
            )
        elif known:
            tensors["decoy_labels"] = np.array(
                [math.nan if label is None else label for label in self.labels], dtype=np.float64
            )
        return safetensors.numpy.save(tensors)

    @classmethod
    def from_bytes(cls, data: bytes) -> QueryPlan:
        """The plan :meth:`to_bytes` wrote; a plan without ``decoy_labels``
        (none known, or written before decoys had labels) has none.

        Raises:
            EncodingError: not a plan this module wrote.
        """
        damaged = EncodingError("the stored query plan is damaged")
        if len(data) > _MAX_PLAN_SIZE:
            raise EncodingError("the stored query plan is too large")
        try:
            tensors = safetensors.numpy.load(data)
        except Exception:  # noqa: BLE001 - the safetensors parser fails in many ways on bad bytes
            raise damaged from None
        if not {"inputs", "roles"} <= set(tensors) <= {"inputs", "roles", "decoy_labels"}:
            raise damaged
        roles = tensors["roles"]
        if (
            roles.dtype != np.int64
            or roles.ndim != 1
            or len(roles) != len(tensors["inputs"])
            or (roles < -1).any()
        ):
            raise damaged
        labels: list[DecoyLabel | None] = [None] * len(roles)
        stored = tensors.get("decoy_labels")
        if stored is not None:
            if stored.ndim != 1 or len(stored) != len(roles):
                raise damaged
            if stored.dtype == np.int64 and not (stored < -1).any():
                labels = [None if value < 0 else int(value) for value in stored]
            elif stored.dtype == np.float64 and not np.isinf(stored).any():
                labels = [None if math.isnan(value) else float(value) for value in stored]
            else:
                raise damaged
        return cls(
            tensors["inputs"], tuple(None if r < 0 else int(r) for r in roles), tuple(labels)
        )

    def check_triggers(self, inputs_by_index: Mapping[int, npt.NDArray[Any]], decoys: int) -> None:
        """Check that the plan sends exactly these triggers and ``decoys`` decoys.

        Raises:
            EncodingError: another set of triggers, other inputs, or another
                number of decoys.
        """
        planned = {role: p for p, role in enumerate(self.roles) if role is not None}
        if set(planned) != set(inputs_by_index) or len(self.roles) - len(planned) != decoys:
            raise EncodingError("the stored query plan is for other triggers or decoys")
        for index, value in inputs_by_index.items():
            if input_digest(self.inputs[planned[index]]) != input_digest(value):
                raise EncodingError(f"the stored query plan sends another input as trigger {index}")


def run_plan(
    suspect: Suspect,
    space: LabelSpace,
    plan: QueryPlan,
    *,
    answered: Mapping[int, QueryRecord] | None = None,
    batch_size: int = DEFAULT_QUERY_BATCH,
    on_batch: Callable[[Sequence[QueryRecord]], None] | None = None,
) -> tuple[QueryRecord, ...]:
    """Send the plan's inputs that ``answered`` has no answer for; return
    one record per position.

    A batch the suspect fails is retried one input at a time, to isolate
    the inputs that fail; ``on_batch`` receives each batch's new records
    (to store them, so a resumed step does not pay for them twice). Each
    record carries the plan's decoy label for its position.

    Raises:
        SuspectError: more queries failed than :func:`failure_budget`
            allows; the message quotes the first failure. No figures can be
            drawn from such a step: query again once the suspect answers.
        EncodingError: a decoy label of the plan is not a label of
            ``space``; an answer in ``answered`` is not for the input (or
            the label) the plan sends at its position.
    """
    for position, label in enumerate(plan.labels):
        if label is not None:
            _check_decoy_label(space, label, position)
    records: dict[int, QueryRecord] = {p: r for p, r in (answered or {}).items() if r.error is None}
    for position, kept in records.items():
        if (
            position != kept.position
            or not 0 <= position < len(plan.roles)
            or kept.trigger_index != plan.roles[position]
            or kept.decoy_label != plan.labels[position]
            or kept.input_sha256 != input_digest(plan.inputs[position])
        ):
            raise EncodingError(
                f"the stored answer at position {position} is not for the input the plan "
                "sends there: the stored query progress is damaged"
            )
    budget = failure_budget(len(plan.roles))
    failures: list[str] = []

    def record(position: int, answer: Any, error: str | None) -> QueryRecord:
        if error is None:
            try:
                answer = _json_answer(answer, space)
            except SuspectError as wrong:
                answer, error = None, str(wrong)
        if error is not None:
            # Cut to what a transcript holds, so any error can be recorded.
            error = error[:MAX_ERROR_TEXT]
            failures.append(error)
        return QueryRecord(
            position=position,
            input_sha256=input_digest(plan.inputs[position]),
            trigger_index=plan.roles[position],
            answer=answer,
            error=error,
            decoy_label=plan.labels[position],
        )

    def stop() -> SuspectError:
        return SuspectError(
            f"{len(failures)} queries failed, more than the {budget} a query step of "
            f"{len(plan.roles)} queries tolerates; the first failure: {failures[0]}. "
            "Nothing was decided: fix the suspect's description or wait for it, then query again"
        )

    pending = [p for p in range(len(plan.roles)) if p not in records]
    for start in range(0, len(pending), batch_size):
        chosen = pending[start : start + batch_size]
        fresh: list[QueryRecord] = []
        try:
            answers = suspect.predict(plan.inputs[chosen])
            fresh = [record(p, answer, None) for p, answer in zip(chosen, answers)]
        except SuspectError as error:
            if len(chosen) == 1:
                fresh = [record(chosen[0], None, str(error))]
            else:
                for p in chosen:
                    try:
                        fresh.append(record(p, suspect.predict(plan.inputs[p][None, ...])[0], None))
                    except SuspectError as row_error:
                        fresh.append(record(p, None, str(row_error)))
                    if len(failures) > budget:
                        break
        records.update((r.position, r) for r in fresh)
        if on_batch is not None:
            on_batch([r for r in fresh if r.error is None])
        if len(failures) > budget:
            raise stop()
    return tuple(records[p] for p in range(len(plan.roles)))


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
    ``secrets.SystemRandom`` (:meth:`QueryPlan.shuffled`).

    Raises:
        EncodingError: mismatched lengths, shapes or dtypes.
        SuspectError: too many queries failed (:func:`run_plan`).
    """
    if len(trigger_labels) != len(trigger_indices):
        raise EncodingError("give one input and one label per trigger index, at least one")
    if list(trigger_indices) != sorted(set(trigger_indices)):
        raise EncodingError("trigger indices must be distinct and ascending")
    plan = QueryPlan.shuffled(trigger_indices, trigger_inputs, decoys)
    records = run_plan(suspect, space, plan, batch_size=batch_size)
    return score_answers(space, trigger_labels, records, alpha=alpha)
