"""The dispute as it should go: claim, challenge, reveal, query, verdict,
bundle; resuming after a crash; re-filed claims (specs/dispute.md)."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from secmark.encoding import b64url_encode
from secmark.errors import ProtocolError, SecmarkError
from secmark.messages import Envelope
from secmark.messages.reveal import RevealContents
from secmark.messages.transcript import open_transcript
from secmark.models import CallableSuspect
from secmark.protocol.arbiter import Arbiter
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.case import STATE_FILE, Case
from secmark.protocol.owner import answer_challenge
from secmark.report import render_text
from tests.protocol.conftest import (
    CHALLENGE_SIZE,
    POLICY,
    SUSPECT,
    Committed,
    World,
    memorising_suspect,
)


def test_the_owner_of_a_copied_model_is_upheld(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    run = world.run_case(owner_mark, stolen_model)
    verdict = run.decision
    assert (verdict.outcome, run.case.stage) == ("upheld", "decided")
    assert verdict.test.matches == verdict.test.trials == CHALLENGE_SIZE
    assert verdict.test.matches >= verdict.test.threshold
    assert (verdict.test.trigger_errors, verdict.test.decoy_errors) == (0, 0)
    assert (verdict.rivals, verdict.cross_checks, verdict.prior_challenges) == ((), (), 0)
    assert verdict.suspect == SUSPECT and verdict.owner == world.owner.key_id
    transcript = open_transcript(
        run.case.read("transcript.json"), world.arbiter_keys.public_keys
    ).document
    assert len(transcript.entries) == CHALLENGE_SIZE * (1 + POLICY.decoys_per_trigger)

    for trust in (None, world.trust):
        report = verify_bundle(run.bundle, trust)
        assert report.outcome == "upheld"
        assert report.commitment_time == verdict.commitment_time
    assert any("attested by the arbiter" in line for line in render_text(report))


def test_a_model_without_the_watermark_is_not_claimed(world: World, owner_mark: Committed) -> None:
    run = world.run_case(owner_mark, memorising_suspect(otherwise="random"))
    assert run.decision.outcome == "rejected"
    assert run.decision.test.matches < run.decision.test.threshold
    assert verify_bundle(run.bundle).outcome == "rejected"


def test_the_reveal_does_not_publish_the_proofs(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    run = world.run_case(owner_mark, stolen_model, decide=False)
    contents = RevealContents.from_json(run.case.read("reveal-contents.json"))
    payload = Envelope.from_json(run.reveal).payload
    for trigger in contents.triggers[:5]:
        assert b64url_encode(trigger.proof).encode() not in payload
        assert base64.b64encode(trigger.proof) not in run.reveal


def test_steps_out_of_order_are_refused(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    with pytest.raises(ProtocolError):
        arbiter.query(case, stolen_model)
    with pytest.raises(ProtocolError):
        arbiter.decide(case)
    challenge = arbiter.challenge(case)
    with pytest.raises(ProtocolError):
        arbiter.challenge(case)
    with pytest.raises(ProtocolError):
        arbiter.triggers_of(case)
    arbiter.receive_reveal(
        case, answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)
    )
    with pytest.raises(ProtocolError):
        arbiter.decide(case)


# -- resuming -----------------------------------------------------------------


def test_a_fresh_arbiter_resumes_every_step_from_the_case_folder(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    """A crash between steps: the process restarts, builds a new Arbiter on
    the same folder and continues from the stored case."""
    claim_id = world.arbiter().file_claim(world.claim(owner_mark)).name

    arbiter = world.arbiter()
    challenge = arbiter.challenge(arbiter.case(claim_id))
    reveal = answer_challenge(world.owner, owner_mark.signed, challenge, world.arbiter_identity)

    arbiter = world.arbiter()
    arbiter.receive_reveal(arbiter.case(claim_id), reveal)

    arbiter = world.arbiter()
    arbiter.query(Case.load(arbiter.folder / "cases" / claim_id), stolen_model)

    arbiter = world.arbiter()
    arbiter.decide(arbiter.case(claim_id))

    assert world.arbiter().case(claim_id).stage == "decided"
    assert verify_bundle(world.arbiter().case(claim_id).read("bundle.json")).outcome == "upheld"


def _crash_after_write(arbiter: Arbiter, case: Case, step: str, *args: object) -> Case:
    """Run ``step`` but lose its state update, as a crash right after the
    step wrote its documents would; return the case as reloaded."""
    saved = (case.folder / STATE_FILE).read_bytes()
    getattr(arbiter, step)(case, *args)
    (case.folder / STATE_FILE).write_bytes(saved)
    return arbiter.case(case.name)


def test_a_step_whose_state_was_lost_runs_again(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))

    case = _crash_after_write(arbiter, case, "challenge")
    assert case.stage == "claimed"
    challenge = arbiter.challenge(case)
    # The lost first issue does not count as an earlier challenge.
    assert arbiter.challenges_issued(owner_mark.digest) == 1
    assert case.record["prior_challenges"] == 0
    reveal = answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)

    case = _crash_after_write(arbiter, case, "receive_reveal", reveal)
    assert case.stage == "challenged"
    arbiter.receive_reveal(case, reveal)

    case = _crash_after_write(world.arbiter(), case, "query", stolen_model)
    assert case.stage == "revealed"
    arbiter.query(case, stolen_model)

    case = _crash_after_write(arbiter, case, "decide")
    assert case.stage == "queried"
    arbiter.decide(case)
    assert verify_bundle(case.read("bundle.json")).outcome == "upheld"


def test_a_claim_whose_case_folder_was_left_half_made_is_filed_again(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    """A crash inside file_claim, after the case folder was made and before
    its state was written, must not make the claim impossible to file."""
    arbiter = world.arbiter()
    claim = world.claim(owner_mark)
    claim_id = hashlib.sha256(Envelope.from_json(claim).payload).hexdigest()
    (arbiter.folder / "cases" / claim_id).mkdir(parents=True)
    (arbiter.folder / "cases" / claim_id / "claim.json").write_bytes(claim[:10])

    case = arbiter.file_claim(claim)
    assert (case.name, case.stage) == (claim_id, "claimed")
    assert case.read("claim.json") == claim


def test_a_damaged_case_state_is_refused(world: World, owner_mark: Committed) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    (case.folder / STATE_FILE).write_bytes(b'{"record":{},"stage":"won"}')
    with pytest.raises(SecmarkError):
        arbiter.case(case.name)
    with pytest.raises(SecmarkError):
        arbiter.case("0" * 64)


# -- re-filing ----------------------------------------------------------------


def test_filing_the_same_claim_again_returns_the_same_case(
    world: World, owner_mark: Committed
) -> None:
    arbiter = world.arbiter()
    claim = world.claim(owner_mark)
    case = arbiter.file_claim(claim)
    challenge = arbiter.challenge(case)
    again = arbiter.file_claim(claim)
    assert (again.name, again.stage) == (case.name, "challenged")
    assert again.read("challenge.json") == challenge
    assert len(list((arbiter.folder / "cases").iterdir())) == 1


def test_a_claim_after_a_reveal_gets_fresh_indices_at_half_the_level(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    """Once a case's triggers are revealed (and its bundle may be public), a
    later challenge of the commitment excludes them and spends half the
    level of the one before: re-challenging costs the claimant alpha."""
    arbiter = world.arbiter()
    first = world.run_case(owner_mark, stolen_model, arbiter=arbiter)
    second = world.run_case(owner_mark, stolen_model, arbiter=arbiter)
    assert first.case.name != second.case.name
    one, two = first.challenge_document.document, second.challenge_document.document
    assert not set(one.indices) & set(two.indices)
    assert two.excluded == one.indices and one.excluded == ()
    assert (one.prior_challenges, two.prior_challenges) == (0, 1)
    assert (one.alpha, two.alpha) == (POLICY.alpha, POLICY.alpha / 2)
    assert arbiter.challenges_issued(owner_mark.digest) == 2

    verdict = second.decision
    assert verdict.prior_challenges == 1
    assert verdict.test.alpha == str(POLICY.alpha / 2)
    # An earlier claim on the same commitment is the same claimant's, not a rival.
    assert (verdict.outcome, verdict.rivals) == ("upheld", ())
    report = verify_bundle(second.bundle)
    assert report.figures is not None and report.figures.prior_challenges == 1
    assert any("1 earlier challenge(s) on this commitment" in line for line in render_text(report))


def test_another_arbiter_draws_other_indices(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect
) -> None:
    """Indices are the arbiter's VRF output: a second arbiter's differ,
    and each bundle verifies under its own arbiter's key."""
    ours = world.run_case(owner_mark, stolen_model)
    theirs = world.run_case(
        owner_mark, stolen_model, arbiter=world.arbiter(other=True, folder="other")
    )
    assert ours.challenge_document.document.indices != theirs.challenge_document.document.indices
    assert verify_bundle(theirs.bundle).outcome == "upheld"


