"""Attacks on the dispute, each test named after the attack it tries.

They follow DESIGN.md "Threats the design answers" and specs/dispute.md.
Every test fails if the defence it names were removed: it drives the attack
through the real arbiter, owner and bundle code and pins the error class
(and, where it names the rule, the message).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.public import PublicKey, SealedBox

from secmark.encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_time,
    utc_now,
)
from secmark.errors import (
    EncodingError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    SuspectError,
    TimestampError,
)
from secmark.messages import Envelope, sign_document
from secmark.messages.challenge import open_challenge
from secmark.messages.claim import create_claim
from secmark.messages.commitment import create_commitment
from secmark.messages.families import PoolFamily
from secmark.messages.release import create_release, model_file_digest
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger
from secmark.messages.transcript import open_transcript
from secmark.messages.verdict import open_verdict
from secmark.models import CallableSuspect, Suspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.challenge import prove_challenge
from secmark.protocol.checks import Basis, CheckResult
from secmark.protocol.owner import answer_challenge
from secmark.protocol.querying import query_suspect
from secmark.protocol.suspects import canonical_suspect
from secmark.report import render_text
from secmark.timestamp import TimestampAuthority
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence
from secmark.triggers import (
    derive_trigger,
    generate_decoys,
    iter_triggers,
)
from tests.protocol.conftest import (
    CHALLENGE_SIZE,
    FAMILY,
    LABELS,
    POLICY,
    SIZE,
    SUSPECT,
    CaseRun,
    Clock,
    Committed,
    World,
    bundle_members,
    bundle_with,
    forge_reveal,
    memorising_suspect,
    resign,
)

MEMBERS = (
    "arbiter_identity",
    "claim",
    "challenge",
    "reveal",
    "reveal_contents",
    "transcript",
    "verdict",
)


def _challenged(
    world: World, committed: Committed, arbiter: Arbiter | None = None
) -> tuple[Arbiter, Any, bytes]:
    arbiter = arbiter or world.arbiter()
    case = arbiter.file_claim(world.claim(committed, arbiter=arbiter.identity))
    return arbiter, case, arbiter.challenge(case)


def _indices(challenge: bytes, arbiter: Arbiter) -> list[int]:
    return list(open_challenge(challenge, arbiter.keys.public_keys).document.indices)


# -- 1. cherry-picking ----------------------------------------------------------


@pytest.mark.parametrize("pick", ["other indices", "fewer", "extra", "reordered", "repeated"])
def test_cherry_picking_which_triggers_to_reveal(
    world: World, owner_mark: Committed, pick: str
) -> None:
    arbiter, case, challenge = _challenged(world, owner_mark)
    indices = _indices(challenge, arbiter)
    unchallenged = [i for i in range(SIZE) if i not in indices]
    chosen = {
        "other indices": unchallenged[: len(indices)],
        "fewer": indices[:-1],
        "extra": sorted(indices + unchallenged[:1]),
        "reordered": indices[::-1],
        "repeated": indices + indices[-1:],
    }[pick]
    with pytest.raises(ProofError, match="exactly the challenged indices"):
        arbiter.receive_reveal(case, forge_reveal(owner_mark, challenge, arbiter.identity, chosen))
    # Nothing half-accepted: the case still waits for the reveal it asked for.
    assert arbiter.case(case.name).stage == "challenged"
    arbiter.receive_reveal(case, forge_reveal(owner_mark, challenge, arbiter.identity, indices))


def test_cherry_picking_in_a_bundle_by_dropping_a_revealed_trigger(decided: CaseRun) -> None:
    """The opened reveal is not signed inside the bundle; it must still hold
    exactly the challenged indices."""
    contents = json.loads(bundle_members(decided.bundle)["reveal_contents"])
    contents["triggers"] = contents["triggers"][:-1]
    with pytest.raises(ProofError, match="exactly the challenged indices"):
        verify_bundle(bundle_with(decided.bundle, reveal_contents=canonical_json(contents)))


def test_cherry_picking_by_the_owner_side_reveals_exactly_the_challenge(
    world: World, owner_mark: Committed
) -> None:
    arbiter, case, challenge = _challenged(world, owner_mark)
    reveal = answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)
    triggers = arbiter.receive_reveal(case, reveal)
    assert [t.index for t in triggers] == _indices(challenge, arbiter)


# -- 2. replay ------------------------------------------------------------------


def test_replaying_a_reveal_from_another_case(world: World, owner_mark: Committed) -> None:
    """Two claims on the same commitment and suspect have the same indices,
    so only the binding of the reveal to its challenge id stops the replay."""
    arbiter = world.arbiter()
    _, first, first_challenge = _challenged(world, owner_mark, arbiter)
    _, second, second_challenge = _challenged(world, owner_mark, arbiter)
    assert _indices(first_challenge, arbiter) == _indices(second_challenge, arbiter)
    first_reveal = answer_challenge(
        world.owner, owner_mark.signed, first_challenge, arbiter.identity
    )
    with pytest.raises(ProofError, match="another challenge"):
        arbiter.receive_reveal(second, first_reveal)

    # The old sealed box under a new envelope naming the right challenge.
    sealed = b64url_decode(
        json.loads(Envelope.from_json(first_reveal).payload)["sealed"], what="sealed"
    )
    second_id = open_challenge(second_challenge, arbiter.keys.public_keys).digest
    rewrapped = sign_document(Reveal(second_id, sealed), world.owner).to_json()
    with pytest.raises(ProofError, match="another challenge"):
        arbiter.receive_reveal(second, rewrapped)
    assert arbiter.case(second.name).stage == "challenged"
    arbiter.receive_reveal(first, first_reveal)


def test_replaying_a_claim_to_another_arbiter(world: World, owner_mark: Committed) -> None:
    claim = world.claim(owner_mark)
    with pytest.raises(ProtocolError, match="addressed to arbiter"):
        world.arbiter(other=True, folder="other").file_claim(claim)


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[CaseRun, CaseRun]:
    """Two decided cases on the same commitment and suspect: same indices,
    same owner, same arbiter, so every piece looks alike."""
    world = World(tmp_path_factory.mktemp("two"))
    mark = world.commit()
    model = memorising_suspect(mark)
    arbiter = world.arbiter()
    return world.run_case(mark, model, arbiter=arbiter), world.run_case(
        mark, model, arbiter=arbiter
    )


@pytest.mark.parametrize("member", [m for m in MEMBERS if m != "arbiter_identity"])
def test_replaying_a_bundle_piece_from_another_case(
    two_cases: tuple[CaseRun, CaseRun], member: str
) -> None:
    first, second = two_cases
    assert verify_bundle(first.bundle).outcome == verify_bundle(second.bundle).outcome == "upheld"
    mixed = bundle_with(first.bundle, **{member: bundle_members(second.bundle)[member]})
    with pytest.raises(ProofError):
        verify_bundle(mixed)


def test_replaying_a_bundle_under_another_arbiters_identity(world: World, decided: CaseRun) -> None:
    mixed = bundle_with(decided.bundle, arbiter_identity=world.other_arbiter_identity.to_json())
    with pytest.raises(ProofError, match="another arbiter"):
        verify_bundle(mixed)


# -- 3. expiry and answering twice ----------------------------------------------


def test_answering_a_challenge_after_it_expired(world: World, owner_mark: Committed) -> None:
    clock = Clock(utc_now())
    arbiter, case, challenge = _challenged(world, owner_mark, world.arbiter(clock=clock))
    expires = open_challenge(challenge, arbiter.keys.public_keys).document.expires
    reveal = answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)
    clock.now = expires + timedelta(seconds=1)
    with pytest.raises(ProtocolError, match="expired"):
        arbiter.receive_reveal(case, reveal)
    assert arbiter.case(case.name).stage == "challenged"
    clock.now = expires  # the last instant still counts
    arbiter.receive_reveal(case, reveal)


def test_the_owner_refuses_to_answer_an_expired_challenge(
    world: World, owner_mark: Committed
) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    expires = open_challenge(challenge, arbiter.keys.public_keys).document.expires
    with pytest.raises(ProtocolError, match="expired"):
        answer_challenge(
            world.owner,
            owner_mark.signed,
            challenge,
            arbiter.identity,
            clock=lambda: expires + timedelta(seconds=1),
        )
    answer_challenge(
        world.owner, owner_mark.signed, challenge, arbiter.identity, clock=lambda: expires
    )


def test_answering_a_challenge_twice(world: World, owner_mark: Committed) -> None:
    arbiter, case, challenge = _challenged(world, owner_mark)
    stale = arbiter.case(case.name)  # a second handle, as another process would hold
    reveal = answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)
    arbiter.receive_reveal(case, reveal)
    for handle in (case, arbiter.case(case.name), stale):
        with pytest.raises(ProtocolError, match="needs stage 'challenged'"):
            arbiter.receive_reveal(handle, reveal)
    again = answer_challenge(world.owner, owner_mark.signed, challenge, arbiter.identity)
    with pytest.raises(ProtocolError):
        arbiter.receive_reveal(stale, again)


# -- 4. tampering ---------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.floats(0, 1, exclude_max=True), change=st.integers(1, 255))
def test_tampering_with_any_byte_of_a_bundle(
    decided: CaseRun, position: float, change: int
) -> None:
    bundle = bytearray(decided.bundle)
    index = int(position * len(bundle))
    bundle[index] ^= change
    with pytest.raises(SecmarkError):
        verify_bundle(bytes(bundle))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    member=st.sampled_from([*MEMBERS, "tsa_roots"]),
    position=st.floats(0, 1, exclude_max=True),
    change=st.integers(1, 255),
)
def test_tampering_with_any_byte_of_each_bundle_member(
    decided: CaseRun, member: str, position: float, change: int
) -> None:
    """Uniform positions mostly hit the transcript; this spreads them over
    every member, the unsigned ones (opened reveal, TSA roots) included."""
    bundle = decided.bundle
    text = json.dumps(bundle_members(bundle)[member], separators=(",", ":"), ensure_ascii=False)
    text = text[1:-1] if member != "tsa_roots" else text[2:-2]
    start = bundle.index(text.encode())
    changed = bytearray(bundle)
    changed[start + int(position * len(text.encode()))] ^= change
    with pytest.raises(SecmarkError):
        verify_bundle(bytes(changed))


def test_tampering_with_a_bundle_is_refused_with_the_judges_trust_store_too(
    world: World, decided: CaseRun
) -> None:
    roots = bundle_members(decided.bundle)["tsa_roots"]
    roots[0] = roots[0].replace("\n", "\r\n")
    with pytest.raises(SecmarkError):
        verify_bundle(bundle_with(decided.bundle, tsa_roots=roots), world.trust)  # type: ignore[arg-type]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = payload
        for name in parents:
            target = target[name]
        target[last] = value(target[last]) if callable(value) else value

    return change


@pytest.mark.parametrize(
    "path, value",
    [
        ("test.matches", lambda m: m - 1),
        ("test.trials", lambda m: m + 1),
        ("test.threshold", lambda m: m - 1),
        ("test.p0", "1/2"),
        ("test.trigger_errors", 1),
        ("test.decoy_errors", 1),
        ("claim_id", "0" * 64),
        ("challenge_id", "0" * 64),
        ("commitment_id", "0" * 64),
        ("transcript_id", "0" * 64),
        ("owner", "0" * 64),
        ("suspect", "label:another model"),
        ("commitment_time", "2000-01-01T00:00:00Z"),
        ("release.trusted_time", "2000-01-01T00:00:00Z"),
        ("release.release_id", "0" * 64),
        ("release.model_digest", "0" * 64),
        ("release", None),
        ("prior_challenges", 3),
        ("outcome", "rejected"),
        ("test.alpha", "1/2"),
    ],
)
def test_tampering_with_a_verdict_the_arbiter_signs_again(
    decided: CaseRun, path: str, value: Any
) -> None:
    """Even the arbiter cannot restate what the bundle lets a judge recompute."""
    verdict = resign(decided.verdict or b"", decided.arbiter.keys, _set(path, value))
    with pytest.raises(ProofError):
        verify_bundle(bundle_with(decided.bundle, verdict=verdict))


@pytest.mark.parametrize("alpha", ["x", "1/0", "0", "-1/2", "1e-3", " 1/3", "1e-99999999"])
def test_a_verdicts_significance_level_in_another_spelling(decided: CaseRun, alpha: str) -> None:
    verdict = resign(decided.verdict or b"", decided.arbiter.keys, _set("test.alpha", alpha))
    with pytest.raises(EncodingError, match="alpha"):
        verify_bundle(bundle_with(decided.bundle, verdict=verdict))


@pytest.mark.parametrize("alpha", ["2", "2/4", "999/1000", "1/1048576"])
def test_a_verdict_at_another_level_than_its_challenge(decided: CaseRun, alpha: str) -> None:
    verdict = resign(decided.verdict or b"", decided.arbiter.keys, _set("test.alpha", alpha))
    with pytest.raises((EncodingError, ProofError), match="alpha|another level than its challenge"):
        verify_bundle(bundle_with(decided.bundle, verdict=verdict))


@pytest.mark.parametrize("alpha", ["x", "0", "2", "999/1000", "1/1048575", "2/2097152"])
def test_an_arbiter_signing_a_challenge_at_a_weak_level(decided: CaseRun, alpha: str) -> None:
    """Even the arbiter's own signature cannot make a weak test count: a
    challenge whose level exceeds 2^-20 (or is not written n/d) is refused."""
    challenge = resign(decided.challenge, decided.arbiter.keys, _set("alpha", alpha))
    with pytest.raises(EncodingError, match="significance level"):
        verify_bundle(bundle_with(decided.bundle, challenge=challenge))


def test_a_later_challenge_must_halve_its_level(decided: CaseRun) -> None:
    def later(payload: dict[str, Any]) -> None:
        payload["prior_challenges"] = 1
        payload["alpha"] = str(Fraction(1, 1 << 20))  # the first challenge's bound, not 2^-21

    challenge = resign(decided.challenge, decided.arbiter.keys, later)
    with pytest.raises(EncodingError, match="at most 2\\^-21"):
        verify_bundle(bundle_with(decided.bundle, challenge=challenge))


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha", Fraction(999, 1000)),
        ("alpha", Fraction(1, 1 << 19)),
        ("alpha", 0.001),
        ("alpha", Fraction(0)),
        ("challenge_size", 0),
        ("challenge_size", -1),
        ("challenge_size", 1.5),
        ("challenge_size", True),
        ("challenge_size", 16385),
        ("decoys_per_trigger", -1),
        ("decoys_per_trigger", 65),
        ("challenge_lifetime", timedelta(0)),
        ("challenge_lifetime", timedelta(days=-1)),
        ("challenge_lifetime", 7),
    ],
)
def test_an_arbiter_policy_outside_the_protocol_budget(field: str, value: Any) -> None:
    with pytest.raises(EncodingError, match=field):
        ArbiterPolicy(**{field: value})


def _transcript_change(decided: CaseRun, change: Callable[[list[dict[str, Any]]], None]) -> bytes:
    def edit(payload: dict[str, Any]) -> None:
        change(payload["entries"])

    return resign(decided.case.read("transcript.json"), decided.arbiter.keys, edit)


def _first_trigger(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in entries if e["trigger_index"] is not None)


@pytest.mark.parametrize(
    "tamper",
    ["answer", "input digest", "trigger marked as decoy", "decoy dropped", "decoy added"],
)
def test_tampering_with_a_transcript_the_arbiter_signs_again(decided: CaseRun, tamper: str) -> None:
    def change(entries: list[dict[str, Any]]) -> None:
        trigger = _first_trigger(entries)
        if tamper == "answer":
            trigger["answer"] = (trigger["answer"] + 1) % LABELS.num_classes
        elif tamper == "input digest":
            trigger["input_sha256"] = "0" * 64
        elif tamper == "trigger marked as decoy":
            trigger["trigger_index"] = None
        elif tamper == "decoy dropped":
            entries.remove(next(e for e in entries if e["trigger_index"] is None))
            for position, entry in enumerate(entries):
                entry["position"] = position
        else:
            entries.append({**entries[-1], "position": len(entries), "trigger_index": None})

    transcript = _transcript_change(decided, change)
    verdict = resign(
        decided.verdict or b"",
        decided.arbiter.keys,
        _set("transcript_id", hashlib.sha256(Envelope.from_json(transcript).payload).hexdigest()),
    )
    with pytest.raises(ProofError):
        verify_bundle(bundle_with(decided.bundle, transcript=transcript, verdict=verdict))


def test_tampering_with_the_answers_and_the_verdict_together_rests_on_the_arbiters_word(
    decided: CaseRun,
) -> None:
    """The transcript is attested by the arbiter: one who rewrites the
    answers and re-signs a consistent verdict is not caught offline. The
    report says so, and names the arbiter whose word it is."""

    def wrong_answers(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry["trigger_index"] is not None:
                entry["answer"] = (entry["answer"] + 1) % LABELS.num_classes

    transcript = _transcript_change(decided, wrong_answers)
    original = decided.decision

    def consistent(payload: dict[str, Any]) -> None:
        payload["transcript_id"] = hashlib.sha256(
            Envelope.from_json(transcript).payload
        ).hexdigest()
        payload["test"]["matches"] = 0
        payload["outcome"] = "rejected"

    verdict = resign(decided.verdict or b"", decided.arbiter.keys, consistent)
    report = verify_bundle(bundle_with(decided.bundle, transcript=transcript, verdict=verdict))
    assert (original.outcome, report.outcome) == ("upheld", "rejected")
    (answers,) = [check for check in report.checks if check.name == "suspect-answers"]
    assert (answers.result, answers.rests_on) == (CheckResult.NOT_CHECKED, Basis.ARBITER)
    assert (
        f"attested by the arbiter's signature ({decided.arbiter.keys.key_id})" in answers.evidence
    )


# -- 5. wrong keys --------------------------------------------------------------


def test_a_thief_signing_a_claim_on_the_owners_commitment(
    world: World, owner_mark: Committed, decided: CaseRun
) -> None:
    forged = create_claim(
        world.thief,
        commitment=owner_mark.data,
        commitment_evidence=owner_mark.evidence,
        suspect=SUSPECT,
        arbiter=world.arbiter_keys.key_id,
    ).to_json()
    with pytest.raises(SignatureError):
        world.arbiter().file_claim(forged)

    claim = bundle_members(decided.bundle)["claim"].encode()
    with pytest.raises(SignatureError):
        verify_bundle(
            bundle_with(decided.bundle, claim=resign(claim, world.thief, lambda payload: None))
        )


def test_a_challenge_signed_by_another_arbiter(world: World, owner_mark: Committed) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    impostor = resign(challenge, world.other_arbiter_keys, lambda payload: None)
    with pytest.raises(SignatureError):
        answer_challenge(world.owner, owner_mark.signed, impostor, arbiter.identity)

    # A genuine challenge from the other arbiter, where this one was expected.
    other = world.arbiter(other=True, folder="other")
    _, _, theirs = _challenged(world, owner_mark, other)
    with pytest.raises(SignatureError):
        answer_challenge(world.owner, owner_mark.signed, theirs, arbiter.identity)


def test_a_reveal_signed_by_a_thief(world: World, owner_mark: Committed) -> None:
    arbiter, case, challenge = _challenged(world, owner_mark)
    indices = _indices(challenge, arbiter)
    with pytest.raises(SignatureError):
        arbiter.receive_reveal(
            case, forge_reveal(owner_mark, challenge, arbiter.identity, indices, signer=world.thief)
        )


def test_a_release_signed_by_a_thief_in_the_owners_claim(
    world: World, owner_mark: Committed
) -> None:
    release = create_release(
        world.thief,
        commitment_id=owner_mark.digest,
        model_digest="0" * 64,
        model_name="m",
        model_version="1",
    )
    owner_mark.release = release.to_json()
    owner_mark.release_evidence = world.timestamp(release.digest)
    with pytest.raises(SignatureError):
        world.arbiter().file_claim(world.claim(owner_mark))


def test_a_challenge_for_another_commitment(world: World, owner_mark: Committed) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    with pytest.raises(ProtocolError, match="another commitment"):
        answer_challenge(world.owner, world.commit().signed, challenge, arbiter.identity)


# -- 6. backdating --------------------------------------------------------------


def test_backdating_a_commitment_with_the_owners_clock(world: World) -> None:
    created = datetime(2001, 1, 1, tzinfo=timezone.utc)
    backdated = world.commit(created=created)
    trusted = (
        TimestampEvidence.from_json(backdated.evidence).check(world.trust).require_trusted_time()
    )
    run = world.run_case(backdated, memorising_suspect(backdated))
    assert backdated.signed.document.created == created
    assert run.decision.commitment_time == trusted != created
    report = verify_bundle(run.bundle)
    assert report.commitment_time == trusted
    assert [time.time for time in report.times if time.event == "commitment"] == [trusted]
    assert any(
        line.startswith(f"  trusted commitment time: {format_time(trusted)} ")
        for line in render_text(report)
    )


def test_backdating_with_a_timestamp_from_an_untrusted_authority(
    world: World, tmp_path: Path
) -> None:
    rogue = TimestampAuthority.initialize(
        tmp_path / "rogue",
        passphrase=None,
        allow_unencrypted=True,
        clock=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    signed = create_commitment(
        world.owner, family=FAMILY, labels=LABELS, size=SIZE, model_label="m"
    )
    evidence = collect_evidence(signed.digest, [rogue.respond]).to_json()
    with pytest.raises(TimestampError):
        world.arbiter().file_claim(world.claim(Committed(world.owner, signed, evidence)))


def test_backdating_with_evidence_for_another_document(world: World, owner_mark: Committed) -> None:
    other = world.commit()
    owner_mark.evidence = other.evidence
    with pytest.raises(ProtocolError, match="dates"):
        world.arbiter().file_claim(world.claim(owner_mark))


# -- 7. commitment after release ------------------------------------------------


@pytest.mark.parametrize("gap", [timedelta(hours=-1), timedelta(0)])
def test_committing_after_the_release(world: World, gap: timedelta) -> None:
    """The release is timestamped first (or in the same second): the
    watermark cannot have been committed before the model was out."""
    signed = create_commitment(
        world.owner, family=FAMILY, labels=LABELS, size=SIZE, model_label="m"
    )
    release = create_release(
        world.owner,
        commitment_id=signed.digest,
        model_digest="1" * 64,
        model_name="m",
        model_version="1",
    )
    release_evidence = world.timestamp(release.digest)
    commitment_evidence = world.timestamp(signed.digest, later_by=-gap)
    committed = Committed(
        world.owner, signed, commitment_evidence, release.to_json(), release_evidence
    )
    with pytest.raises(ProtocolError, match="release was timestamped before its commitment"):
        world.arbiter().file_claim(world.claim(committed))


def test_registering_a_release_of_another_commitment(world: World, owner_mark: Committed) -> None:
    other = world.commit()
    world.register_release(other, world.model_file("other"))
    owner_mark.release, owner_mark.release_evidence = other.release, other.release_evidence
    with pytest.raises(ProtocolError, match="another commitment"):
        world.arbiter().file_claim(world.claim(owner_mark))


# -- 8. ambiguity ---------------------------------------------------------------


class Ambiguity:
    """The thief committed his own key first; the owner committed, released
    model A; the thief stole A, embedded his own watermark (model B) and
    registered B as his release. The suspect is B."""

    def __init__(
        self,
        world: World,
        *,
        every_model_carries_every_mark: bool = False,
        thief_registers: str = "B",
        thief_commits_first: bool = True,
    ) -> None:
        self.world = world
        if thief_commits_first:
            self.thief_mark = world.commit(world.thief)
        self.owner_mark = world.commit(world.owner)
        self.path_a = world.model_file("A")
        world.register_release(self.owner_mark, self.path_a)
        if not thief_commits_first:
            self.thief_mark = world.commit(world.thief)
        files = {"B": "B", "clean": "thief's own clean model", "blank": "an unrelated model"}
        self.path_b, self.path_clean, self.path_blank = (
            world.model_file(name) for name in files.values()
        )
        if thief_registers in files:
            world.register_release(self.thief_mark, world.model_file(files[thief_registers]))
        both = (self.owner_mark, self.thief_mark)

        def ref(path: Path) -> str:
            return "sha256:" + model_file_digest(path)

        self.models: dict[bytes, Suspect] = {
            self.path_a.read_bytes(): memorising_suspect(
                *(both if every_model_carries_every_mark else both[:1]), reference=ref(self.path_a)
            ),
            self.path_b.read_bytes(): memorising_suspect(*both, reference=ref(self.path_b)),
            self.path_clean.read_bytes(): memorising_suspect(
                self.thief_mark, reference=ref(self.path_clean)
            ),
            self.path_blank.read_bytes(): memorising_suspect(
                otherwise="random", reference=ref(self.path_blank)
            ),
        }
        self.suspect_ref = "sha256:" + model_file_digest(self.path_b)
        self.arbiter = world.arbiter()
        suspect = self.models[self.path_b.read_bytes()]
        self.owner = world.run_case(
            self.owner_mark, suspect, arbiter=self.arbiter, suspect=self.suspect_ref, decide=False
        )
        self.thief = world.run_case(
            self.thief_mark, suspect, arbiter=self.arbiter, suspect=self.suspect_ref, decide=False
        )
        self.released = {
            self.owner.case.name: self.path_a,
            self.thief.case.name: world.model_file(files.get(thief_registers, "B")),
        }

    def load_model(self, path: Path) -> Suspect:
        return self.models[path.read_bytes()]

    def decide(self, run: CaseRun) -> Any:
        run.verdict = self.arbiter.decide(
            run.case, released_models=self.released, load_model=self.load_model
        )
        return run.decision


def test_ambiguity_a_thief_who_committed_first_and_watermarked_the_stolen_model(
    world: World,
) -> None:
    dispute = Ambiguity(world)
    assert (
        dispute.owner.result.test.decision and dispute.thief.result.test.decision
    )  # both hold on B
    owner, thief = dispute.decide(dispute.owner), dispute.decide(dispute.thief)
    # Time alone would favour the thief: he committed first.
    assert thief.commitment_time < owner.commitment_time
    assert owner.outcome == "upheld"
    assert thief.outcome == "rejected" and dispute.owner.case.name in thief.reason
    carries = {(c.model_of, c.watermark_of): c.carries for c in owner.cross_checks}
    o, t = dispute.owner.case.name, dispute.thief.case.name
    assert carries == {(o, o): True, (o, t): False, (t, o): True, (t, t): True}
    assert [r.claim_id for r in thief.rivals] == [o] and [r.claim_id for r in owner.rivals] == [t]
    for run in (dispute.owner, dispute.thief):
        report = verify_bundle(run.bundle)
        assert report.outcome == run.decision.outcome
        assert any("as attested by the arbiter" in line for line in render_text(report))


def test_ambiguity_when_every_released_model_carries_every_watermark(world: World) -> None:
    dispute = Ambiguity(world, every_model_carries_every_mark=True)
    assert dispute.decide(dispute.owner).outcome == "ambiguous"
    assert dispute.decide(dispute.thief).outcome == "ambiguous"


def test_ambiguity_a_thief_without_a_registered_release_cannot_win(world: World) -> None:
    """Without a release of the thief's to carry the owner's mark, nothing
    proves the owner the origin either: ambiguous for both, never upheld
    for the thief (specs/dispute.md 8.7)."""
    dispute = Ambiguity(world, thief_registers="nothing")
    assert dispute.thief.case.record["release"] is None
    assert dispute.decide(dispute.thief).outcome == "ambiguous"
    assert dispute.decide(dispute.owner).outcome == "ambiguous"

    everything = Ambiguity(
        World(world.folder / "again"),
        every_model_carries_every_mark=True,
        thief_registers="nothing",
    )
    assert everything.decide(everything.thief).outcome != "upheld"


def test_ambiguity_a_thief_registering_a_clean_model_of_his_own_cannot_win(world: World) -> None:
    """The thief registers a model carrying only his mark, committed before
    the owner's release. Neither release carries the other's mark, so the
    arbiter singles out neither: the thief can force "ambiguous", never
    "upheld"."""
    dispute = Ambiguity(world, thief_registers="clean")
    assert dispute.decide(dispute.thief).outcome == "ambiguous"
    assert dispute.decide(dispute.owner).outcome == "ambiguous"


def test_ambiguity_a_thief_registering_a_model_without_his_mark(world: World) -> None:
    """An unrelated model registered by the thief cannot make him prevail,
    nor does it prove anything against him: ambiguous for both."""
    dispute = Ambiguity(world, thief_registers="blank")
    assert dispute.decide(dispute.thief).outcome == "ambiguous"
    assert dispute.decide(dispute.owner).outcome == "ambiguous"


def test_ambiguity_a_thief_committing_after_the_owners_release(world: World) -> None:
    """Each release carries only its own mark. The thief committed after the
    owner's release, but time alone never decides (an owner may mark a
    stolen model under an old commitment too): ambiguous for both."""
    dispute = Ambiguity(world, thief_registers="clean", thief_commits_first=False)
    owner, thief = dispute.decide(dispute.owner), dispute.decide(dispute.thief)
    assert (owner.outcome, thief.outcome) == ("ambiguous", "ambiguous")
    assert thief.commitment_time > owner.release.trusted_time  # type: ignore[union-attr]


def test_ambiguity_depositing_another_file_than_the_registered_release(world: World) -> None:
    dispute = Ambiguity(world)
    dispute.released[dispute.thief.case.name] = dispute.path_a
    with pytest.raises(ProtocolError, match="not its registered release"):
        dispute.decide(dispute.owner)


def test_ambiguity_without_deposited_models_nobody_wins(world: World) -> None:
    dispute = Ambiguity(world)
    dispute.released = {}
    assert dispute.decide(dispute.owner).outcome == "ambiguous"


# -- 9. challenge indices not from the arbiter's VRF ------------------------------


def _challenge_with(
    challenge: bytes, arbiter: Arbiter, change: Callable[[dict[str, Any]], None]
) -> bytes:
    return resign(challenge, arbiter.keys, change)


def test_an_arbiter_choosing_the_challenged_indices(
    world: World, owner_mark: Committed, decided: CaseRun
) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    indices = _indices(challenge, arbiter)
    chosen = sorted(indices[1:] + [next(i for i in range(SIZE) if i not in indices)])
    picked = _challenge_with(challenge, arbiter, _set("indices", chosen))
    with pytest.raises(ProofError, match="VRF output selects"):
        answer_challenge(world.owner, owner_mark.signed, picked, arbiter.identity)

    # The same in a bundle, even with everything after the challenge rebuilt.
    bundled = bundle_members(decided.bundle)["challenge"].encode()
    bundled_indices = _indices(bundled, decided.arbiter)
    other = sorted(bundled_indices[1:] + [next(i for i in range(SIZE) if i not in bundled_indices)])
    forged = _challenge_with(bundled, decided.arbiter, _set("indices", other))
    with pytest.raises(ProofError, match="VRF output selects"):
        verify_bundle(bundle_with(decided.bundle, challenge=forged))


def test_an_arbiter_reusing_the_vrf_proof_of_another_suspect(
    world: World, owner_mark: Committed
) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    proof, indices = prove_challenge(
        arbiter.keys.vrf, owner_mark.digest, "label:another model", SIZE, CHALLENGE_SIZE
    )

    def swap(payload: dict[str, Any]) -> None:
        payload["vrf_proof"], payload["indices"] = b64url_encode(proof), list(indices)

    with pytest.raises(ProofError):
        answer_challenge(
            world.owner,
            owner_mark.signed,
            _challenge_with(challenge, arbiter, swap),
            arbiter.identity,
        )


def test_an_arbiter_drawing_indices_with_another_vrf_key(
    world: World, owner_mark: Committed
) -> None:
    arbiter, _, challenge = _challenged(world, owner_mark)
    proof, indices = prove_challenge(
        world.other_arbiter_keys.vrf, owner_mark.digest, SUSPECT, SIZE, CHALLENGE_SIZE
    )

    def swap(payload: dict[str, Any]) -> None:
        payload["vrf_proof"], payload["indices"] = b64url_encode(proof), list(indices)

    with pytest.raises(ProofError):
        answer_challenge(
            world.owner,
            owner_mark.signed,
            _challenge_with(challenge, arbiter, swap),
            arbiter.identity,
        )


# -- 10. re-rolling the challenge ---------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "oip:HTTP://Host:80/v2/models/x/",
        "oip:http://host:80/v2/models/x",
        "oip:http://host/v2/models/x/",
        "oip:http://HOST/v2/models/x",
    ],
)
def test_respelling_the_suspect_reference_to_reroll_the_challenge(
    world: World, owner_mark: Committed, spelling: str
) -> None:
    canonical = "oip:http://host/v2/models/x"
    assert canonical_suspect(spelling) == canonical == canonical_suspect(canonical)
    claim = create_claim(
        world.owner,
        commitment=owner_mark.data,
        commitment_evidence=owner_mark.evidence,
        suspect=spelling,
        arbiter=world.arbiter_keys.key_id,
    ).to_json()
    with pytest.raises(ProtocolError, match="not canonical"):
        world.arbiter().file_claim(claim)


def test_respelling_a_model_digest_reference(world: World, owner_mark: Committed) -> None:
    claim = create_claim(
        world.owner,
        commitment=owner_mark.data,
        commitment_evidence=owner_mark.evidence,
        suspect="sha256:" + "AB" * 32,
        arbiter=world.arbiter_keys.key_id,
    ).to_json()
    with pytest.raises(ProtocolError, match="not canonical"):
        world.arbiter().file_claim(claim)


@pytest.mark.parametrize(
    "reference", ["callable:x.y", "label: padded", "label:", "http://host/v2/models/x"]
)
def test_a_suspect_reference_of_no_known_form(
    world: World, owner_mark: Committed, reference: str
) -> None:
    claim = create_claim(
        world.owner,
        commitment=owner_mark.data,
        commitment_evidence=owner_mark.evidence,
        suspect=reference,
        arbiter=world.arbiter_keys.key_id,
    ).to_json()
    with pytest.raises(EncodingError):
        world.arbiter().file_claim(claim)


def test_refiling_a_claim_to_reroll_the_challenge(world: World, owner_mark: Committed) -> None:
    arbiter = world.arbiter()
    drawn = set()
    for spelling in ["oip:HTTP://Host:80/v2/models/x/", "oip:http://host/v2/models/x"] * 3:
        case = arbiter.file_claim(
            world.claim(owner_mark, suspect=spelling)
        )  # canonicalised by the owner side
        drawn.add(tuple(_indices(arbiter.challenge(case), arbiter)))
    assert len(drawn) == 1
    assert arbiter.challenges_issued(owner_mark.digest) == 6
    other = arbiter.file_claim(world.claim(owner_mark, suspect="oip:http://host/v2/models/y"))
    assert tuple(_indices(arbiter.challenge(other), arbiter)) not in drawn


# -- 11. grinding -------------------------------------------------------------------


@pytest.mark.parametrize("otherwise", [0, "random"])
def test_grinding_many_commitments_against_a_stolen_model(
    world: World, owner_mark: Committed, otherwise: int | str
) -> None:
    """The thief holds the owner's model (not carrying his mark) and tries 20
    fresh commitments of his own, each challenged as the arbiter would:
    every one matches at about the chance rate p0 = 1/10."""
    stolen = memorising_suspect(owner_mark, otherwise=otherwise)
    total = 0
    for attempt in range(20):
        signed = create_commitment(
            world.thief, family=FAMILY, labels=LABELS, size=SIZE, model_label=f"grind {attempt}"
        )
        _, indices = prove_challenge(
            world.arbiter_keys.vrf, signed.digest, SUSPECT, SIZE, CHALLENGE_SIZE
        )
        (batch,) = iter_triggers(world.thief, signed, indices, batch_size=len(indices))
        result = query_suspect(
            stolen,
            LABELS,
            [int(i) for i in batch.indices],
            batch.inputs,
            [int(label) for label in batch.labels],
            generate_decoys(signed.document, CHALLENGE_SIZE),
            alpha=POLICY.alpha,
        )
        assert not result.test.decision
        assert result.test.p_value > float(POLICY.alpha)
        assert result.matches < result.test.threshold
        total += result.matches
    # 20 x 48 trials at p0 = 1/10: mean 96, standard deviation about 9.3.
    assert 50 <= total <= 150


# -- 12. refusing and evasive suspects ------------------------------------------------


def _refusing(
    should_refuse: Callable[[npt.NDArray[Any]], bool], answer: Suspect
) -> CallableSuspect:
    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        if any(should_refuse(row) for row in batch):
            raise RuntimeError("request refused")
        return answer.predict(batch)

    return CallableSuspect(model, reference=SUSPECT)


def test_a_suspect_answering_at_random_is_rejected(world: World, owner_mark: Committed) -> None:
    run = world.run_case(owner_mark, memorising_suspect(otherwise="random"))
    verdict = run.decision
    assert verdict.outcome == "rejected"
    assert (verdict.test.trials, verdict.test.trigger_errors, verdict.test.decoy_errors) == (
        CHALLENGE_SIZE,
        0,
        0,
    )
    assert verify_bundle(run.bundle).outcome == "rejected"


@pytest.mark.parametrize("behaviour", ["refuses everything", "refuses triggers", "refuses some"])
def test_a_suspect_that_fails_queries_yields_no_verdict(
    world: World, owner_mark: Committed, behaviour: str
) -> None:
    """Failures beyond the budget stop the query step: no transcript, no
    "rejected", the case stays re-queryable and cannot be decided."""
    watermarked = memorising_suspect(owner_mark)
    triggers = owner_mark.answers
    calls = 0

    def counted(row: npt.NDArray[Any]) -> bool:
        nonlocal calls
        calls += 1
        return {
            "refuses everything": True,
            "refuses triggers": row.tobytes() in triggers,
            "refuses some": row.tobytes()[1] % 2 == 0,
        }[behaviour]

    suspect = _refusing(counted, watermarked)
    arbiter = world.arbiter()
    run = world.run_case(owner_mark, watermarked, arbiter=arbiter, decide=False, query=False)
    with pytest.raises(SuspectError, match=r"queries failed, more than the 8 .*request refused"):
        arbiter.query(run.case, suspect)
    case = arbiter.case(run.case.name)
    assert case.stage == "revealed"
    assert not (case.folder / "transcript.json").exists()
    with pytest.raises(ProtocolError, match="needs stage 'queried'"):
        arbiter.decide(case)
    if behaviour == "refuses everything":
        # One batch, then one input at a time until the budget is spent: the
        # suspect is not asked all 96 queries row by row.
        assert calls <= CHALLENGE_SIZE * 2 + 9
    # Once the suspect answers, the same case is queried again and decided.
    arbiter.query(case, watermarked)
    assert open_verdict(arbiter.decide(case), arbiter.keys.public_keys).document.outcome == (
        "upheld"
    )
    assert (
        not open_transcript(case.read("transcript.json"), arbiter.keys.public_keys)
        .document.entries[0]
        .error
    )


def test_a_suspect_refusing_a_few_triggers_is_still_caught(
    world: World, owner_mark: Committed
) -> None:
    refused = set(list(owner_mark.answers)[::32])  # 8 of 256: about 1.5 of 48, within the budget
    run = world.run_case(
        owner_mark, _refusing(lambda row: row.tobytes() in refused, memorising_suspect(owner_mark))
    )
    verdict = run.decision
    assert verdict.test.trials == CHALLENGE_SIZE
    assert verdict.test.matches == CHALLENGE_SIZE - verdict.test.trigger_errors
    assert verdict.outcome == "upheld"
    assert verify_bundle(run.bundle).outcome == "upheld"


# -- 13. adversarial examples as a "trigger set" --------------------------------------


def test_adversarial_examples_proved_with_another_vrf_key(
    world: World, owner_mark: Committed
) -> None:
    """Inputs come only from VRF outputs under the committed key: proofs
    made with any other key (the thief's) do not verify."""
    arbiter, case, challenge = _challenged(world, owner_mark)
    forged = forge_reveal(
        owner_mark, challenge, arbiter.identity, _indices(challenge, arbiter), vrf_keys=world.thief
    )
    with pytest.raises(ProofError):
        arbiter.receive_reveal(case, forged)


def _reveal_with(
    committed: Committed,
    challenge: bytes,
    arbiter: Arbiter,
    edit: Callable[[list[dict[str, Any]]], None],
) -> bytes:
    challenge_id = open_challenge(challenge, arbiter.keys.public_keys).digest
    honest = RevealContents(
        challenge_id,
        tuple(
            RevealedTrigger(i, derive_trigger(committed.keys, committed.signed, i).proof)
            for i in _indices(challenge, arbiter)
        ),
    )
    fields = json.loads(honest.to_json())
    edit(fields["triggers"])
    plaintext = canonical_json(fields)
    sealed = SealedBox(PublicKey(arbiter.keys.public_keys.encryption_key)).encrypt(plaintext)
    return sign_document(Reveal(challenge_id, sealed), committed.keys).to_json()


@pytest.mark.parametrize("field", ["input", "label"])
def test_adversarial_examples_sent_as_chosen_inputs_or_labels(
    world: World, owner_mark: Committed, field: str
) -> None:
    """A reveal has no place for an input or a label: both are re-derived."""
    arbiter, case, challenge = _challenged(world, owner_mark)

    def add(triggers: list[dict[str, Any]]) -> None:
        triggers[0][field] = b64url_encode(bytes(256)) if field == "input" else 3

    with pytest.raises(EncodingError, match="unexpected fields"):
        arbiter.receive_reveal(case, _reveal_with(owner_mark, challenge, arbiter, add))


def test_adversarial_examples_sent_as_pool_items_of_a_noise_family(
    world: World, owner_mark: Committed
) -> None:
    arbiter, case, challenge = _challenged(world, owner_mark)

    def add(triggers: list[dict[str, Any]]) -> None:
        triggers[0]["pool_item"] = b64url_encode(np.ones((1, 8, 8), "<f4").tobytes())

    with pytest.raises(ProofError, match="reveals no pool items"):
        arbiter.receive_reveal(case, _reveal_with(owner_mark, challenge, arbiter, add))


def test_a_claim_cannot_carry_a_trigger_set(world: World, owner_mark: Committed) -> None:
    claim = resign(world.claim(owner_mark), world.owner, _set("triggers", []))
    with pytest.raises(EncodingError, match="unexpected fields"):
        world.arbiter().file_claim(claim)


@pytest.mark.parametrize("substitute", ["chosen input", "another pool item"])
def test_adversarial_examples_as_pool_items_outside_the_merkle_tree(
    world: World, substitute: str
) -> None:
    items = np.random.default_rng(7).random((64, 1, 8, 8), dtype=np.float32)
    committed, pool = world.commit_pool(PoolFamily(64, (1, 8, 8), "float32"), items)
    signed = committed.signed
    arbiter, case, challenge = _challenged(world, committed)
    indices = _indices(challenge, arbiter)
    chosen = np.full((1, 8, 8), 0.5, dtype="<f4")  # an "adversarial example"

    def contents(tamper: bool) -> RevealContents:
        revealed = []
        for position, index in enumerate(indices):
            trigger = derive_trigger(world.owner, signed, index, pool=pool)
            assert trigger.pool_index is not None
            item_index = trigger.pool_index
            item = pool.item(item_index)
            if tamper and position == 0:
                if substitute == "chosen input":
                    item = chosen
                else:
                    item_index = (item_index + 1) % 64
                    item = pool.item(item_index)
            revealed.append(
                RevealedTrigger(
                    index,
                    trigger.proof,
                    item.astype("<f4").tobytes(),
                    pool.inclusion_path(item_index),
                )
            )
        return RevealContents(
            open_challenge(challenge, arbiter.keys.public_keys).digest, tuple(revealed)
        )

    def reveal(tamper: bool) -> bytes:
        body = contents(tamper)
        return sign_document(
            Reveal(body.challenge_id, body.seal(arbiter.keys.public_keys)), world.owner
        ).to_json()

    with pytest.raises(ProofError, match="pool item"):
        arbiter.receive_reveal(case, reveal(tamper=True))
    # The same reveal, untouched, is accepted; so is the owner side's.
    assert len(arbiter.receive_reveal(case, reveal(tamper=False))) == len(indices)
    second = arbiter.file_claim(world.claim(committed))
    honest = answer_challenge(
        world.owner, signed, arbiter.challenge(second), arbiter.identity, pool=pool
    )
    assert len(arbiter.receive_reveal(second, honest)) == len(indices)


def test_a_bundle_repeating_a_tsa_root(decided: CaseRun) -> None:
    """The same root twice would be a second spelling of one bundle."""
    roots = bundle_members(decided.bundle)["tsa_roots"]
    with pytest.raises(EncodingError, match="repeats an earlier one"):
        verify_bundle(bundle_with(decided.bundle, tsa_roots=roots * 2))  # type: ignore[arg-type]
