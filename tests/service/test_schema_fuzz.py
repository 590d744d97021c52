"""The service's OpenAPI schema fuzzed with Schemathesis against the running
service: whatever a generated request holds, the answer is never a 5xx, and
every 4xx is an RFC 9457 problem document (bounded: a few examples per
operation, well under 30 s)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from secmark.service.limits import ServiceLimits
from tests.service.conftest import Dispute, json_suspects, running

EXAMPLES = int(os.environ.get("SECMARK_SCHEMA_EXAMPLES", "4"))
"""Examples per operation and generation mode: a few in the default run;
set SECMARK_SCHEMA_EXAMPLES for a longer run."""
SENT: list[str] = []


def _check(response: Any, label: str) -> None:
    status = response.status_code
    assert status < 500, f"{label}: {status} {response.text[:500]}"
    if status >= 400:
        types = response.headers.get("content-type") or []  # a list per header
        assert types == ["application/problem+json"], f"{label}: {status} {types}"
        problem = json.loads(response.content)
        assert problem["status"] == status and problem["title"] and problem["detail"], label
        assert problem["type"].startswith("https://"), label


@pytest.mark.parametrize("dispute", ["folder", "postgresql"], indirect=True)
def test_the_schema_fuzzed_gives_no_5xx_and_only_problem_documents(dispute: Dispute) -> None:
    world = dispute.world
    limits = ServiceLimits(rate=10_000, burst=10_000)
    with running(dispute.arbiter(), json_suspects(world.folder), limits) as client:
        # A real case, so the fuzzer's ids can reach existing ones too.
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        real = {"case_id": case_id, "commitment_id": dispute.mark.digest, "job_id": "0" * 32}
        base = str(client.base_url)
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        for operation in operations:
            for mode in schemathesis.GenerationMode:
                _fuzz(operation, mode, base)
            # Real ids, so the requests reach a case (headers, bodies fuzzed).
            names = {p.name for p in operation.path_parameters}
            if names:
                ids = {name: real[name] for name in names}
                _fuzz(operation, schemathesis.GenerationMode.POSITIVE, base, ids)
        # Every operation got requests in both modes (some examples may repeat).
        assert len(SENT) > EXAMPLES * len(operations)


def _fuzz(
    operation: Any,
    mode: schemathesis.GenerationMode,
    base: str,
    ids: dict[str, str] | None = None,
) -> None:
    """``EXAMPLES`` requests to ``operation``: valid ones (positive) or ones
    that break its schema (negative)."""
    label = f"{operation.method.upper()} {operation.path} ({mode.value}{', ids' if ids else ''})"

    @given(case=operation.as_strategy(mode, path_parameters=ids))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        response = case.call(base_url=base, timeout=20)
        SENT.append(f"{label} {response.status_code}")
        _check(response, label)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing of the operation's schema can be broken (no parameters, no body).
        assert mode is schemathesis.GenerationMode.NEGATIVE, label
