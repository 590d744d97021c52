"""The dispute through the arbiter service: the owner and the arbiter's
operator use only the command line with ``--arbiter-url`` against the real
service (under uvicorn, as tests/service/conftest.py starts it); the client's
own rules (typed errors, retries, redirects, bounds) against a mock transport."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from secmark.cli.main import main
from secmark.crypto.keyfile import write_key_file
from secmark.errors import (
    EncodingError,
    KeyMaterialError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    SuspectError,
)
from secmark.service.client import ArbiterClient, ServiceError
from tests.service.conftest import (
    Dispute,
    dispute,  # noqa: F401 - a fixture
    json_suspects,
    running,
    suspect_server,  # noqa: F401 - a fixture
)

UNKNOWN = "0" * 64


@dataclass
class Files:
    """The documents and key files of the dispute's parties, and the service's URL."""

    folder: Path
    url: str

    def __getitem__(self, name: str) -> str:
        return str(self.folder / name)


@pytest.fixture
def files(dispute: Dispute) -> Iterator[Files]:  # noqa: F811
    world, mark = dispute.world, dispute.mark
    folder = world.folder / "cli"
    folder.mkdir()
    for name, keys in (("owner", world.owner), ("arbiter", world.arbiter_keys)):
        write_key_file(folder / f"{name}.key", keys, None, unencrypted=True)
    write_key_file(folder / "thief.key", world.thief, None, unencrypted=True)
    assert mark.release is not None and mark.release_evidence is not None
    documents = {
        "commitment.json": mark.data,
        "evidence.json": mark.evidence,
        "release.json": mark.release,
        "release.evidence.json": mark.release_evidence,
        "arbiter.identity.json": world.arbiter_identity.to_json(),
    }
    for name, data in documents.items():
        (folder / name).write_bytes(data)
    with running(dispute.arbiter(), json_suspects(world.folder)) as client:
        yield Files(folder, str(client.base_url).rstrip("/"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def fails(capsys: pytest.CaptureFixture[str], status: int, *argv: str) -> str:
    """The one error line of a command that exits with ``status``."""
    assert main(list(argv)) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("secmark: error: "), err
    return err


def claim(capsys: pytest.CaptureFixture[str], files: Files, dispute: Dispute, *extra: str) -> str:  # noqa: F811
    filed = run(
        capsys,
        "claim",
        "--key",
        files["owner.key"],
        "--commitment",
        files["commitment.json"],
        "--evidence",
        files["evidence.json"],
        "--release",
        files["release.json"],
        "--release-evidence",
        files["release.evidence.json"],
        "--suspect",
        dispute.reference,
        "--arbiter",
        files["arbiter.identity.json"],
        "--arbiter-url",
        files.url,
        *extra,
    )
    assert filed["stage"] == "claimed"
    return str(filed["case"])


def reveal_argv(files: Files, case: str, key: str = "owner.key") -> list[str]:
    return [
        "reveal",
        "--arbiter-url",
        files.url,
        "--case",
        case,
        "--key",
        files[key],
        "--commitment",
        files["commitment.json"],
        "--arbiter",
        files["arbiter.identity.json"],
    ]


def test_a_whole_dispute_with_the_command_line_against_the_service(
    files: Files,
    dispute: Dispute,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, world = files.url, dispute.world
    case = claim(capsys, files, dispute, "--out", files["claim.json"])
    assert Path(files["claim.json"]).is_file()
    revealed = run(capsys, *reveal_argv(files, case), "--out", files["reveal.json"])
    assert revealed["case"] == case and revealed["stage"] == "revealed"
    assert Path(files["reveal.json"]).is_file()
    status = run(capsys, "case", "status", "--arbiter-url", url, case)
    assert status["stage"] == "revealed" and status["owner"] == world.owner.key_id

    arbiter_key = ["--key", files["arbiter.key"]]
    queried = run(capsys, "case", "query", "--arbiter-url", url, case, *arbiter_key)
    assert queried["state"] == "done" and queried["answered"] == queried["total"] > 0
    decided = run(
        capsys, "case", "decide", "--arbiter-url", url, case, *arbiter_key, "--out", files["v.json"]
    )
    assert decided["outcome"] == "upheld" and Path(files["v.json"]).is_file()
    status = run(capsys, "case", "status", "--arbiter-url", url, case)
    assert status["stage"] == "decided" and status["outcome"] == "upheld"

    run(capsys, "case", "fetch-bundle", "--arbiter-url", url, case, "--out", files["b.json"])
    trust = str(world.folder / "tsa" / "root.pem")
    pin = world.arbiter_keys.key_id
    report = run(capsys, "verify-bundle", files["b.json"], "--trust", trust, "--arbiter", pin)
    assert report["verified"] is True and report["outcome"] == "upheld"
    assert main(["verify-bundle", files["b.json"], "--trust", trust, "--arbiter", pin]) == 0
    capsys.readouterr()


def test_refusals_are_one_typed_line_with_their_exit_code(
    files: Files,
    dispute: Dispute,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = files.url
    err = fails(capsys, 8, "case", "status", "--arbiter-url", url, UNKNOWN)
    assert "404" in err and f"no case {UNKNOWN}" in err
    fails(capsys, 8, "case", "fetch-bundle", "--arbiter-url", url, "nope", "--out", files["x"])
    fails(capsys, 8, *reveal_argv(files, UNKNOWN))

    case = claim(capsys, files, dispute)
    # Not decided yet: no bundle (409), and nothing written.
    err = fails(capsys, 8, "case", "fetch-bundle", "--arbiter-url", url, case, "--out", files["x"])
    assert "409" in err and "no bundle yet" in err and not Path(files["x"]).exists()
    # Not revealed yet: no query.
    fails(capsys, 8, "case", "query", "--arbiter-url", url, case, "--key", files["arbiter.key"])
    # A key that is not the commitment's owner reveals nothing.
    err = fails(capsys, 4, *reveal_argv(files, case, key="thief.key"))
    assert "commitment belongs to" in err
    assert run(capsys, "case", "status", "--arbiter-url", url, case)["stage"] == "claimed"
    # The steps need a party's signed request: the thief is none (403).
    thief_key = ["--key", files["thief.key"]]
    err = fails(capsys, 4, "case", "decide", "--arbiter-url", url, case, *thief_key)
    assert "403" in err and "not a party" in err
    # The private parts refuse a key that is no party of the case (403).
    run(capsys, *reveal_argv(files, case))
    thief = ArbiterClient(url, keys=dispute.world.thief)
    with thief, pytest.raises(SignatureError, match="403.*not a party"):
        thief.read_reveal(case)
    with ArbiterClient(url) as anonymous, pytest.raises(SignatureError, match="401"):
        anonymous.read_reveal(case)
    with ArbiterClient(url, keys=dispute.world.owner) as owner:
        assert owner.read_reveal(case).startswith(b"{")

    fails(capsys, 3, "case", "status", "--arbiter-url", "file:///etc/passwd", case)
    err = fails(capsys, 1, "case", "status", "--arbiter-url", "http://127.0.0.1:1", case)
    assert "cannot reach the arbiter" in err
    # Without --arbiter-url the claim still needs --out; the reveal its challenge file.
    fails(
        capsys,
        2,
        "reveal",
        "--key",
        files["owner.key"],
        "--commitment",
        files["commitment.json"],
        "--arbiter",
        files["arbiter.identity.json"],
        "--out",
        files["r.json"],
    )


# -- the client's own rules, against a mock transport ---------------------------


def _problem(status: int, name: str, detail: str, **headers: str) -> httpx.Response:
    body = {"type": f"https://secmark.invalid/problems/{name}", "title": name, "status": status}
    body["detail"] = detail
    return httpx.Response(
        status,
        json=body,
        headers={"content-type": "application/problem+json", **headers},
    )


def _client(handler: httpx.MockTransport, **options: Any) -> ArbiterClient:
    """A client of a mock service whose waits take no time (unless ``sleep`` is given)."""
    options.setdefault("sleep", lambda seconds: None)
    return ArbiterClient(
        "http://arbiter.test/api", client=httpx.Client(transport=handler), **options
    )


@pytest.mark.parametrize(
    ("status", "name", "kind", "code"),
    [
        (400, "encoding", EncodingError, 3),
        (400, "key-material", KeyMaterialError, 6),
        (401, "unauthenticated", SignatureError, 4),
        (403, "signature", SignatureError, 4),
        (404, "unknown-case", ProtocolError, 8),
        (409, "protocol", ProtocolError, 8),
        (413, "too-large", EncodingError, 3),
        (422, "proof", ProofError, 5),
        (502, "suspect", SuspectError, 9),
        (500, "internal", SecmarkError, 1),
        (503, "unavailable", SecmarkError, 1),
    ],
)
def test_each_status_is_its_typed_error(
    status: int, name: str, kind: type[SecmarkError], code: int
) -> None:
    client = _client(httpx.MockTransport(lambda _: _problem(status, name, "what was wrong")))
    with pytest.raises(kind, match="what was wrong") as raised:
        client.case(UNKNOWN)
    assert isinstance(raised.value, ServiceError) and raised.value.exit_code == code
    assert raised.value.problem is not None and raised.value.problem.status == status


def test_a_rate_limit_is_retried_once_then_refused() -> None:
    answers = iter([_problem(429, "rate-limited", "slow down", **{"Retry-After": "2"})] * 3)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    with pytest.raises(ServiceError, match="429.*slow down"):
        _client(httpx.MockTransport(handler)).case(UNKNOWN)
    assert len(seen) == 2 and seen[0].url.path == f"/api/cases/{UNKNOWN}"

    answers = iter(
        [
            _problem(429, "rate-limited", "slow down", **{"Retry-After": "1"}),
            httpx.Response(200, json={"case": UNKNOWN, "stage": "claimed"}),
        ]
    )
    assert _client(httpx.MockTransport(handler)).case(UNKNOWN).stage == "claimed"


def test_redirects_stay_on_the_host_and_answers_are_bounded() -> None:
    def elsewhere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": "http://evil.test/cases"})

    with pytest.raises(SecmarkError, match="another host"):
        _client(httpx.MockTransport(elsewhere)).bundle(UNKNOWN)

    def same_host(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/"):
            return httpx.Response(301, headers={"location": "/moved" + request.url.path})
        return httpx.Response(200, content=b"{}")

    assert _client(httpx.MockTransport(same_host)).bundle(UNKNOWN) == b"{}"

    big = httpx.MockTransport(lambda _: httpx.Response(200, content=b"x" * 2048))
    with pytest.raises(EncodingError, match="over the limit of 1024"):
        _client(big, max_response=1024).bundle(UNKNOWN)

    with pytest.raises(EncodingError, match="http:// or https://"):
        ArbiterClient("ftp://arbiter.test")
    with pytest.raises(ProtocolError, match="64 lower-case hex"):
        _client(big).case("../claims")


def test_signed_requests_cover_the_path_as_sent(dispute: Dispute) -> None:  # noqa: F811
    from secmark.service.auth import RequestVerifier

    keys = dispute.world.owner
    verifier = RequestVerifier()
    parties = {keys.key_id: keys.public_keys.signing_key}
    checked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        header = request.headers.get("authorization")
        checked.append(verifier.verify(header, request.method, target, request.content, parties))
        return httpx.Response(200, content=b"{}")

    client = _client(httpx.MockTransport(handler), keys=keys, sleep=time.sleep)
    client.challenge(UNKNOWN)
    client.challenge(UNKNOWN)  # signed anew, not refused as a replay
    client.decide(UNKNOWN)
    assert checked == [keys.key_id] * 3