def test_a_case_copied_to_another_folder_decides_the_same(
    world: World, owner_mark: Committed, stolen_model: CallableSuspect, tmp_path: Path
) -> None:
    """The case folder is self-contained: everything a later step needs is in it."""
    run = world.run_case(owner_mark, stolen_model, decide=False)
    shutil.copytree(run.arbiter.folder, tmp_path / "moved")
    moved = world.arbiter(folder="moved")
    moved.decide(moved.case(run.case.name))
    assert verify_bundle(moved.case(run.case.name).read("bundle.json")).outcome == "upheld"


def test_a_dispute_that_cannot_succeed_is_refused_before_anything_is_revealed(world: World) -> None:
    """With N = 16 and p0 = 1/10, even 16 matches of 16 are not significant
    at 2^-64 (specs/statistics.md 4): running the dispute would only reveal
    the whole trigger set."""
    small = world.commit(size=16)
    arbiter = world.arbiter()
    with pytest.raises(ProtocolError, match="too small"):
        arbiter.file_claim(world.claim(small))
    assert list((arbiter.folder / "cases").iterdir()) == []


def test_answers_of_the_wrong_kind_match_nothing() -> None:
    from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
    from secmark.protocol.querying import answer_matches

    assert answer_matches(ClassLabels(10), 3, 3) == 1
    assert answer_matches(ClassLabels(10), 3, 3.7) == 0
    assert answer_matches(ClassLabels(10), 3, 3.0) == 0
    assert answer_matches(ClassLabels(10), 3, [3]) == 0
    assert answer_matches(RegressionLabels(0.0, 10.0, 0.5), 2.0, 2.4) == 1
    assert answer_matches(RegressionLabels(0.0, 10.0, 0.5), 2.0, [2.0]) == 0  # type: ignore[list-item]
    assert answer_matches(TokenLabels(100, 2), [5, 6], [5, 7]) == 1
    assert answer_matches(TokenLabels(100, 2), [5, 6], 5) == 0


def test_each_revealed_proof_is_verified_once_per_case(
    world: World, owner_mark: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Querying and deciding re-read the triggers; the VRF proofs behind
    them are checked when the reveal arrives, not again at every step."""
    from secmark.protocol import reveals

    checked: list[int] = []
    original = reveals.verify_triggers

    def counting(signed: Any, revealed: Any) -> Any:
        checked.append(len(revealed))
        return original(signed, revealed)

    monkeypatch.setattr(reveals, "verify_triggers", counting)
    world.run_case(owner_mark, memorising_suspect(owner_mark))
    assert sum(checked) == CHALLENGE_SIZE
