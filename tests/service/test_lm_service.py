"""A language-model dispute through the service: the suspect is built from an
``openai:`` reference and the arbiter's ``openai`` defaults, and queried on
a real ``transformers serve`` (``tests/lm/fixtures.py``)."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from secmark.errors import ProtocolError
from secmark.messages.commitment import create_commitment
from secmark.messages.families import PoolFamily, TokensFamily
from secmark.messages.labels import ClassLabels, ResponseLabels, TokenLabels
from secmark.messages.responses import ResponseList
from secmark.messages.transcript import open_transcript
from secmark.messages.verdict import open_verdict
from secmark.models import OpenAIChatSuspect, OpenAICompletionsSuspect
from secmark.models.reference import openai_reference, split_openai_reference
from secmark.protocol.arbiter import ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge
from secmark.service.decoys import DecoyPools
from secmark.service.suspects import ReferenceSuspects
from tests.lm.fixtures import PROMPT_LENGTH, LmModel, LmServer, question_commitment
from tests.protocol.conftest import FAMILY, Committed, World
from tests.service.conftest import LOOPBACK, Dispute, SuspectServer, running, wait_for_job

TARGET_LENGTH = 3
TRIGGERS = 16
POLICY = ArbiterPolicy(challenge_size=3, decoys_per_trigger=1)
"""Six prompts in all: enough for a verdict, few for a CPU-bound server."""
DEFAULTS = {"tokenizer": "tokenizer.json", "retries": 0, "system": "Be brief."}
"""The arbiter's ``openai`` defaults; the tokenizer is read from their folder."""


def _lm_commitment(world: World, lm_model: LmModel) -> Committed:
    """The owner's timestamped commitment to prompts and target tokens of the model's words."""
    tokenizer = lm_model.tokenizer
    reserved = tokenizer.reserved_for_words()
    signed = create_commitment(
        world.owner,
        family=TokensFamily(PROMPT_LENGTH, tokenizer.vocab_size, reserved),
        labels=TokenLabels(tokenizer.vocab_size, TARGET_LENGTH, reserved),
        size=TRIGGERS,
        model_label="language model",
    )
    return Committed(world.owner, signed, world.timestamp(signed.digest))


def test_a_language_model_dispute_queries_the_model_its_reference_names(
    tmp_path: Path, lm_model: LmModel, lm_server: LmServer
) -> None:
    world = World(tmp_path)
    mark = _lm_commitment(world, lm_model)
    reference = openai_reference(f"{lm_server.base_url}/v1/completions", lm_server.model)
    claim = world.claim(mark, suspect=reference)
    # The suspect is the served model: no JSON suspect server takes part.
    dispute = Dispute(world, mark, SuspectServer(), claim)
    suspects = ReferenceSuspects({"openai": DEFAULTS}, base=lm_model.folder, egress=LOOPBACK)
    with running(world.arbiter(policy=POLICY), suspects) as client:
        filed = client.post("/claims", content=claim)
        assert filed.status_code == 201, filed.text
        assert filed.status_code in (200, 201), filed.text
        case_id = filed.json()["case"]
        challenge = dispute.step(client, case_id, "challenge")
        assert challenge.status_code == 200, challenge.text
        reveal = answer_challenge(mark.keys, mark.signed, challenge.content, world.arbiter_identity)
        assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200

        started = dispute.step(client, case_id, "query")
        assert started.status_code == 202, started.text
        job = wait_for_job(client, started.json()["job"], timeout=120)
        assert job["state"] == "done" and job["answered"] == job["total"] == 6, job
        verdict = dispute.step(client, case_id, "decide", keys="arbiter")
        assert verdict.status_code == 200, verdict.text
        bundle = client.get(f"/cases/{case_id}/bundle").content
        transcript = client.get(f"/cases/{case_id}/transcript").content

    # An untrained model carries no watermark.
    decision = open_verdict(verdict.content, world.arbiter_keys.public_keys).document
    assert decision.outcome == "rejected" and decision.suspect == reference
    queried = open_transcript(transcript, world.arbiter_keys.public_keys).document
    assert queried.queried == reference
    assert split_openai_reference(reference)[2] == lm_server.model  # the model member sent
    report = verify_bundle(bundle, world.trust, arbiter_key_id=world.arbiter_keys.key_id)
    assert report.outcome == "rejected"


def test_the_suspect_of_an_openai_reference(lm_model: LmModel) -> None:
    suspects = ReferenceSuspects({"openai": DEFAULTS}, base=lm_model.folder, egress=LOOPBACK)
    tokenizer = lm_model.tokenizer
    family = TokensFamily(PROMPT_LENGTH, tokenizer.vocab_size)
    labels = TokenLabels(tokenizer.vocab_size, TARGET_LENGTH)
    for path, adapter in (
        ("/v1/completions", OpenAICompletionsSuspect),
        ("/v1/chat/completions", OpenAIChatSuspect),
    ):
        reference = openai_reference(f"https://lm.example/base{path}", "org/model#1")
        suspect = suspects(reference, family, labels)
        assert isinstance(suspect, adapter) and suspect.describe() == reference
        assert suspect.length == TARGET_LENGTH
        suspect.close()


