"""Committed response lists (specs/derivation.md 7.12) through a whole dispute.

A ``responses`` commitment holds only the list's digest; the owner reveals
the whole list with the challenge. The attacks: a list whose responses are
not prefix-free (one answer would give every trigger's response), a list
that is not the committed one, a list missing or given where none was
committed, and a bundle whose revealed list is swapped afterwards.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.encoding import canonical_json
from secmark.errors import EncodingError, ProofError, ProtocolError
from secmark.messages.challenge import open_challenge
from secmark.messages.commitment import create_commitment
from secmark.messages.document import sign_document
from secmark.messages.labels import ResponseLabels
from secmark.messages.responses import NO_RESPONSE, ResponseList
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger
from secmark.models import CallableSuspect
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge
from secmark.triggers import derive_trigger
from tests.protocol.conftest import (
    FAMILY,
    SUSPECT,
    Committed,
    World,
    bundle_members,
    bundle_with,
)

RESPONSES = ResponseList(tuple(f"Response number {n} of the fingerprint." for n in range(16)))
DUPLICATED = ("Paris",) * 16
"""A list a forger would like: every label names the answer "Paris"."""


def _commit(world: World, listed: tuple[str, ...]) -> Committed:
    digest = hashlib.sha256(canonical_json(list(listed))).hexdigest()
    signed = create_commitment(
        world.owner,
        family=FAMILY,
        labels=ResponseLabels(len(listed), digest, 12),
        size=256,
        model_label="language model",
    )
    return Committed(world.owner, signed, world.timestamp(signed.digest))


def _speaker(
    committed: Committed, text_of: dict[bytes, str], listed: ResponseList
) -> CallableSuspect:
    """A suspect that answers text, read as the arbiter reads it: the index of
    the response the text gives, or NO_RESPONSE."""

    def model(batch: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        texts = [
            text_of.get(np.ascontiguousarray(row).tobytes(), "I do not know.") for row in batch
        ]
        answers = [listed.index_of(text) for text in texts]
        return np.array([NO_RESPONSE if a is None else a for a in answers], dtype=np.int64)

    return CallableSuspect(model, output="labels", reference=SUSPECT)


def _marked_texts(committed: Committed, listed: tuple[str, ...]) -> dict[bytes, str]:
    """Each trigger input -> the text of its committed response, as a marked
    model answers (with some white space first and more words after)."""
    table = {}
    for index in range(committed.signed.document.size):
        trigger = derive_trigger(committed.keys, committed.signed, index)
        table[np.ascontiguousarray(trigger.input).tobytes()] = (
            f"\n {listed[int(trigger.label)]} And so on."
        )
    return table


def _sealed(world: World, committed: Committed, challenge: bytes, responses: Any) -> bytes:
    """The owner's honest reveal of ``challenge`` with ``responses`` as its list."""
    arbiter = world.arbiter_identity
    document = open_challenge(challenge, arbiter.document.public_keys)
    revealed = tuple(
        RevealedTrigger(i, derive_trigger(committed.keys, committed.signed, i).proof)
        for i in document.document.indices
    )
    contents = RevealContents(document.digest, revealed, responses)
    reveal = Reveal(document.digest, contents.seal(arbiter.document.public_keys))
    return sign_document(reveal, committed.keys).to_json()


def test_a_marked_model_answering_text_is_upheld_and_the_bundle_verifies(world: World) -> None:
    committed = _commit(world, RESPONSES.responses)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    challenge = arbiter.challenge(case)
    reveal = answer_challenge(
        committed.keys, committed.signed, challenge, world.arbiter_identity, responses=RESPONSES
    )
    arbiter.receive_reveal(case, reveal)
    listed = arbiter.responses_of(case)
    assert listed == RESPONSES
    arbiter.query(case, _speaker(committed, _marked_texts(committed, RESPONSES.responses), listed))
    arbiter.decide(case)
    report = verify_bundle(case.read("bundle.json"), world.trust)
    assert report.outcome == "upheld"
    contents = json.loads(bundle_members(case.read("bundle.json"))["reveal_contents"])
    assert contents["responses"] == list(RESPONSES.responses)


