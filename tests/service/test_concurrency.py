"""Fifty claims on one commitment, filed and challenged at once through the
API (threads, one HTTP request each): every case is challenged, and each
challenge counts every other (priors 0..49, levels halving), on the folder
store and on PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from secmark.messages.challenge import open_challenge
from secmark.service.limits import ServiceLimits
from tests.protocol.conftest import POLICY
from tests.service.conftest import Dispute, json_suspects, running

CLAIMS = 50
THREADS = 10


@pytest.mark.parametrize("dispute", ["folder", "postgresql"], indirect=True)
def test_fifty_claims_filed_and_challenged_in_parallel_count_exactly(dispute: Dispute) -> None:
    world, mark = dispute.world, dispute.mark
    claims = [
        world.claim(mark, suspect=f"oip:http://s{n}.example/v2/models/m") for n in range(CLAIMS)
    ]
    arbiter = dispute.arbiter()
    limits = ServiceLimits(rate=1000, burst=1000)
    with running(arbiter, json_suspects(world.folder), limits) as client:
        pool_limits = httpx.Limits(max_connections=THREADS)
        with httpx.Client(base_url=client.base_url, timeout=60, limits=pool_limits) as shared:

            def file(claim: bytes) -> str:
                filed = shared.post("/claims", content=claim)
                assert filed.status_code == 201, filed.text
                case_id: str = filed.json()["case"]
                return case_id

            def challenge(case_id: str) -> bytes:
                path = f"/cases/{case_id}/challenge"
                response = shared.post(path, headers=dispute.sign("POST", path))
                assert response.status_code == 200, response.text
                return response.content

            with ThreadPoolExecutor(THREADS) as pool:
                case_ids = list(pool.map(file, claims))
                challenges = list(pool.map(challenge, case_ids))

        assert len(set(case_ids)) == CLAIMS
        documents = [open_challenge(c, arbiter.keys.public_keys).document for c in challenges]
        assert [d.claim_id for d in documents] == case_ids
        assert sorted(d.prior_challenges for d in documents) == list(range(CLAIMS))
        assert (
            sorted(d.alpha for d in documents) == [POLICY.alpha / 2**j for j in range(CLAIMS)][::-1]
        )
        assert dispute.arbiter().challenges_issued(mark.digest) == CLAIMS
        # The API says the same: each case challenged, with its own prior count.
        states = [client.get(f"/cases/{case_id}").json() for case_id in case_ids]
        assert {state["stage"] for state in states} == {"challenged"}
        assert [state["prior_challenges"] for state in states] == [
            d.prior_challenges for d in documents
        ]
        listed = client.get(f"/commitments/{mark.digest}/cases").json()["cases"]
        assert sorted(listed) == sorted(case_ids)
        metrics = text_string_to_metric_families(client.get("/metrics").text)
        stages = {
            s.labels["stage"]: s.value
            for family in metrics
            if family.name == "secmark_cases"
            for s in family.samples
        }
        assert stages["challenged"] == CLAIMS and stages["claimed"] == 0
