"""Budgets of a commitment at one arbiter: each later challenge excludes the
revealed indices and halves the level, a spent commitment gets no
challenge, and cheap checks run before the costly threshold
(specs/dispute.md 8.4, 8.4.1, 8.5; specs/statistics.md 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import partial
from pathlib import Path

import pytest

import secmark.protocol.arbiter as arbiter_module
from secmark.errors import ProtocolError, SecmarkError, TimestampError
from secmark.messages.challenge import MAX_ALPHA, open_challenge
from secmark.protocol.arbiter import ArbiterPolicy
from secmark.protocol.case import Case
from secmark.protocol.owner import answer_challenge
from secmark.timestamp import TimestampAuthority
from secmark.timestamp.evidence import collect_evidence
from tests.protocol.conftest import (
    CHALLENGE_SIZE,
    POLICY,
    Committed,
    World,
    memorising_suspect,
)


def _challenge(
    world: World, arbiter: arbiter_module.Arbiter, mark: Committed, suspect: str
) -> tuple[arbiter_module.Case, bytes]:
    case = arbiter.file_claim(world.claim(mark, suspect=suspect))
    return case, arbiter.challenge(case)


def test_a_published_bundle_does_not_hand_its_indices_to_the_next_suspect(
    world: World, owner_mark: Committed
) -> None:
    """After a bundle is out, its revealed indices are public: a suspect
    could answer them with anything. Later challenges of the commitment,
    on any suspect, never ask for them again."""
    arbiter = world.arbiter()
    first = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter)
    revealed = set(first.challenge_document.document.indices)
    for n in range(3):
        _, challenge = _challenge(
            world, arbiter, owner_mark, f"oip:http://suspect-{n}.example/v2/models/m"
        )
        document = open_challenge(challenge, arbiter.keys.public_keys).document
        assert not revealed & set(document.indices)
        assert set(document.excluded) == revealed
        assert document.alpha == POLICY.alpha / 2 ** (n + 1)


def test_re_filing_without_a_reveal_gives_the_same_indices_at_a_lower_level(
    world: World, owner_mark: Committed
) -> None:
    arbiter = world.arbiter()
    suspect = "oip:http://suspect.example/v2/models/m"
    documents = [
        open_challenge(
            _challenge(world, arbiter, owner_mark, suspect)[1], arbiter.keys.public_keys
        ).document
        for _ in range(3)
    ]
    assert len({d.indices for d in documents}) == 1
    assert [d.alpha for d in documents] == [POLICY.alpha / 2**j for j in range(3)]


def test_a_reveal_is_refused_when_another_case_revealed_its_indices_meanwhile(
    world: World, owner_mark: Committed
) -> None:
    arbiter = world.arbiter(policy=ArbiterPolicy(challenge_size=200, decoys_per_trigger=1))
    waiting, challenge = _challenge(world, arbiter, owner_mark, "oip:http://a.example/v2/models/m")
    world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter)
    reveal = answer_challenge(owner_mark.keys, owner_mark.signed, challenge, arbiter.identity)
    with pytest.raises(ProtocolError, match="revealed in another case"):
        arbiter.receive_reveal(waiting, reveal)
    assert arbiter.case(waiting.name).stage == "challenged"


def test_a_spent_commitment_gets_no_challenge(world: World) -> None:
    """N = 100 with k = 48: two reveals leave 4 unrevealed triggers."""
    mark = world.commit(size=100)
    arbiter = world.arbiter()
    for _ in range(2):
        world.run_case(mark, memorising_suspect(mark), arbiter=arbiter)
    case = arbiter.file_claim(world.claim(mark))
    with pytest.raises(ProtocolError, match="spent"):
        arbiter.challenge(case)
    assert arbiter.case(case.name).stage == "claimed"


def test_the_level_budget_runs_out(world: World, owner_mark: Committed) -> None:
    """At 2^-20, k = 48 and p0 = 1/10, all 48 matching stays significant
    down to a level of 2^-159 or so; each challenge halves it, so the
    commitment's budget at this arbiter is spent after a bounded number."""
    policy = ArbiterPolicy(challenge_size=CHALLENGE_SIZE, decoys_per_trigger=1, alpha=MAX_ALPHA)
    arbiter = world.arbiter(policy=policy)
    issued = 0
    with pytest.raises(ProtocolError, match="spent"):
        for n in range(200):
            _challenge(world, arbiter, owner_mark, f"oip:http://s{n}.example/v2/models/m")
            issued += 1
    assert 0 < issued <= 65