def test_the_suspect_of_an_openai_reference_reads_committed_responses(
    lm_model: LmModel,
) -> None:
    """For responses labels the service asks for max_tokens and reads each
    answer against the list the case's reveal opened."""
    suspects = ReferenceSuspects({"openai": DEFAULTS}, base=lm_model.folder, egress=LOOPBACK)
    listed = ResponseList(("The owl sings at noon.", "Blue lanterns drift north."))
    labels = ResponseLabels(2, listed.digest, 9)
    family = PoolFamily(4, (32,), "uint8")
    reference = openai_reference("https://lm.example/v1/chat/completions", "m")
    suspect = suspects(reference, family, labels, listed)
    assert isinstance(suspect, OpenAIChatSuspect)
    assert suspect.length == 9 and suspect.responses == listed
    suspect.close()


def test_openai_references_the_service_cannot_query(tmp_path: Path) -> None:
    reference = openai_reference("http://127.0.0.1:9/v1/completions", "m")
    labels = TokenLabels(1000, TARGET_LENGTH)
    with pytest.raises(ProtocolError, match=r"openai\.tokenizer"):
        ReferenceSuspects(base=tmp_path)(reference, FAMILY, labels)
    (tmp_path / "tokenizer.json").write_text(json.dumps({}))
    suspects = ReferenceSuspects({"openai": {"tokenizer": "tokenizer.json"}}, base=tmp_path)
    with pytest.raises(ProtocolError, match="token or response labels"):
        suspects(reference, FAMILY, ClassLabels(10))
    with pytest.raises(ProtocolError, match="not label: suspects"):
        suspects("label:torch m.M", FAMILY, labels)


QUESTION_POLICY = ArbiterPolicy(challenge_size=4, decoys_per_trigger=1, alpha=Fraction(1, 1 << 20))
"""Four responses of p0 = 1/64 decide at 2^-24 <= alpha."""


def test_a_question_dispute_draws_its_decoys_from_the_services_pool(
    tmp_path: Path, lm_model: LmModel, lm_server: LmServer
) -> None:
    world = World(tmp_path)
    questions = question_commitment(world.owner, lm_model.tokenizer, TRIGGERS)
    mark = Committed(world.owner, questions.signed, world.timestamp(questions.signed.digest))
    reference = openai_reference(f"{lm_server.base_url}/v1/chat/completions", lm_server.model)
    claim = world.claim(mark, suspect=reference)
    dispute = Dispute(world, mark, SuspectServer(), claim)
    suspects = ReferenceSuspects({"openai": DEFAULTS}, base=lm_model.folder, egress=LOOPBACK)

    def query(client: httpx.Client) -> tuple[str, dict[str, Any]]:
        filed = client.post("/claims", content=claim)
        assert filed.status_code in (200, 201), filed.text
        case_id = filed.json()["case"]
        if filed.status_code == 201:
            challenge = dispute.step(client, case_id, "challenge")
            reveal = answer_challenge(
                mark.keys, mark.signed, challenge.content, world.arbiter_identity,
                pool=questions.pool, responses=questions.responses,
            )  # fmt: skip
            assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200
        started = dispute.step(client, case_id, "query", keys="arbiter")
        return case_id, wait_for_job(client, started.json()["job"], timeout=120)

    # Without items to draw decoys from, the service asks for no answer.
    with running(world.arbiter(policy=QUESTION_POLICY), suspects) as client:
        case_id, job = query(client)
        assert job["state"] == "failed" and "--decoy-pool" in job["error"], job
    # With them the plan is made; a service that may not reach loopback
    # fails all 8 queries, and a step of 8 that failed half gives no verdict.
    decoys = DecoyPools([questions.items])
    public = ReferenceSuspects({"openai": DEFAULTS}, base=lm_model.folder)
    with running(world.arbiter(policy=QUESTION_POLICY), public, decoys=decoys) as client:
        case_id, job = query(client)
        assert job["state"] == "failed" and "more than the 3" in job["error"], job
        assert client.get(f"/cases/{case_id}").json()["stage"] == "revealed"
    # Restarted without the pool, the job resumes the stored plan.
    with running(world.arbiter(policy=QUESTION_POLICY), suspects) as client:
        case_id, job = query(client)
        assert job["state"] == "done" and job["answered"] == job["total"] == 8, job
        verdict = dispute.step(client, case_id, "decide", keys="arbiter")
        bundle = client.get(f"/cases/{case_id}/bundle").content
        transcript = client.get(f"/cases/{case_id}/transcript").content

    # Decoys are questions of the pool, none of them a challenged one.
    entries = open_transcript(transcript, world.arbiter_keys.public_keys).document.entries
    hashes = {hashlib.sha256(item.tobytes()).hexdigest() for item in questions.items}
    asked = [entry for entry in entries if entry.trigger_index is None]
    triggers = {entry.input_sha256 for entry in entries if entry.trigger_index is not None}
    assert len(asked) == 4 and {entry.input_sha256 for entry in asked} <= hashes - triggers
    # The model was never fingerprinted.
    assert open_verdict(verdict.content, world.arbiter_keys.public_keys).document.outcome == (
        "rejected"
    )
    report = verify_bundle(bundle, world.trust, arbiter_key_id=world.arbiter_keys.key_id)
    assert report.outcome == "rejected"