def test_a_model_answering_no_response_matches_nothing(world: World) -> None:
    committed = _commit(world, RESPONSES.responses)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    reveal = answer_challenge(
        committed.keys,
        committed.signed,
        arbiter.challenge(case),
        world.arbiter_identity,
        responses=RESPONSES,
    )
    arbiter.receive_reveal(case, reveal)
    result = arbiter.query(case, _speaker(committed, {}, RESPONSES))
    assert result.matches == 0 and result.trigger_errors == 0
    answers = {r.answer for r in result.records if r.trigger_index is not None}
    assert answers == {NO_RESPONSE}


def test_a_list_that_is_not_prefix_free_is_refused_at_the_reveal(world: World) -> None:
    # The forger committed the digest of a list naming "Paris" for every
    # label: a suspect answering "Paris" to everything would give each
    # trigger's response. The list cannot be revealed.
    committed = _commit(world, DUPLICATED)
    with pytest.raises(EncodingError):  # the owner's tools cannot even hold it
        ResponseList(DUPLICATED)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    challenge = arbiter.challenge(case)
    labels = [
        int(derive_trigger(committed.keys, committed.signed, i).label)
        for i in open_challenge(challenge, world.arbiter_keys.public_keys).document.indices
    ]
    # Without the rule, "Paris" equals every trigger's response text.
    assert all(DUPLICATED[label] == "Paris" for label in labels)
    with pytest.raises(ProofError, match="starts with the response"):
        arbiter.receive_reveal(case, _sealed(world, committed, challenge, DUPLICATED))
    assert not case.at_least("revealed")


@pytest.mark.parametrize(
    ("revealed", "message"),
    [
        (None, "give the response list"),
        (tuple(reversed(RESPONSES.responses)), "not the committed one"),
        (RESPONSES.responses[:-1], "not the committed one"),
    ],
    ids=["missing", "reordered", "one short"],
)
def test_a_list_other_than_the_committed_one_is_refused(
    world: World, revealed: tuple[str, ...] | None, message: str
) -> None:
    committed = _commit(world, RESPONSES.responses)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    challenge = arbiter.challenge(case)
    with pytest.raises(ProofError, match=message):
        arbiter.receive_reveal(case, _sealed(world, committed, challenge, revealed))


def test_the_owner_cannot_reveal_without_the_committed_list(world: World) -> None:
    committed = _commit(world, RESPONSES.responses)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    challenge = arbiter.challenge(case)
    with pytest.raises(ProtocolError, match="give the response list"):
        answer_challenge(committed.keys, committed.signed, challenge, world.arbiter_identity)
    other = ResponseList(tuple(f"Another response {n}." for n in range(16)))
    with pytest.raises(ProtocolError, match="not the committed one"):
        answer_challenge(
            committed.keys, committed.signed, challenge, world.arbiter_identity, responses=other
        )


def test_a_list_for_a_commitment_without_responses_is_refused(
    world: World, owner_mark: Committed
) -> None:
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(owner_mark))
    challenge = arbiter.challenge(case)
    with pytest.raises(ProofError, match="has no response list"):
        arbiter.receive_reveal(case, _sealed(world, owner_mark, challenge, RESPONSES.responses))


def test_a_bundle_whose_list_was_swapped_fails_verification(world: World) -> None:
    committed = _commit(world, RESPONSES.responses)
    arbiter = world.arbiter()
    case = arbiter.file_claim(world.claim(committed, with_release=False))
    reveal = answer_challenge(
        committed.keys,
        committed.signed,
        arbiter.challenge(case),
        world.arbiter_identity,
        responses=RESPONSES,
    )
    arbiter.receive_reveal(case, reveal)
    arbiter.query(
        case, _speaker(committed, _marked_texts(committed, RESPONSES.responses), RESPONSES)
    )
    arbiter.decide(case)
    bundle = case.read("bundle.json")
    contents = json.loads(bundle_members(bundle)["reveal_contents"])
    contents["responses"] = sorted(contents["responses"])
    with pytest.raises(ProofError, match="response list"):
        verify_bundle(bundle_with(bundle, reveal_contents=canonical_json(contents)), world.trust)
