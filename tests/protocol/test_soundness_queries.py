"""Attacks on the query step: decoys that give triggers away, resumed steps
that send fresh decoys, and suspects that were never really queried.

Each test reproduces an attack that once bent a verdict or revealed the
triggers, and fails when its defence (specs/dispute.md 8.5 step 4) is
removed.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.encoding import canonical_json
from secmark.errors import EncodingError, ProtocolError, SuspectError
from secmark.messages.commitment import create_commitment
from secmark.messages.families import OverlayFamily, PoolFamily
from secmark.messages.labels import ClassLabels
from secmark.messages.reveal import RevealContents
from secmark.messages.transcript import open_transcript
from secmark.models import CallableSuspect, OipSuspect
from secmark.protocol.arbiter import QUERY_PLAN_FILE, QUERY_PROGRESS_FILE, Arbiter, ArbiterPolicy
from secmark.protocol.case import Case
from secmark.protocol.owner import answer_challenge
from secmark.protocol.querying import QueryPlan, failure_budget, input_digest
from secmark.protocol.reveals import revealed_pool_items
from tests.protocol.conftest import (
    CHALLENGE_SIZE,
    FAMILY,
    POLICY,
    SUSPECT,
    Committed,
    World,
    memorising_suspect,
)

POOL_SIZE = 64


def _pool_case(
    world: World, family: PoolFamily | OverlayFamily
) -> tuple[Arbiter, Case, npt.NDArray[Any]]:
    """A revealed case on a pool-family commitment, and the owner's pool."""
    items = np.random.default_rng(7).random((POOL_SIZE, 1, 8, 8), dtype=np.float32)
    committed, pool = world.commit_pool(family, items)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed))
    challenge = arbiter.challenge(case)
    arbiter.receive_reveal(
        case,
        answer_challenge(world.owner, committed.signed, challenge, arbiter.identity, pool=pool),
    )
    return arbiter, case, items


@pytest.mark.parametrize(
    "family",
    [
        PoolFamily(POOL_SIZE, (1, 8, 8), "float32"),
        OverlayFamily(POOL_SIZE, (1, 8, 8), "float32", 4, 0.0, 1.0),
    ],
)
def test_pool_decoys_that_are_copies_of_the_revealed_triggers(
    world: World, family: PoolFamily | OverlayFamily
) -> None:
    """Decoys of the pool family were byte copies of the revealed triggers:
    a suspect saw each trigger input twice or more and nothing else. Now
    decoys come from a decoy pool, never a trigger or a trigger's pool item."""
    arbiter, case, items = _pool_case(world, family)
    triggers = arbiter.triggers_of(case)
    trigger_inputs = {input_digest(t.input) for t in triggers}
    contents = RevealContents.from_json(case.read("reveal-contents.json"))
    used_items = {
        input_digest(item)
        for item in revealed_pool_items(arbiter.commitment_of(case).document, contents)
    }
    answer = CallableSuspect(lambda batch: np.zeros(len(batch), dtype=np.int64), reference=SUSPECT)

    with pytest.raises(ProtocolError, match="decoy pool"):
        arbiter.query(case, answer)
    # The revealed items alone cannot supply a single decoy.
    revealed = [t.input for t in triggers] + [
        items[i] for i in range(POOL_SIZE) if input_digest(items[i]) in used_items
    ]
    with pytest.raises(EncodingError, match="not triggers"):
        arbiter.query(case, answer, decoy_pool=revealed)

    fresh = np.random.default_rng(8).random((3 * CHALLENGE_SIZE, 1, 8, 8), dtype=np.float32)
    arbiter.query(case, answer, decoy_pool=list(fresh) + revealed)
    plan = QueryPlan.from_bytes(case.read(QUERY_PLAN_FILE))
    decoys = [plan.inputs[p] for p, role in enumerate(plan.roles) if role is None]
    assert len(decoys) == CHALLENGE_SIZE * POLICY.decoys_per_trigger
    decoy_digests = [input_digest(d) for d in decoys]
    assert len(set(decoy_digests)) == len(decoys)  # no decoy twice
    assert not set(decoy_digests) & (trigger_inputs | used_items)
    entries = open_transcript(
        case.read("transcript.json"), arbiter.keys.public_keys
    ).document.entries
    sent = [e.input_sha256 for e in entries]
    # Every input is sent once: repetition singles out nothing.
    assert len(set(sent)) == len(sent) or len(trigger_inputs) < CHALLENGE_SIZE


