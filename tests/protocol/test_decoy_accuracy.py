"""Labelled decoys and the suspect's decoy accuracy (specs/statistics.md 8):
the known labels of a decoy pool are checked, carried by the query plan (a
resumed step keeps them) into the transcript, counted beside the test by the
trigger match rule, recounted by the bundle verifier on the arbiter's word,
and shown by every rendering of the report.

A thief who answers odd-looking queries at random to dodge the triggers
answers in-distribution decoys at random too: the record shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import safetensors.numpy
from jsonschema import Draft202012Validator

from secmark import schemas
from secmark.errors import EncodingError, ProofError, SuspectError
from secmark.messages.families import PoolFamily
from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels, TokenLabels
from secmark.messages.transcript import open_transcript
from secmark.models import CallableSuspect
from secmark.protocol.arbiter import QUERY_PLAN_FILE, Arbiter
from secmark.protocol.bundle import examine_bundle, verify_bundle
from secmark.protocol.case import Case
from secmark.protocol.checks import Basis, CheckResult
from secmark.protocol.owner import answer_challenge
from secmark.protocol.querying import BlackBoxResult, QueryPlan, checked_decoy_labels, input_digest
from secmark.report import render_exhibit, render_text, report_data
from secmark.triggers import CommittedPool
from tests.protocol.conftest import (
    CHALLENGE_SIZE,
    SUSPECT,
    Committed,
    World,
    bundle_with,
    memorising_suspect,
    resign,
)

OWNER_POOL = 1024
"""Items the owner's triggers are drawn from: enough that few of the 48
challenged triggers share an item."""

DECOY_POOL = 2 * CHALLENGE_SIZE
"""Items of the arbiter's decoy pool; the policy sends one decoy per trigger."""

SHAPE = (1, 8, 8)


@dataclass
class Disputes:
    world: World
    committed: Committed
    pool: CommittedPool
    items: list[npt.NDArray[Any]]
    labels: npt.NDArray[np.int64]
    runs: dict[str, tuple[Arbiter, Case, BlackBoxResult]] = field(default_factory=dict)
    """The decided disputes, by suspect: "knowing" and "guessing"."""

    def revealed(self, folder: str) -> tuple[Arbiter, Case]:
        """A fresh case at stage "revealed", at an arbiter working in ``folder``."""
        arbiter = self.world.arbiter(folder=folder)
        case = arbiter.file_claim(self.world.claim(self.committed, arbiter=arbiter.identity))
        challenge = arbiter.challenge(case)
        reveal = answer_challenge(
            self.world.owner, self.committed.signed, challenge, arbiter.identity, pool=self.pool
        )
        arbiter.receive_reveal(case, reveal)
        return arbiter, case

    def knowing_suspect(self, arbiter: Arbiter, case: Case) -> CallableSuspect:
        """A model that answers every query correctly: the triggers with their
        committed labels, the decoy pool's items with their known labels."""
        table = {t.input.tobytes(): int(t.label) for t in arbiter.triggers_of(case)}
        table.update((item.tobytes(), int(label)) for item, label in zip(self.items, self.labels))

        def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
            return np.array([table.get(row.tobytes(), 0) for row in batch], dtype=np.int64)

        return CallableSuspect(model, reference=SUSPECT)


@pytest.fixture(scope="module")
def disputes(tmp_path_factory: pytest.TempPathFactory) -> Disputes:
    """Two decided disputes on one pool-family commitment, each at its own
    arbiter folder, with the same labelled decoy pool: one suspect answers
    every query correctly, the other answers a random class to every query."""
    world = World(tmp_path_factory.mktemp("decoys"))
    rng = np.random.default_rng(11)
    owner_items = rng.random((OWNER_POOL, *SHAPE), dtype=np.float32)
    committed, pool = world.commit_pool(PoolFamily(OWNER_POOL, SHAPE, "float32"), owner_items)
    items = list(rng.random((DECOY_POOL, *SHAPE), dtype=np.float32))
    labels = rng.integers(0, 10, DECOY_POOL)
    disputes = Disputes(world, committed, pool, items, labels)
    for name in ("knowing", "guessing"):
        arbiter, case = disputes.revealed(name)
        suspect = (
            disputes.knowing_suspect(arbiter, case)
            if name == "knowing"
            else memorising_suspect(otherwise="random")
        )
        result = arbiter.query(case, suspect, decoy_pool=items, decoy_labels=labels)
        arbiter.decide(case)
        disputes.runs[name] = (arbiter, case, result)
    return disputes


