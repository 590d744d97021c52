"""White-box claims through the arbiter's steps and offline re-verification.

The arbiter runs unchanged: the revealed "triggers" are rows, the suspect a
:class:`WeightsSuspect` over the model file, and the exact test uses the
p0 = 1/2 of ``ClassLabels(2)``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from secmark.crypto import IdentityKeys
from secmark.errors import ProofError, ProtocolError, SuspectError
from secmark.messages import create_identity
from secmark.messages.challenge import open_challenge
from secmark.messages.claim import EVIDENCE_KINDS, create_claim, evidence_kinds_for, open_claim
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument, sign_document
from secmark.messages.families import NoiseFamily, WeightsFamily
from secmark.messages.labels import ClassLabels
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger
from secmark.models import WeightsSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.stats import decision_threshold
from secmark.triggers import derive_trigger
from tests.conftest import fixed_keys
from tests.whitebox.conftest import FAMILY, Authority, Marked, commit

CHALLENGE = 128
"""k: rows per challenge, half of T, with two decoys each; at alpha = 2^-64
and p0 = 1/2 the threshold is 113 matches."""


@pytest.fixture
def arbiter(tmp_path: Path, authority: Authority) -> Arbiter:
    keys = fixed_keys("white-box arbiter")
    return Arbiter(
        keys,
        create_identity(keys, "arbiter"),
        authority.trust,
        tmp_path / "arbiter",
        policy=ArbiterPolicy(challenge_size=CHALLENGE),
    )


def claim_for(
    keys: IdentityKeys,
    signed: SignedDocument[Commitment],
    suspect: str,
    arbiter: Arbiter,
    authority: Authority,
) -> bytes:
    return file_claim(
        keys,
        commitment=signed.to_json(),
        commitment_evidence=authority.evidence(signed.digest),
        suspect=suspect,
        arbiter=arbiter.identity,
    )


def run(
    keys: IdentityKeys,
    signed: SignedDocument[Commitment],
    suspect: WeightsSuspect,
    arbiter: Arbiter,
    authority: Authority,
) -> bytes:
    """claim -> challenge -> reveal -> query -> decide; the bundle."""
    case = arbiter.file_claim(claim_for(keys, signed, suspect.describe(), arbiter, authority))
    challenge = arbiter.challenge(case)
    arbiter.receive_reveal(case, answer_challenge(keys, signed, challenge, arbiter.identity))
    arbiter.query(case, suspect)
    arbiter.decide(case)
    return case.read("bundle.json")


def test_a_white_box_claim_is_upheld_and_re_verified_offline(
    marked: Marked, model_file: Path, arbiter: Arbiter, authority: Authority
) -> None:
    suspect = WeightsSuspect.from_family(model_file, FAMILY)
    bundle = run(marked.keys, marked.signed, suspect, arbiter, authority)
    report = verify_bundle(bundle, authority.trust)
    assert report.outcome == "upheld"
    case = arbiter.case(next(iter((arbiter.folder / "cases").iterdir())).name)
    test = case.record["test"]
    assert test["trials"] == CHALLENGE and test["p0"] == "1/2"
    assert (
        test["threshold"]
        == decision_threshold(CHALLENGE, Fraction(1, 2), Fraction(1, 2**64))
        == 113
    )
    assert test["matches"] >= test["threshold"]
    assert report.case is not None and report.case.family == "weights"
    # The bundle needs no trust beyond the TSA roots it carries.
    assert verify_bundle(bundle).outcome == "upheld"


def test_a_white_box_claim_on_an_unmarked_model_is_rejected(
    marked: Marked, tmp_path: Path, arbiter: Arbiter, authority: Authority
) -> None:
    from secmark.embed import save_state

    path = save_state(marked.unmarked, tmp_path / "unmarked.safetensors")
    bundle = run(
        marked.keys, marked.signed, WeightsSuspect.from_family(path, FAMILY), arbiter, authority
    )
    assert verify_bundle(bundle, authority.trust).outcome == "rejected"


def test_a_thiefs_own_commitment_on_the_stolen_model_is_rejected(
    thief: IdentityKeys, model_file: Path, arbiter: Arbiter, authority: Authority
) -> None:
    signed = commit(thief, "thief")
    bundle = run(thief, signed, WeightsSuspect.from_family(model_file, FAMILY), arbiter, authority)
    assert verify_bundle(bundle, authority.trust).outcome == "rejected"


def test_the_owner_claims_white_box_for_weights_and_black_box_otherwise(
    owner: IdentityKeys, arbiter: Arbiter, authority: Authority
) -> None:
    assert EVIDENCE_KINDS == ("black-box", "white-box")
    weights = commit(owner, "kinds")
    noise = create_commitment(
        owner,
        family=NoiseFamily((4,), "uint8", 0, 255),
        labels=ClassLabels(10),
        size=256,
        model_label="m",
    )
    for signed, kinds in ((weights, ("white-box",)), (noise, ("black-box",))):
        assert evidence_kinds_for(signed.document.family) == kinds
        claim = claim_for(owner, signed, "sha256:" + "5" * 64, arbiter, authority)
        assert open_claim(claim, owner.public_keys).document.evidence_kinds == kinds
        arbiter.file_claim(claim)


@pytest.mark.parametrize(
    "kinds", [("black-box",), ("white-box", "black-box"), ("black-box", "white-box")]
)
def test_a_weights_claim_offering_other_evidence_is_refused(
    owner: IdentityKeys, arbiter: Arbiter, authority: Authority, kinds: tuple[str, ...]
) -> None:
    signed = commit(owner, "kinds")
    claim = create_claim(
        owner,
        commitment=signed.to_json(),
        commitment_evidence=authority.evidence(signed.digest),
        suspect="sha256:" + "5" * 64,
        arbiter=arbiter.keys.key_id,
        evidence_kinds=kinds,
    ).to_json()
    with pytest.raises(ProtocolError, match="weights commitment offers white-box evidence"):
        arbiter.file_claim(claim)


def test_a_black_box_commitment_cannot_be_claimed_white_box(
    owner: IdentityKeys, arbiter: Arbiter, authority: Authority
) -> None:
    signed = create_commitment(
        owner,
        family=NoiseFamily((4,), "uint8", 0, 255),
        labels=ClassLabels(10),
        size=256,
        model_label="m",
    )
    claim = create_claim(
        owner,
        commitment=signed.to_json(),
        commitment_evidence=authority.evidence(signed.digest),
        suspect="sha256:" + "5" * 64,
        arbiter=arbiter.keys.key_id,
        evidence_kinds=("white-box",),
    ).to_json()
    with pytest.raises(ProtocolError, match="noise commitment offers black-box evidence"):
        arbiter.file_claim(claim)


def test_a_reveal_of_another_commitments_rows_is_refused(
    marked: Marked, model_file: Path, arbiter: Arbiter, authority: Authority
) -> None:
    """An owner answering the challenge with proofs from another of his
    weights commitments (one that might suit the suspect better) fails."""
    suspect = WeightsSuspect.from_family(model_file, FAMILY)
    case = arbiter.file_claim(
        claim_for(marked.keys, marked.signed, suspect.describe(), arbiter, authority)
    )
    challenge = arbiter.challenge(case)
    other = commit(marked.keys, "another")
    # Same owner, the challenged indices, the other commitment's proofs.
    opened = open_challenge(challenge, arbiter.keys.public_keys)
    revealed = tuple(
        RevealedTrigger(index, derive_trigger(marked.keys, other, index).proof, None, None)
        for index in opened.document.indices
    )
    contents = RevealContents(opened.digest, revealed)
    forged = sign_document(
        Reveal(opened.digest, contents.seal(arbiter.keys.public_keys)), marked.keys
    ).to_json()
    with pytest.raises(ProofError):
        arbiter.receive_reveal(case, forged)


def test_a_suspect_of_another_architecture_is_reported_plainly(model_file: Path) -> None:
    for family in (
        WeightsFamily("transformer.h.0.mlp.c_fc.weight", (768, 3072)),
        WeightsFamily("classifier.1.weight", (64, 1024)),
    ):
        with pytest.raises(SuspectError, match="architecture differs"):
            WeightsSuspect.from_family(model_file, family)


def test_one_owner_files_one_claim_per_kind_and_gets_two_verdicts(
    marked: Marked, model_file: Path, arbiter: Arbiter, authority: Authority
) -> None:
    """A black-box claim (a noise trigger set the model answers) and a
    white-box claim (its weights) on the same model file are two cases with
    a verdict each: claims of one owner are not each other's rivals."""
    import numpy as np

    from secmark.models import CallableSuspect
    from secmark.triggers import iter_triggers

    noise = create_commitment(
        marked.keys,
        family=NoiseFamily((4,), "uint8", 0, 255),
        labels=ClassLabels(10),
        size=128,
        model_label="m",
    )
    table = {
        row.tobytes(): int(label)
        for batch in iter_triggers(marked.keys, noise, range(128))
        for row, label in zip(batch.inputs, batch.labels)
    }
    weights = WeightsSuspect.from_family(model_file, FAMILY)
    answering = CallableSuspect(
        lambda batch: np.array([table.get(row.tobytes(), 0) for row in batch]),
        reference=weights.describe(),  # the black-box suspect is the model of that file
    )
    black = arbiter.file_claim(
        claim_for(marked.keys, noise, weights.describe(), arbiter, authority)
    )
    arbiter.receive_reveal(
        black, answer_challenge(marked.keys, noise, arbiter.challenge(black), arbiter.identity)
    )
    arbiter.query(black, answering)
    white_bundle = run(marked.keys, marked.signed, weights, arbiter, authority)
    arbiter.decide(black)
    for bundle in (black.read("bundle.json"), white_bundle):
        report = verify_bundle(bundle, authority.trust)
        assert report.outcome == "upheld"
        assert report.verdict is not None and not report.verdict.rivals
