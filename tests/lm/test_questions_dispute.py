"""A whole dispute over a language model fingerprinted with natural
questions and committed responses (specs/derivation.md 7.12): the owner
commits to a question pool and the digest of a response list, fingerprints
a model, reveals the list with the challenge; the arbiter asks the model
the questions among other questions (decoys) as a chat server would, reads
each answer text against the list, and the bundle verifies offline. A model
never fingerprinted gives no committed response."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from secmark.crypto import IdentityKeys
from secmark.embed.lm import lm_triggers
from secmark.examples import lm
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.identity import create_identity
from secmark.messages.responses import ResponseList
from secmark.models.transformers_lm import TransformersSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.timestamp import TimestampAuthority, TrustStore
from secmark.timestamp.evidence import collect_evidence
from secmark.triggers import CommittedPool
from tests.conftest import fixed_keys
from tests.lm.fixtures import LEARNT, LmModel, fingerprint_questions, question_commitment

TRIGGERS = 8
CHALLENGE = 6
ALPHA = Fraction(1, 1 << 20)
"""At p0 = 1/64, 4 of 6 matching responses decide at 2^-20."""


@dataclass(frozen=True)
class Fingerprinted:
    owner: IdentityKeys
    commitment: SignedDocument[Commitment]
    pool: CommittedPool
    items: npt.NDArray[np.uint8]
    responses: ResponseList
    marked: Path
    """The fingerprinted model's folder."""


@pytest.fixture(scope="module")
def fingerprinted(lm_model: LmModel, tmp_path_factory: pytest.TempPathFactory) -> Fingerprinted:
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("questions")
    owner = fixed_keys("owner")
    tokenizer = lm_model.tokenizer
    committed = question_commitment(owner, tokenizer, TRIGGERS)
    commitment, pool, responses = committed.signed, committed.pool, committed.responses
    prompts, targets = lm_triggers(
        owner, commitment, tokenizer=tokenizer, pool=pool, responses=responses
    )
    model = lm.new_model(1)
    reports = fingerprint_questions(model, tokenizer, prompts, targets)
    assert reports[-1].exact_accuracy_after >= LEARNT
    marked = lm.save_model(model, lm_model.folder, folder / "marked")
    return Fingerprinted(owner, commitment, pool, committed.items, responses, marked)


@pytest.mark.parametrize("marked", [True, False], ids=["fingerprinted", "never fingerprinted"])
def test_a_question_and_response_dispute_decides_and_its_bundle_verifies(
    fingerprinted: Fingerprinted, lm_model: LmModel, tmp_path: Path, marked: bool
) -> None:
    owner, commitment = fingerprinted.owner, fingerprinted.commitment
    tsa = TimestampAuthority.initialize(tmp_path / "tsa", passphrase=None, allow_unencrypted=True)
    trust = TrustStore(roots=(tsa.root_certificate,))
    evidence = collect_evidence(commitment.digest, [tsa.respond]).to_json()
    arbiter_keys = fixed_keys("arbiter")
    identity = create_identity(arbiter_keys, "arbiter")
    arbiter = Arbiter(
        arbiter_keys,
        identity,
        trust,
        tmp_path / "arbiter",
        policy=ArbiterPolicy(challenge_size=CHALLENGE, decoys_per_trigger=1, alpha=ALPHA),
    )
    folder = fingerprinted.marked if marked else lm_model.folder
    probe = TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)
    claim = file_claim(
        owner,
        commitment=commitment.to_json(),
        commitment_evidence=evidence,
        suspect=probe.describe(),
        arbiter=identity,
    )
    case = arbiter.file_claim(claim)
    reveal = answer_challenge(
        owner,
        commitment,
        arbiter.challenge(case),
        identity,
        pool=fingerprinted.pool,
        responses=fingerprinted.responses,
    )
    triggers = arbiter.receive_reveal(case, reveal)
    listed = arbiter.responses_of(case)
    assert listed == fingerprinted.responses
    labels = commitment.document.labels
    suspect = TransformersSuspect(
        folder, tokenizer=lm_model.tokenizer, length=labels.max_tokens, responses=listed,
        via_text=True,
    )  # fmt: skip
    asked = {trigger.input.tobytes() for trigger in triggers}
    others = [item for item in fingerprinted.items if item.tobytes() not in asked]
    result = arbiter.query(case, suspect, decoy_pool=others)
    arbiter.decide(case)
    report = verify_bundle(case.read("bundle.json"), trust)
    assert report.outcome == ("upheld" if marked else "rejected")
    if not marked:
        assert result.matches == 0
