"""The arbiter service over real HTTP: a whole dispute, idempotency, signed
requests, problem documents, limits, metrics, and a query job that resumes
after a restart."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from secmark.encoding import utc_now
from secmark.messages.verdict import open_verdict
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge
from secmark.protocol.querying import DEFAULT_QUERY_BATCH
from secmark.service.audit import AuditLog
from secmark.service.db import DB_FILE, ServiceDatabase
from secmark.service.limits import ServiceLimits
from tests.protocol.conftest import CHALLENGE_SIZE, resign
from tests.service.conftest import (
    BATCH,
    JSON_DEFAULTS,
    STORES,
    Dispute,
    arbiter_folder,
    assert_problem,
    json_suspects,
    running,
    serve_process,
    wait_for_job,
)

QUERIES = 2 * CHALLENGE_SIZE


@pytest.mark.parametrize("dispute", STORES, indirect=True)
def test_a_whole_dispute_through_http_ends_in_a_verified_bundle(dispute: Dispute) -> None:
    world, mark = dispute.world, dispute.mark
    arbiter = dispute.arbiter()
    with running(arbiter, json_suspects(world.folder)) as client:
        filed = client.post("/claims", content=dispute.claim)
        assert filed.status_code == 201, filed.text
        case_id = filed.json()["case"]
        assert (
            filed.json()["stage"] == "claimed" and filed.headers["location"] == f"/cases/{case_id}"
        )
        again = client.post("/claims", content=dispute.claim)
        assert again.status_code == 200 and again.json()["case"] == case_id
        listed = client.get(f"/commitments/{mark.digest}/cases").json()
        assert listed == {"commitment": mark.digest, "cases": [case_id]}

        challenge = dispute.step(client, case_id, "challenge")
        assert challenge.status_code == 200, challenge.text
        again = dispute.step(client, case_id, "challenge", keys="arbiter")
        assert again.content == challenge.content
        reveal = answer_challenge(mark.keys, mark.signed, challenge.content, world.arbiter_identity)
        answered = client.post(f"/cases/{case_id}/reveal", content=reveal)
        assert answered.status_code == 200, answered.text
        assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200
        other = answer_challenge(mark.keys, mark.signed, challenge.content, world.arbiter_identity)
        assert_problem(client.post(f"/cases/{case_id}/reveal", content=other), 409)

        started = dispute.step(client, case_id, "query")
        assert started.status_code == 202, started.text
        job = wait_for_job(client, started.json()["job"])
        assert job["state"] == "done" and job["answered"] == job["total"] == QUERIES, job
        assert dispute.step(client, case_id, "query").json()["job"] == job["job"]
        assert len(dispute.suspect.answered) == len(set(dispute.suspect.answered)) == QUERIES

        # Before the decision the transcript is the parties' only.
        path = f"/cases/{case_id}/transcript"
        assert_problem(client.get(path), 401)
        read = client.get(path, headers=dispute.sign("GET", path, keys="arbiter"))
        assert read.status_code == 200

        verdict = dispute.step(client, case_id, "decide", keys="arbiter")
        assert verdict.status_code == 200, verdict.text
        assert dispute.step(client, case_id, "decide").content == verdict.content
        decision = open_verdict(verdict.content, world.arbiter_keys.public_keys).document
        assert decision.outcome == "upheld"
        assert client.get(f"/cases/{case_id}/verdict").content == verdict.content
        state = client.get(f"/cases/{case_id}").json()
        assert state["stage"] == "decided" and state["outcome"] == "upheld"
        assert client.get(path).status_code == 200  # public once decided

        bundle = client.get(f"/cases/{case_id}/bundle")
        assert bundle.status_code == 200
        report = verify_bundle(
            bundle.content, world.trust, arbiter_key_id=world.arbiter_keys.key_id
        )
        assert report.outcome == "upheld"
        page = client.get(f"/cases/{case_id}/page")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "the suspect carries the owner" in page.text and case_id[:16] in page.text

        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
        stages = {s.labels["stage"]: s.value for s in families["secmark_cases"].samples}
        assert stages["decided"] == 1 and stages["claimed"] == 0
        jobs = {s.labels["state"]: s.value for s in families["secmark_query_jobs"].samples}
        assert jobs["done"] == 1
        requests = families["secmark_http_requests"].samples
        assert any(s.labels["status"] == "201" and s.value == 1 for s in requests)
        errors = {s.labels["status"] for s in families["secmark_http_errors"].samples}
        assert {"401", "409"} <= errors

    # One database: the service's tables beside the arbiter's cases when
    # those are in a database, else the folder's own file.
    database = ServiceDatabase.for_arbiter(dispute.arbiter())
    assert (dispute.database is None) == (world.folder / "arbiter" / DB_FILE).exists()
    audit = AuditLog(database).entries()
    database.close()
    events = [row["event"] for row in audit if row["kind"] == "transition"]
    assert events[0] == "claim filed" and events[-1] == "decided: upheld"
    assert {"challenged", "revealed"} <= set(events)
    assert any(row["path"] == "/claims" and row["status"] == 201 for row in audit)


def test_reading_the_reveal_needs_a_fresh_signature_by_a_party(dispute: Dispute) -> None:
    world, mark = dispute.world, dispute.mark
    with running(dispute.arbiter(), json_suspects(world.folder)) as client:
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        challenge = dispute.step(client, case_id, "challenge").content
        reveal = answer_challenge(mark.keys, mark.signed, challenge, world.arbiter_identity)
        client.post(f"/cases/{case_id}/reveal", content=reveal)
        path = f"/cases/{case_id}/reveal"

        problem = assert_problem(client.get(path), 401)
        assert "sign the request" in problem["detail"]
        headers = dispute.sign("GET", path)
        read = client.get(path, headers=headers)
        assert read.status_code == 200 and read.content == reveal
        assert "accepted before" in assert_problem(client.get(path, headers=headers), 401)["detail"]
        old = dispute.sign("GET", path, now=utc_now() - timedelta(minutes=6))
        assert (
            "from the service's clock"
            in assert_problem(client.get(path, headers=old), 401)["detail"]
        )
        future = dispute.sign("GET", path, now=utc_now() + timedelta(minutes=6))
        assert_problem(client.get(path, headers=future), 401)
        assert_problem(client.get(path, headers=dispute.sign("GET", path, keys="thief")), 403)
        elsewhere = dispute.sign("GET", f"/cases/{case_id}/transcript")
        assert (
            "does not verify" in assert_problem(client.get(path, headers=elsewhere), 401)["detail"]
        )
        garbled = {"Authorization": headers["Authorization"].replace("keyid=", "key=")}
        assert_problem(client.get(path, headers=garbled), 401)
        arbiter = client.get(path, headers=dispute.sign("GET", path, keys="arbiter"))
        assert arbiter.status_code == 200


def test_the_steps_that_cost_or_decide_need_a_signature_by_a_party(dispute: Dispute) -> None:
    world, mark = dispute.world, dispute.mark
    with running(dispute.arbiter(), json_suspects(world.folder)) as client:
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        for step in ("challenge", "query", "decide"):
            path = f"/cases/{case_id}/{step}"
            problem = assert_problem(client.post(path), 401)
            assert "sign the request" in problem["detail"]
            assert_problem(dispute.step(client, case_id, step, keys="thief"), 403)
            # Signed for another step, or for a GET: it does not verify here.
            other = dispute.sign("POST", f"/cases/{case_id}/reveal")
            assert_problem(client.post(path, headers=other), 401)
            assert_problem(client.post(path, headers=dispute.sign("GET", path)), 401)
        assert client.get(f"/cases/{case_id}").json()["stage"] == "claimed"
        # Nothing was issued to the refused requests; a party's works.
        challenge = dispute.step(client, case_id, "challenge")
        assert challenge.status_code == 200, challenge.text
        reveal = answer_challenge(mark.keys, mark.signed, challenge.content, world.arbiter_identity)
        assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200
        assert dispute.step(client, case_id, "query", keys="arbiter").status_code == 202


def test_every_error_is_a_problem_document(dispute: Dispute) -> None:
    world = dispute.world
    limits = ServiceLimits(max_body=4096, rate=0.5, burst=30)
    with running(dispute.arbiter(), json_suspects(world.folder), limits) as client:
        unknown = "ab" * 32
        assert_problem(client.get(f"/cases/{unknown}"), 404)
        assert_problem(client.get("/cases/not-an-id"), 404)
        assert_problem(client.get("/jobs/nothing"), 404)
        assert_problem(client.get("/nowhere"), 404)
        assert_problem(client.delete("/claims"), 405)
        assert_problem(client.get("/commitments/xyz/cases"), 400)
        assert_problem(client.post("/claims", content=b"{not json"), 400)
        assert_problem(client.post("/claims", content=b"x" * 5000), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(10):
                yield b"x" * 1000

        assert_problem(client.post("/claims", content=chunks()), 413)
        assert_problem(client.post(f"/cases/{unknown}/decide"), 404)
        assert client.get("/openapi.json").json()["paths"]["/claims"]["post"]
        while (response := client.get("/metrics")).status_code != 429:
            assert response.status_code == 200
        problem = assert_problem(response, 429)
        assert int(response.headers["retry-after"]) >= 1 and "rate" in problem["detail"]


def test_a_claim_that_does_not_verify_or_comes_too_early(dispute: Dispute) -> None:
    world = dispute.world
    with running(dispute.arbiter(), json_suspects(world.folder)) as client:
        # A claim for another arbiter: well formed and signed, not acceptable here.
        foreign = world.claim(
            dispute.mark, suspect=dispute.reference, arbiter=world.other_arbiter_identity
        )
        assert_problem(client.post("/claims", content=foreign), 409)
        # Signed by another key than the commitment's owner.
        forged = resign(dispute.claim, world.thief, lambda payload: None)
        assert_problem(client.post("/claims", content=forged), 403)
        assert_problem(client.post("/claims", content=dispute.claim[:-20]), 400)
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        for step in ("query", "decide"):
            assert_problem(dispute.step(client, case_id, step), 409)
        for part in ("verdict", "bundle", "page"):
            assert_problem(client.get(f"/cases/{case_id}/{part}"), 409)


def test_a_query_job_stopped_with_the_service_resumes_after_a_restart(dispute: Dispute) -> None:
    world, mark, suspect = dispute.world, dispute.mark, dispute.suspect
    suspect.delay = 0.3
    suspects = json_suspects(world.folder)
    with running(dispute.arbiter(), suspects) as client:
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        challenge = dispute.step(client, case_id, "challenge").content
        reveal = answer_challenge(mark.keys, mark.signed, challenge, world.arbiter_identity)
        client.post(f"/cases/{case_id}/reveal", content=reveal)
        job_id = dispute.step(client, case_id, "query").json()["job"]
        wait_for_job(client, job_id, until=("running",))
        while suspect.requests < 2:
            time.sleep(0.02)
    # Stopped: the batch in flight was answered and kept, no later one was sent.
    before = list(suspect.answered)
    assert 2 * 16 <= len(before) < QUERIES
    suspect.delay = 0.0
    with running(dispute.arbiter(), suspects) as client:
        job = wait_for_job(client, job_id)
        assert job["state"] == "done", job
        assert client.get(f"/cases/{case_id}").json()["stage"] == "queried"
        verdict = dispute.step(client, case_id, "decide").content
    decision = open_verdict(verdict, world.arbiter_keys.public_keys).document
    assert decision.outcome == "upheld"
    assert decision.test.matches == decision.test.trials == CHALLENGE_SIZE
    # Nothing was asked twice, and everything was asked.
    assert len(suspect.answered) == len(set(suspect.answered)) == QUERIES
    assert suspect.answered[: len(before)] == before


def test_a_query_job_survives_kill_9_of_the_serve_command(dispute: Dispute) -> None:
    """``secmark arbiter serve`` killed mid-query: at restart the job resumes
    and only the batch in flight at the kill is asked again (the arbiter
    stores answers per query batch of DEFAULT_QUERY_BATCH inputs, which the
    suspect adapter sends in requests of BATCH)."""
    world, mark, suspect = dispute.world, dispute.mark, dispute.suspect
    folder = arbiter_folder(world)
    defaults = world.folder / "suspects.json"
    defaults.write_text(json.dumps({"json": JSON_DEFAULTS}))
    log = world.folder / "serve.log"
    suspect.delay = 0.3
    with serve_process(folder, defaults, log) as (process, client):
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        challenge = dispute.step(client, case_id, "challenge").content
        reveal = answer_challenge(mark.keys, mark.signed, challenge, world.arbiter_identity)
        assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200
        job_id = dispute.step(client, case_id, "query").json()["job"]
        while suspect.requests <= DEFAULT_QUERY_BATCH // BATCH:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    time.sleep(0.4)  # the batch in flight may still be answered, to nobody
    before = list(suspect.answered)
    suspect.delay = 0.0
    with serve_process(folder, defaults, log) as (_, client):
        job = wait_for_job(client, job_id)
        assert job["state"] == "done", job
        verdict = dispute.step(client, case_id, "decide").content
    decision = open_verdict(verdict, world.arbiter_keys.public_keys).document
    assert decision.outcome == "upheld"
    assert decision.test.matches == decision.test.trials == CHALLENGE_SIZE
    after = suspect.answered[len(before) :]
    assert len(after) == len(set(after)) and set(before) | set(after) == set(suspect.answered)
    assert len(set(suspect.answered)) == QUERIES
    assert not set(before[:DEFAULT_QUERY_BATCH]) & set(after)  # stored: never asked again
    assert len(after) == QUERIES - DEFAULT_QUERY_BATCH  # the batch in flight, asked again