def test_a_resumed_query_step_sends_the_same_plan(world: World, owner_mark: Committed) -> None:
    """A query step interrupted and run again drew fresh decoys around the
    same triggers, so the inputs seen twice were exactly the triggers. Now
    the plan is stored and resumed: the second run sends exactly the inputs
    the first left unanswered, in the same order."""
    arbiter = world.arbiter()
    run = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter, query=False)
    watermarked = memorising_suspect(owner_mark)
    first: list[str] = []
    second: list[str] = []

    def flaky(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        first.extend(input_digest(row) for row in batch)
        if len(first) > 64:  # the connection drops after the first batch
            raise ConnectionError("connection reset by peer")
        return watermarked.predict(batch)

    def steady(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        second.extend(input_digest(row) for row in batch)
        return watermarked.predict(batch)

    with pytest.raises(SuspectError, match="connection reset"):
        arbiter.query(run.case, CallableSuspect(flaky, reference=SUSPECT))
    plan = QueryPlan.from_bytes(run.case.read(QUERY_PLAN_FILE))
    order = [input_digest(value) for value in plan.inputs]
    assert first[:64] == order[:64]
    arbiter.query(run.case, CallableSuspect(steady, reference=SUSPECT))
    assert second == order[64:]  # the same inputs, in the same order
    repeated = set(first) & set(second)
    triggers = {order[p] for p, role in enumerate(plan.roles) if role is not None}
    # What the suspect saw twice is the slice of the plan the first run left
    # unanswered, triggers and decoys alike, never the triggers as such.
    assert repeated == set(order[64:]) != triggers
    assert repeated - triggers
    entries = open_transcript(
        run.case.read("transcript.json"), arbiter.keys.public_keys
    ).document.entries
    assert [e.input_sha256 for e in entries] == order
    assert all(e.error is None for e in entries)


def test_a_stored_plan_for_other_triggers_is_refused(world: World, owner_mark: Committed) -> None:
    arbiter = world.arbiter()
    one = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter, query=False)
    other = world.run_case(
        owner_mark,
        memorising_suspect(owner_mark),
        arbiter=world.arbiter(),
        query=False,
        suspect="oip:http://127.0.0.1:9/v2/models/other",
    )
    broken = OipSuspect("http://127.0.0.1:9", "other", retries=0, timeout=2.0)
    with pytest.raises(SuspectError):
        other.arbiter.query(other.case, broken)
    one.case.write(QUERY_PLAN_FILE, other.case.read(QUERY_PLAN_FILE))
    with pytest.raises(EncodingError, match="query plan"):
        arbiter.query(one.case, memorising_suspect(owner_mark))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_suspect_is_not_rejected(world: World, owner_mark: Committed) -> None:
    """Querying a closed port gave "0 of 48 matched; 96 queries failed" and a
    signed "rejected" that verified. Now the step stops with the first
    failure after one batch and F + 1 single requests, and nothing is decided."""
    port = _closed_port()
    reference = f"oip:http://127.0.0.1:{port}/v2/models/stolen"
    arbiter = world.arbiter()
    run = world.run_case(
        owner_mark, memorising_suspect(owner_mark), arbiter=arbiter, query=False, suspect=reference
    )
    suspect = OipSuspect(f"http://127.0.0.1:{port}", "stolen", retries=0, timeout=2.0)
    with pytest.raises(SuspectError, match="more than the 8") as failure:
        arbiter.query(run.case, suspect)
    assert "connect" in str(failure.value).lower()
    case = arbiter.case(run.case.name)
    assert case.stage == "revealed"
    with pytest.raises(ProtocolError):
        arbiter.decide(case)


def test_an_unreachable_suspect_of_a_short_query_step_is_not_rejected(world: World) -> None:
    """Few queries decide when p0 is small (a language model's target
    tokens, 2^-16 classes here): 4 triggers and 4 decoys. A budget of 8
    failed queries let all 8 fail, and a suspect never reached got a signed
    "rejected". Now fewer than half of a step's queries may fail."""
    signed = create_commitment(
        world.owner, family=FAMILY, labels=ClassLabels(1 << 16), size=64, model_label="model"
    )
    mark = Committed(world.owner, signed, world.timestamp(signed.digest))
    port = _closed_port()
    reference = f"oip:http://127.0.0.1:{port}/v2/models/stolen"
    arbiter = world.arbiter(policy=ArbiterPolicy(challenge_size=4, decoys_per_trigger=1))
    run = world.run_case(
        mark, memorising_suspect(mark), arbiter=arbiter, query=False, suspect=reference
    )
    suspect = OipSuspect(f"http://127.0.0.1:{port}", "stolen", retries=0, timeout=2.0)
    with pytest.raises(SuspectError, match="more than the 3 a query step of 8"):
        arbiter.query(run.case, suspect)
    case = arbiter.case(run.case.name)
    assert case.stage == "revealed"
    with pytest.raises(ProtocolError):
        arbiter.decide(case)


def test_the_failure_budget() -> None:
    queries = (1, 2, 3, 8, 16, 17, 96, 128, 144, 384, 4096)
    assert [failure_budget(q) for q in queries] == [0, 0, 1, 3, 7, 8, 8, 8, 9, 24, 256]
    # Fewer than half, always: a step where half failed reached no one.
    assert all(2 * failure_budget(q) < q for q in range(1, 5000))


def test_stored_answers_for_other_inputs_are_refused(world: World, owner_mark: Committed) -> None:
    """An answer stored for one position cannot stand for another input:
    a progress file that pairs answers with other inputs is damaged."""
    arbiter = world.arbiter()
    run = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter, query=False)
    watermarked = memorising_suspect(owner_mark)

    def dropping(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        if len(batch) < 64:
            raise ConnectionError("connection reset by peer")
        return watermarked.predict(batch)

    with pytest.raises(SuspectError):
        arbiter.query(run.case, CallableSuspect(dropping, reference=SUSPECT))
    progress = json.loads(run.case.read(QUERY_PROGRESS_FILE))
    first, second = progress["answers"][:2]
    first["input_sha256"], second["input_sha256"] = second["input_sha256"], first["input_sha256"]
    run.case.write(QUERY_PROGRESS_FILE, canonical_json(progress))
    with pytest.raises(EncodingError, match="query progress is damaged"):
        arbiter.query(run.case, watermarked)
