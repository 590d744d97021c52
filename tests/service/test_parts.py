"""The service's parts: suspects from references, the listen address, and
a failure of the arbiter answered as a problem without internals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secmark.cli.main import main
from secmark.cli.service import parse_listen
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.messages.families import PoolFamily, WeightsFamily
from secmark.models import OipSuspect
from secmark.protocol.owner import answer_challenge
from secmark.service.auth import AuthenticationError, RequestVerifier, sign_request
from secmark.service.db import ServiceDatabase
from secmark.service.decoys import DecoyPools
from secmark.service.suspects import ReferenceSuspects
from tests.conftest import fixed_keys
from tests.protocol.conftest import FAMILY, LABELS
from tests.service.conftest import (
    JSON_DEFAULTS,
    Dispute,
    assert_problem,
    json_suspects,
    running,
    wait_for_job,
)


def test_an_oip_suspect_is_built_from_its_reference(tmp_path: Path) -> None:
    suspects = ReferenceSuspects({"oip": {"batch_size": 8, "timeout": 3}}, base=tmp_path)
    for reference in (
        "oip:http://10.0.0.7:9000/v2/models/digits",
        "oip:https://models.example/api/v2/models/a%20b/versions/3",
    ):
        suspect = suspects(reference, FAMILY, LABELS)
        assert isinstance(suspect, OipSuspect) and suspect.describe() == reference


def test_references_and_defaults_the_service_cannot_query(tmp_path: Path) -> None:
    suspects = ReferenceSuspects(base=tmp_path)
    with pytest.raises(ProtocolError, match="not sha256: suspects"):
        suspects("sha256:" + "ab" * 32, FAMILY, LABELS)
    weights = WeightsFamily.__new__(WeightsFamily)
    with pytest.raises(ProtocolError, match="weights"):
        suspects("oip:http://10.0.0.7/v2/models/m", weights, LABELS)
    with pytest.raises(EncodingError, match="must not set url"):
        ReferenceSuspects({"oip": {"url": "http://elsewhere"}}, base=tmp_path)
    with pytest.raises(EncodingError, match="per kind of reference"):
        ReferenceSuspects({"grpc": {}}, base=tmp_path)
    with pytest.raises(EncodingError):
        ReferenceSuspects({"json": {"answers": "/x"}}, base=tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:0", ("::1", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:65536", "host:-1"])
def test_listen_addresses_refused(text: str) -> None:
    with pytest.raises(EncodingError, match="HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize(
    "error", [RuntimeError("bug at /secret/path"), SecmarkError("/secret/path")]
)
def test_a_failure_inside_is_a_500_problem_naming_nothing_inside(
    dispute: Dispute, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    arbiter = dispute.arbiter()

    def broken(data: bytes) -> None:
        raise error

    monkeypatch.setattr(arbiter, "file_claim", broken)
    with running(arbiter, json_suspects(dispute.world.folder)) as client:
        response = client.post("/claims", content=dispute.claim)
        assert "/secret/path" not in assert_problem(response, 500)["detail"]
        assert client.get("/metrics").status_code == 200  # the service lives on


def test_a_replayed_request_is_refused_after_a_restart(tmp_path: Path) -> None:
    # Accepted signatures are kept in the service's database: a restart
    # must not reopen the replay window.
    keys = fixed_keys("party")
    parties = {keys.key_id: keys.public_keys.signing_key}
    header = sign_request(keys, "GET", "/cases/ab/reveal")
    before = ServiceDatabase.in_folder(tmp_path)
    assert (
        RequestVerifier(remember=before.accept_signature).verify(
            header, "GET", "/cases/ab/reveal", b"", parties
        )
        == keys.key_id
    )
    before.close()
    after = ServiceDatabase.in_folder(tmp_path)
    with pytest.raises(AuthenticationError, match="accepted before"):
        RequestVerifier(remember=after.accept_signature).verify(
            header, "GET", "/cases/ab/reveal", b"", parties
        )
    after.close()


def test_by_default_the_service_queries_no_suspect_inside_its_network(dispute: Dispute) -> None:
    # The claimant chose the URL: a service that queried 127.0.0.1 for
    # anyone could be made to post to its own host's private ports.
    world = dispute.world
    suspects = ReferenceSuspects({"json": JSON_DEFAULTS}, base=world.folder)
    with running(dispute.arbiter(), suspects) as client:
        case_id = client.post("/claims", content=dispute.claim).json()["case"]
        challenge = dispute.step(client, case_id, "challenge")
        reveal = answer_challenge(
            dispute.mark.keys, dispute.mark.signed, challenge.content, world.arbiter_identity
        )
        assert client.post(f"/cases/{case_id}/reveal", content=reveal).status_code == 200
        started = dispute.step(client, case_id, "query", keys="arbiter")
        job = wait_for_job(client, started.json()["job"])
        assert job["state"] == "failed", job
        assert "not globally routable" in job["error"]
        assert "--allow-suspect-network" in job["error"]
        decided = dispute.step(client, case_id, "decide", keys="arbiter")
        assert decided.status_code == 409  # no verdict from a failure
    assert dispute.suspect.requests == 0


def test_a_network_the_service_is_told_to_permit_is_written_in_cidr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["arbiter", "serve", str(tmp_path), "--allow-suspect-network", "127.0.0.1/8"]
    assert main(command) != 0
    assert "host bits" in capsys.readouterr().err


def test_decoy_pools_are_found_by_the_layout_of_a_commitments_items() -> None:
    questions = np.zeros((5, 64), dtype=np.uint8)
    images = np.arange(24, dtype=">f4").reshape(3, 2, 4)  # big-endian on disk
    pools = DecoyPools([questions, images])
    found = pools.for_family(PoolFamily(100, (2, 4), "float32"))
    assert found is not None and len(found) == 3
    assert all(item.dtype == np.dtype("float32") for item in found)
    np.testing.assert_array_equal(found[1], images[1])
    assert pools.for_family(FAMILY) is None  # a family that draws its own decoys
    with pytest.raises(ProtocolError, match=r"shape \(32,\) and dtype uint8.*--decoy-pool"):
        pools.for_family(PoolFamily(100, (32,), "uint8"))
    with pytest.raises(EncodingError, match="join them"):
        DecoyPools([questions, questions[:2]])
    for empty in (np.zeros((0, 4), np.uint8), np.zeros(4, np.uint8)):
        with pytest.raises(EncodingError, match="at least one item"):
            DecoyPools([empty])