def _verdict(arbiter: Arbiter, case: Case) -> Any:
    return examine_bundle(case.read("bundle.json"), arbiter.trust)


# -- the labels an arbiter is given -------------------------------------------------

CLASSES = ClassLabels(10)
REGRESSION = RegressionLabels(0.0, 1.0, 0.01)


@pytest.mark.parametrize(
    "space, labels, message",
    [
        (CLASSES, np.arange(3), "3 decoy labels for 4 decoy-pool items"),
        (CLASSES, np.array([0, 1, 2, 10]), "item 3 is 10, not a class in"),
        (CLASSES, np.array([0, -1, 2, 3]), "item 1 is -1, not a class in"),
        (CLASSES, np.array([0.0, 1.0, 2.0, 3.0]), "class labels are integers"),
        (CLASSES, np.zeros((4, 1), dtype=np.int64), "one-dimensional"),
        (CLASSES, np.array(["0", "1", "2", "3"]), "array of numbers"),
        (CLASSES, np.array([True, False, True, False]), "array of numbers"),
        (CLASSES, [0, "one", 2, 3], "array of numbers"),
        (REGRESSION, np.array([0.1, np.nan, 0.2, 0.3]), "item 1 is nan, not a finite value"),
        (REGRESSION, np.array([0.1, 0.2, np.inf, 0.3]), "item 2 is inf, not a finite value"),
        (REGRESSION, np.array([0.1, 0.2, 0.3, 1.5]), "item 3 is 1.5, not a finite value"),
        (REGRESSION, np.arange(4), "regression labels are floats"),
        (TokenLabels(100, 3), np.arange(4), "token labels takes none"),
    ],
)
def test_decoy_labels_are_refused_unless_one_label_of_the_space_per_item(
    space: LabelSpace, labels: Any, message: str
) -> None:
    with pytest.raises(EncodingError, match=message):
        checked_decoy_labels(space, labels, 4)


def test_accepted_decoy_labels_are_plain_numbers() -> None:
    classes = checked_decoy_labels(CLASSES, np.array([0, 9, 3], dtype=np.uint8), 3)
    assert classes == (0, 9, 3) and all(type(label) is int for label in classes)
    values = checked_decoy_labels(REGRESSION, np.array([0.0, 1.0, 0.25], dtype=np.float32), 3)
    assert values == (0.0, 1.0, 0.25) and all(type(label) is float for label in values)


def test_the_arbiter_checks_labels_before_it_sends_anything(disputes: Disputes) -> None:
    arbiter, case = disputes.revealed("checked")
    sent: list[int] = []

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        sent.append(len(batch))
        return np.zeros(len(batch), dtype=np.int64)

    suspect = CallableSuspect(model, reference=SUSPECT)
    with pytest.raises(EncodingError, match="give the decoy pool with them"):
        arbiter.query(case, suspect, decoy_labels=disputes.labels)
    with pytest.raises(EncodingError, match=f"{DECOY_POOL - 1} decoy labels for {DECOY_POOL}"):
        arbiter.query(case, suspect, decoy_pool=disputes.items, decoy_labels=disputes.labels[1:])
    assert not sent and not (case.folder / QUERY_PLAN_FILE).exists()


# -- what the suspect's answers to labelled decoys show ------------------------------


