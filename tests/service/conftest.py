"""Fixtures of the service tests: a real suspect over HTTP and the service under uvicorn.

The suspect is a JSON inference API (``{"inputs": [...]}`` in,
``{"labels": [...]}`` out) on 127.0.0.1, answering as a model that memorised
the owner's trigger set; it records the digest of every input it answered,
and can be slowed down so a test can stop the service mid-query. The
service runs :func:`secmark.service.create_app` under uvicorn in a thread,
with its lifespan (so query jobs start, stop and resume as in production).
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from secmark.crypto.keyfile import write_key_file
from secmark.encoding import utc_now
from secmark.models import CallableSuspect
from secmark.models.egress import EgressPolicy
from secmark.protocol.arbiter import Arbiter
from secmark.protocol.database_store import DatabaseStore
from secmark.service.app import create_app
from secmark.service.auth import sign_request
from secmark.service.decoys import DecoyPools
from secmark.service.limits import ServiceLimits
from secmark.service.suspects import ReferenceSuspects
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 (the fixture)
from tests.protocol.conftest import FAMILY, POLICY, Committed, World, memorising_suspect

_STARTUP_TIMEOUT = 10.0
_ROOT = Path(__file__).resolve().parents[2]
BATCH = 16
"""Inputs per request to the suspect: 96 inputs (k = 48, one decoy each) in 6 requests."""


@dataclass
class SuspectServer:
    """The JSON API; ``answered`` holds the SHA-256 of every input answered,
    in order; ``delay`` seconds pass before each answer."""

    model: CallableSuspect | None = None
    delay: float = 0.0
    answered: list[str] = field(default_factory=list)
    requests: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: Any) -> list[int]:
        assert self.model is not None, "no model loaded"
        rows = np.asarray(body["inputs"], dtype=np.float32).reshape(-1, *FAMILY.shape)
        time.sleep(self.delay)
        labels = self.model.predict(rows)
        with self.lock:
            self.requests += 1
            self.answered += [hashlib.sha256(row.tobytes()).hexdigest() for row in rows]
        return [int(label) for label in labels]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = json.dumps({"labels": self.server.suspect.answer(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed while this batch was answered (the crash test)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    suspect: SuspectServer


@pytest.fixture
def suspect_server() -> Iterator[SuspectServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.suspect = SuspectServer()
    server.suspect.url = f"http://127.0.0.1:{server.server_address[1]}/predict"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.suspect
    finally:
        server.shutdown()
        server.server_close()


JSON_DEFAULTS = {
    "request": {"inputs": "{{inputs}}"},
    "answers": "/labels",
    "output": "labels",
    "batch_size": BATCH,
    "retries": 0,
}
"""The arbiter's defaults for the suspect server's JSON API."""


LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8", "::1/128"])
"""The suspects of these tests listen on 127.0.0.1, which a service open to
claimants does not query: the tests' arbiter permits loopback."""


def json_suspects(base: Path) -> ReferenceSuspects:
    return ReferenceSuspects({"json": JSON_DEFAULTS}, base=base, egress=LOOPBACK)


STORES = ("folder", "sqlite", "postgresql")
"""Where the arbiter keeps its cases: its folder, or a database (the
service's tables then live in the same database)."""


def store_url(kind: str, request: pytest.FixtureRequest, folder: Path) -> str | None:
    """The arbiter database of ``kind`` (None: the folder), empty."""
    if kind == "folder":
        return None
    if kind == "sqlite":
        return f"sqlite:///{folder / 'arbiter.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url()


