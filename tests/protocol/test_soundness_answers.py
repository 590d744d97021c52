"""Answers a suspect can send that once broke a case: a regression answer
of 1e17 made an upheld bundle unverifiable (the canonical JSON writer and
reader disagreed), and a class answer of 2^60 made every query attempt fail
so that the case was stuck at "revealed". Every answer is now recorded, as a
value or as an error, and re-verifies (specs/dispute.md 8.5, 8.6)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.errors import SuspectError
from secmark.messages.commitment import create_commitment
from secmark.messages.labels import RegressionLabels
from secmark.messages.transcript import MAX_ERROR_TEXT, open_transcript
from secmark.models import CallableSuspect
from secmark.protocol.bundle import verify_bundle
from secmark.triggers import iter_triggers
from tests.protocol.conftest import (
    FAMILY,
    SIZE,
    SUSPECT,
    Committed,
    World,
    memorising_suspect,
)

REGRESSION = RegressionLabels(0.0, 1.0, 0.01)


def _regression_mark(world: World) -> Committed:
    signed = create_commitment(
        world.owner, family=FAMILY, labels=REGRESSION, size=SIZE, model_label="regressor"
    )
    return Committed(world.owner, signed, world.timestamp(signed.digest))


def _regressor(mark: Committed, otherwise: float) -> CallableSuspect:
    table: dict[bytes, float] = {}
    for batch in iter_triggers(mark.keys, mark.signed, range(SIZE)):
        for value, label in zip(batch.inputs, batch.labels):
            table[np.ascontiguousarray(value).tobytes()] = float(label)

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.array(
            [table.get(np.ascontiguousarray(row).tobytes(), otherwise) for row in batch]
        )

    return CallableSuspect(model, output="values", reference=SUSPECT)


@pytest.mark.parametrize("otherwise", [1e17, 2.0**53 + 2, 1e20, -1e300, 5e-324])
def test_huge_regression_answers_keep_an_upheld_bundle_verifiable(
    world: World, otherwise: float
) -> None:
    mark = _regression_mark(world)
    run = world.run_case(mark, _regressor(mark, otherwise))
    assert run.decision.outcome == "upheld"
    report = verify_bundle(run.bundle, world.trust)
    assert report.outcome == "upheld"
    entries = open_transcript(
        run.case.read("transcript.json"), run.arbiter.keys.public_keys
    ).document.entries
    decoy_answers = {e.answer for e in entries if e.trigger_index is None}
    assert decoy_answers == {otherwise}


def test_a_classifier_queried_for_regression_values_matches_nothing(world: World) -> None:
    """A classifier whose class index happens to equal a target (cast to
    float it would match) answers with integers: no value, no match."""
    mark = _regression_mark(world)
    run = world.run_case(mark, _regressor(mark, 0.0), query=False)
    classifier = CallableSuspect(
        lambda batch: np.zeros(len(batch), dtype=np.int64), output="values", reference=SUSPECT
    )
    with pytest.raises(SuspectError, match="a class index is not a regression value"):
        run.arbiter.query(run.case, classifier)


def test_a_class_answer_beyond_the_label_space_is_a_recorded_error(
    world: World, owner_mark: Committed
) -> None:
    """A few answers of 2^60 are recorded as errors; the case is decided and
    its bundle verifies."""
    watermarked = memorising_suspect(owner_mark)
    calls = 0

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        nonlocal calls
        calls += 1
        answers = watermarked.predict(batch).astype(np.int64)
        if calls == 1:
            answers[:3] = 2**60
        return answers

    run = world.run_case(owner_mark, CallableSuspect(model, reference=SUSPECT))
    test = run.decision.test
    assert test.trigger_errors + test.decoy_errors == 3
    entries = open_transcript(
        run.case.read("transcript.json"), run.arbiter.keys.public_keys
    ).document.entries
    assert sum("outside" in (e.error or "") for e in entries) == 3
    assert verify_bundle(run.bundle, world.trust).outcome == run.decision.outcome


def test_a_suspect_answering_only_out_of_range_classes_leaves_the_case_requeryable(
    world: World, owner_mark: Committed
) -> None:
    run = world.run_case(owner_mark, memorising_suspect(owner_mark), query=False)
    garbage = CallableSuspect(
        lambda batch: np.full(len(batch), 2**60, dtype=np.int64), reference=SUSPECT
    )
    with pytest.raises(SuspectError, match="outside"):
        run.arbiter.query(run.case, garbage)
    run.arbiter.query(run.case, memorising_suspect(owner_mark))
    assert run.arbiter.case(run.case.name).stage == "queried"


def test_an_error_longer_than_a_transcript_holds_is_cut_to_fit(
    world: World, owner_mark: Committed
) -> None:
    """A suspect adapter that reports a 10,000-character error cannot make
    the transcript, and with it the bundle, unreadable."""
    watermarked = memorising_suspect(owner_mark)

    class Verbose:
        single = 0

        def predict(self, batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
            if len(batch) > 1:
                raise SuspectError("batch refused")
            self.single += 1
            if self.single <= 3:  # three long failures, within the budget
                raise SuspectError("x" * 10_000)
            return watermarked.predict(batch)

        def describe(self) -> str:
            return SUSPECT

    run = world.run_case(owner_mark, Verbose())  # type: ignore[arg-type]
    entries = open_transcript(
        run.case.read("transcript.json"), run.arbiter.keys.public_keys
    ).document.entries
    assert all(len(e.error or "") <= MAX_ERROR_TEXT for e in entries)
    assert verify_bundle(run.bundle, world.trust).outcome == run.decision.outcome