def test_decoy_accuracy_separates_a_competent_suspect_from_one_answering_at_random(
    disputes: Disputes,
) -> None:
    known = {input_digest(item): int(label) for item, label in zip(disputes.items, disputes.labels)}
    for name in ("knowing", "guessing"):
        arbiter, case, result = disputes.runs[name]
        transcript = open_transcript(case.read("transcript.json"), arbiter.keys.public_keys)
        decoys = [entry for entry in transcript.document.entries if not entry.is_trigger]
        assert len(decoys) == CHALLENGE_SIZE
        # A decoy drawn from pool item j carries label j; a trigger carries none.
        assert all(entry.decoy_label == known[entry.input_sha256] for entry in decoys)
        assert all(e.decoy_label is None for e in transcript.document.entries if e.is_trigger)
        verdict = _verdict(arbiter, case)
        assert verdict.checks_passed
        figures = verdict.figures
        test = json.loads(case.read("state.json"))["record"]["test"]
        stated = (test["decoys_labelled"], test["decoys_correct"])
        assert stated == (result.decoys_labelled, result.decoys_correct)
        assert (figures.decoys_labelled, figures.decoys_correct) == stated
    knowing, guessing = disputes.runs["knowing"][2], disputes.runs["guessing"][2]
    assert knowing.decoys_labelled == knowing.decoys_correct == CHALLENGE_SIZE
    assert knowing.test.decision and not guessing.test.decision
    # Binom(48, 1/10) reaches 20 with probability below 1e-7.
    assert guessing.decoys_labelled == CHALLENGE_SIZE and guessing.decoys_correct < 20
    for name, outcome in (("knowing", "upheld"), ("guessing", "rejected")):
        arbiter, case, result = disputes.runs[name]
        report = verify_bundle(case.read("bundle.json"), arbiter.trust)
        assert report.outcome == outcome
        assert report.figures is not None
        assert report.figures.decoys_correct == result.decoys_correct


def test_a_resumed_query_step_keeps_the_labels_of_its_stored_plan(disputes: Disputes) -> None:
    arbiter, case = disputes.revealed("resumed")
    knowing = disputes.knowing_suspect(arbiter, case)
    answered = 0

    def flaky(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        nonlocal answered
        answered += len(batch)
        if answered > 64:  # the connection drops after the first batch
            raise ConnectionError("connection reset by peer")
        return knowing.predict(batch)

    suspect = CallableSuspect(flaky, reference=SUSPECT)
    with pytest.raises(SuspectError, match="connection reset"):
        arbiter.query(case, suspect, decoy_pool=disputes.items, decoy_labels=disputes.labels)
    stored = QueryPlan.from_bytes(case.read(QUERY_PLAN_FILE))
    known = {input_digest(item): int(label) for item, label in zip(disputes.items, disputes.labels)}
    planned = {
        input_digest(stored.inputs[p]): label
        for p, label in enumerate(stored.labels)
        if stored.roles[p] is None
    }
    assert planned and all(label == known[digest] for digest, label in planned.items())

    # Other labels on resume: the stored plan wins, its labels are recorded.
    relabelled = (disputes.labels + 1) % 10
    result = arbiter.query(case, knowing, decoy_pool=disputes.items, decoy_labels=relabelled)
    entries = open_transcript(case.read("transcript.json"), arbiter.keys.public_keys).document
    recorded = {e.input_sha256: e.decoy_label for e in entries.entries if not e.is_trigger}
    assert recorded == planned
    assert result.decoys_correct == result.decoys_labelled == CHALLENGE_SIZE


def test_query_plans_store_labels_and_read_plans_without_them() -> None:
    inputs = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)
    for labels in ([7, None, 2], [0.25, 0.5, None]):
        plan = QueryPlan.shuffled([5], inputs[:1], inputs[1:], labels)
        again = QueryPlan.from_bytes(plan.to_bytes())
        assert again.labels == plan.labels and again.roles == plan.roles
        assert [type(label) for label in again.labels] == [type(label) for label in plan.labels]
    roles = np.array([5, -1, -1, -1], dtype=np.int64)
    older = QueryPlan.from_bytes(safetensors.numpy.save({"inputs": inputs, "roles": roles}))
    assert older.labels == (None,) * 4
    for damaged in (np.array([3, -1, -1, -1]), np.array([-1, -2, 0, 0]), np.zeros(3, np.int64)):
        data = {"inputs": inputs, "roles": roles, "decoy_labels": damaged.astype(np.int64)}
        with pytest.raises(EncodingError):
            QueryPlan.from_bytes(safetensors.numpy.save(data))


# -- what the bundle verifier recounts -----------------------------------------------