@dataclass
class Dispute:
    """A world, the owner's mark, the suspect server carrying it, the claim
    naming that server, and the database of the arbiter's cases (None: its
    folder)."""

    world: World
    mark: Committed
    suspect: SuspectServer
    claim: bytes
    database: str | None = None
    stores: list[DatabaseStore] = field(default_factory=list)
    signed: set[tuple[str, str, str, bytes, datetime]] = field(default_factory=set)

    @property
    def reference(self) -> str:
        return f"json:{self.suspect.url}"

    def arbiter(self) -> Arbiter:
        """A fresh arbiter on the world's folder (its cases in the dispute's
        database, if any), as a restarted service opens it."""
        world = self.world
        if self.database is None:
            return world.arbiter()
        self.stores.append(DatabaseStore.open(self.database))
        return Arbiter(
            world.arbiter_keys,
            world.arbiter_identity,
            world.trust,
            world.folder / "arbiter",
            policy=POLICY,
            store=self.stores[-1],
        )

    def sign(
        self,
        method: str,
        path: str,
        *,
        keys: str = "owner",
        body: bytes = b"",
        now: datetime | None = None,
    ) -> dict[str, str]:
        """The Authorization header of ``method path`` signed by one of the world's keys."""
        world = self.world
        chosen = {"owner": world.owner, "arbiter": world.arbiter_keys, "thief": world.thief}[keys]
        if now is None:
            # A signature covers the time to the second and is accepted once:
            # a request signed again within the same second needs another time.
            now = utc_now().replace(microsecond=0)
            while (keys, method, path, body, now) in self.signed:
                now -= timedelta(seconds=1)
            self.signed.add((keys, method, path, body, now))
        return {"Authorization": sign_request(chosen, method, path, body, now=now)}

    def step(
        self, client: httpx.Client, case_id: str, step: str, *, keys: str = "owner"
    ) -> httpx.Response:
        """``POST /cases/{case_id}/{step}`` (challenge, query, decide), signed."""
        path = f"/cases/{case_id}/{step}"
        return client.post(path, headers=self.sign("POST", path, keys=keys))


@pytest.fixture
def dispute(
    request: pytest.FixtureRequest, tmp_path: Path, suspect_server: SuspectServer
) -> Iterator[Dispute]:
    """A dispute; parametrize it indirectly with one of :data:`STORES`
    (default: the folder)."""
    database = store_url(getattr(request, "param", "folder"), request, tmp_path)
    world = World(tmp_path)
    mark = world.commit()
    world.register_release(mark, world.model_file("released"))
    suspect_server.model = memorising_suspect(mark)
    claim = world.claim(mark, suspect=f"json:{suspect_server.url}")
    dispute = Dispute(world, mark, suspect_server, claim, database)
    yield dispute
    for store in dispute.stores:
        store.close()


@contextmanager
def running(
    arbiter: Arbiter,
    suspects: ReferenceSuspects,
    limits: ServiceLimits | None = None,
    *,
    decoys: DecoyPools | None = None,
) -> Iterator[httpx.Client]:
    """The service of ``arbiter`` under uvicorn on 127.0.0.1, with its
    lifespan; yields a client for it. On exit the server shuts down as on
    SIGTERM (query jobs stop after their batch in flight)."""
    app = create_app(arbiter, suspects=suspects, decoys=decoys, limits=limits or ServiceLimits())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the service did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the service did not stop"


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    *,
    until: tuple[str, ...] = ("done", "failed"),
    timeout: float = 20,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in until:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} is still {job['state']}")
        time.sleep(0.05)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem document with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://") and problem["title"] and problem["detail"]
    assert "Traceback" not in response.text
    return problem


def arbiter_folder(world: World) -> Path:
    """The folder of ``world``'s arbiter, set up as ``secmark arbiter init`` does."""
    files = world.folder / "arbiter-files"
    files.mkdir()
    write_key_file(files / "arbiter.key", world.arbiter_keys, None, unencrypted=True)
    (files / "identity.json").write_bytes(world.arbiter_identity.to_json())
    folder = world.folder / "arbiter"
    folder.mkdir(exist_ok=True)
    config = {
        "challenge_days": 7,
        "challenge_size": POLICY.challenge_size,
        "decoys_per_trigger": POLICY.decoys_per_trigger,
        "identity": str(files / "identity.json"),
        "key_file": str(files / "arbiter.key"),
        "trust": [str(world.folder / "tsa" / "root.pem")],
    }
    (folder / "arbiter.json").write_text(json.dumps(config))
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def serve_process(
    folder: Path, defaults: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``secmark arbiter serve`` in a process of its own; killed on exit if still running."""
    port = free_port()
    command = [sys.executable, "-m", "secmark", "arbiter", "serve", str(folder)]
    command += ["--listen", f"127.0.0.1:{port}", "--suspect-defaults", str(defaults)]
    command += ["--allow-suspect-network", "127.0.0.0/8"]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=_ROOT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/openapi.json").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the service did not start: {log.read_text()}")
                time.sleep(0.05)
            yield process, client
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