def test_the_threshold_is_computed_only_after_every_timestamp_checks(
    world: World, owner_mark: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact threshold is the one costly check of filing a claim: a claim
    whose commitment is dated by an untrusted TSA is refused before it runs."""
    rogue = TimestampAuthority.initialize(
        world.folder / "rogue-tsa", passphrase=None, allow_unencrypted=True
    )
    forged = Committed(
        owner_mark.keys,
        owner_mark.signed,
        collect_evidence(owner_mark.digest, [rogue.respond]).to_json(),
    )

    def costly(*args: object) -> int:
        raise AssertionError("the threshold was computed before the timestamp was checked")

    monkeypatch.setattr(arbiter_module, "decision_threshold", costly)
    with pytest.raises(TimestampError):
        world.arbiter().file_claim(world.claim(forged))


def test_the_level_of_a_policy_is_bounded() -> None:
    assert ArbiterPolicy(alpha=MAX_ALPHA).alpha == Fraction(1, 2**20)
    with pytest.raises(ValueError, match="alpha"):
        ArbiterPolicy(alpha=MAX_ALPHA * 2)


def test_a_damaged_case_still_withholds_its_revealed_indices(
    world: World, owner_mark: Committed
) -> None:
    """A case whose state file is damaged is skipped as a rival, but the
    indices its signed challenge asked for, once revealed, stay excluded."""
    arbiter = world.arbiter()
    first = world.run_case(owner_mark, memorising_suspect(owner_mark), arbiter=arbiter)
    (first.case.folder / "state.json").write_bytes(b'{"record":{},"stage":"decided"}')
    _, challenge = _challenge(world, arbiter, owner_mark, "oip:http://next.example/v2/models/m")
    document = open_challenge(challenge, arbiter.keys.public_keys).document
    assert first.case.name in arbiter.damaged_cases
    assert set(document.excluded) == set(first.challenge_document.document.indices)


# -- concurrent steps ----------------------------------------------------------


def _slowed_revealed_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the window between reading the other cases' state and writing
    this case's: without the arbiter folder's lock, steps that run at once
    then all read the state before any of them writes."""
    original = arbiter_module.Arbiter._revealed_indices

    def slowed(self: arbiter_module.Arbiter, commitment_id: str, case: Case) -> tuple[int, ...]:
        found = original(self, commitment_id, case)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(arbiter_module.Arbiter, "_revealed_indices", slowed)


def _at_once(steps: list[Callable[[], object]]) -> list[object]:
    """Run ``steps`` in threads started together; each result or exception."""
    start = threading.Barrier(len(steps))

    def run(step: Callable[[], object]) -> object:
        start.wait()
        try:
            return step()
        except SecmarkError as error:
            return error

    with ThreadPoolExecutor(len(steps)) as pool:
        return list(pool.map(run, steps))


def test_challenges_issued_at_once_each_count_every_other(
    world: World, owner_mark: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent challenges of one commitment (separate arbiter processes on
    one folder, here threads with arbiters of their own) get distinct prior
    counts 0..n-1, so their levels halve as if issued one after another."""
    cases = [
        world.arbiter().file_claim(
            world.claim(owner_mark, suspect=f"oip:http://s{n}.example/v2/models/m")
        )
        for n in range(5)
    ]
    _slowed_revealed_indices(monkeypatch)
    issued = _at_once([partial(world.arbiter().challenge, case) for case in cases])
    documents = [open_challenge(data, world.arbiter_keys.public_keys) for data in issued]  # type: ignore[arg-type]
    assert sorted(d.document.prior_challenges for d in documents) == list(range(5))
    assert (
        sorted(d.document.alpha for d in documents) == [POLICY.alpha / 2**j for j in range(5)][::-1]
    )
    assert world.arbiter().challenges_issued(owner_mark.digest) == 5


def test_of_two_overlapping_reveals_received_at_once_one_is_refused(
    world: World, owner_mark: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two challenges issued before either reveal ask for the same indices;
    received at once, only one reveal may be accepted."""
    arbiter = world.arbiter()
    challenged = [
        _challenge(world, arbiter, owner_mark, f"oip:http://{name}.example/v2/models/m")
        for name in ("a", "b")
    ]
    reveals = [
        answer_challenge(owner_mark.keys, owner_mark.signed, challenge, arbiter.identity)
        for _, challenge in challenged
    ]
    overlap = set.intersection(
        *(set(open_challenge(c, arbiter.keys.public_keys).document.indices) for _, c in challenged)
    )
    assert overlap
    _slowed_revealed_indices(monkeypatch)
    results = _at_once(
        [
            partial(world.arbiter().receive_reveal, case, reveal)
            for (case, _), reveal in zip(challenged, reveals, strict=True)
        ]
    )
    refused = [r for r in results if isinstance(r, ProtocolError)]
    assert len(refused) == 1 and "revealed in another case" in str(refused[0])
    stages = sorted(world.arbiter().case(case.name).stage for case, _ in challenged)
    assert stages == ["challenged", "revealed"]


def test_the_same_claim_filed_twice_at_once_keeps_the_case_that_moved_on(
    world: World, owner_mark: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late filing of the same claim, which found no case yet, must not
    write a fresh "claimed" state over the case the other filing created
    and challenged meanwhile."""
    claim = world.claim(owner_mark)
    original = arbiter_module.Case.create

    def late_create(folder: Path, record: dict[str, object]) -> arbiter_module.Case:
        if threading.current_thread().name == "late":
            time.sleep(0.5)
        return original(folder, record)

    monkeypatch.setattr(arbiter_module.Case, "create", staticmethod(late_create))

    def file_late() -> None:
        world.arbiter().file_claim(claim)

    late = threading.Thread(target=file_late, name="late")
    late.start()
    time.sleep(0.1)
    arbiter = world.arbiter()
    case = arbiter.file_claim(claim)
    arbiter.challenge(case)
    late.join()
    assert arbiter.case(case.name).stage == "challenged"