def _change(path: str, change: Any) -> Any:
    def apply(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = payload
        for name in parents:
            target = target[name]
        target[last] = change(target[last])

    return apply


@pytest.mark.parametrize(
    "path, change",
    [("test.decoys_correct", lambda n: n - 1), ("test.decoys_labelled", lambda n: n + 1)],
)
def test_a_verdict_stating_another_decoy_accuracy_is_refused(
    disputes: Disputes, path: str, change: Any
) -> None:
    arbiter, case, _ = disputes.runs["knowing"]
    verdict = resign(case.read("verdict.json"), arbiter.keys, _change(path, change))
    tampered = bundle_with(case.read("bundle.json"), verdict=verdict)
    report = examine_bundle(tampered, arbiter.trust)
    assert report.failure is not None and report.failure.check == "verdict-figures"
    with pytest.raises(ProofError, match="decoy accuracy"):
        verify_bundle(tampered, arbiter.trust)


def _relabel(wanted: str) -> Any:
    """A change of the transcript payload: the first decoy's label becomes
    another class ("decoy") or class 10 of ten ("outside"), or the first
    trigger gets a decoy label ("trigger")."""

    def apply(payload: dict[str, Any]) -> None:
        trigger = wanted == "trigger"
        entry = next(e for e in payload["entries"] if (e["trigger_index"] is not None) == trigger)
        if wanted == "decoy":
            entry["decoy_label"] = (entry["decoy_label"] + 1) % 10
        else:
            entry["decoy_label"] = 3 if trigger else 10

    return apply


@pytest.mark.parametrize(
    "wanted, error, check",
    [
        ("decoy", ProofError, "verdict-figures"),  # a correct answer is now wrong
        ("trigger", EncodingError, "transcript"),  # a trigger has no decoy label
        ("outside", EncodingError, "verdict-figures"),  # class 10 of ten classes
    ],
)
def test_a_transcript_whose_decoy_labels_change_the_figures_is_refused(
    disputes: Disputes, wanted: str, error: type[Exception], check: str
) -> None:
    arbiter, case, _ = disputes.runs["knowing"]
    transcript = resign(case.read("transcript.json"), arbiter.keys, _relabel(wanted))
    tampered = bundle_with(case.read("bundle.json"), transcript=transcript)
    report = examine_bundle(tampered, arbiter.trust)
    assert isinstance(report.error, error)
    assert report.failure is not None and report.failure.check == check


def test_the_decoy_labels_rest_on_the_arbiters_word(disputes: Disputes) -> None:
    arbiter, case, _ = disputes.runs["knowing"]
    report = _verdict(arbiter, case)
    (record,) = [check for check in report.checks if check.name == "decoy-labels"]
    assert record.rests_on is Basis.ARBITER and record.result is CheckResult.NOT_CHECKED
    assert f"{CHALLENGE_SIZE} of the {CHALLENGE_SIZE} decoys carry a known label" in (
        record.evidence
    )
    assert "decoy inputs are not in the bundle" in record.evidence


# -- the reports ------------------------------------------------------------------------


def test_every_rendering_shows_the_decoy_accuracy_with_its_exact_interval(
    disputes: Disputes,
) -> None:
    arbiter, case, _ = disputes.runs["knowing"]
    report = _verdict(arbiter, case)
    # Clopper-Pearson for 48 of 48: (0.025)^(1/48) = 0.92603, written rounded down.
    sentence = "decoys with known labels: 48 of 48 answered correctly (100.0 %, 95 % interval 92.6–100.0 %)"
    assert any(line.startswith(sentence) for line in render_text(report))
    data = report_data(report, exit_code=0)
    Draft202012Validator(schemas.load("bundle-report")).validate(data)
    figures = data["figures"]
    assert (figures["decoys_labelled"], figures["decoys_correct"]) == (48, 48)
    assert 0.926 < figures["decoy_ci_low"] < 0.9261 and figures["decoy_ci_high"] == 1.0
    assert sentence in render_exhibit(report, generator="test")

    arbiter, case, result = disputes.runs["guessing"]
    text = "\n".join(render_text(_verdict(arbiter, case)))
    assert f"{result.decoys_correct} of 48 answered correctly" in text
