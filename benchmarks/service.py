"""The arbiter service's throughput and the time of a whole dispute through its API.

Setup (not timed): ``secmark demo``'s story (:func:`secmark.examples.demo.run_demo`)
runs in a temporary folder, its generated keys recorded, so the owner's
commitment, release, timestamps and TSA root and the thief's deployed
digits model are the demo's own. The thief's model is then served as the
suspect: a JSON inference API on 127.0.0.1 (``{"inputs": [...]}`` in,
``{"labels": [...]}`` out, as the service tests' suspect server), in this
process, answering with :class:`~secmark.models.torch_module.TorchSuspect`.

Then, for each store of the arbiter's cases (its folder; SQLite through
``--database sqlite:///...``; a real PostgreSQL server started in a
temporary folder as ``tests/postgres.py`` does, skipped with a message when
it cannot start), a fresh arbiter folder with the demo's arbiter keys and
policy (k = 128) is served by the service (:func:`secmark.service.create_app`
under uvicorn) in a process of its own, with the per-caller rate limit
lifted so that the figures are the service's, not its limiter's. Against
it, over loopback only:

1. the demo's dispute through the API alone, timed from the claim's
   submission to the signed verdict: ``POST /claims``, the challenge, the
   owner's reveal (computed here, included), the query job against the
   served suspect (polled every 20 ms), the decision. Steps that may need a
   party's signature are signed (the owner's key, the arbiter's);
2. verdict reads, ``GET /cases/{id}/verdict`` of that decided case;
3. claim submission, distinct signed claims of the demo's owner on its
   commitment (each names another suspect), generated before the clock starts;
4. the idempotent resubmission of one claim (200, the same case).

Each rate runs ``--seconds`` with ``--threads`` client threads (one
kept-alive connection each). Reported: requests per second over the whole
run, the median of the per-second counts, and the median and 95th
percentile latency; any answer other than the expected status is counted
and shown. The load average is printed beside the figures: on a small
shared machine they include the other jobs.

Run: python3 benchmarks/service.py [--seconds S] [--threads N] [--stores folder,sqlite,postgresql]
Total time: the demo's setup (a minute or two) plus per store about
3 x --seconds and the dispute.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secmark.crypto.keyfile import read_key_file, write_key_file
from secmark.crypto.keys import IdentityKeys
from secmark.examples import demo
from secmark.examples.digits import IMAGE_SHAPE, new_model
from secmark.messages.commitment import open_commitment
from secmark.messages.identity import open_identity
from secmark.messages.verdict import open_verdict
from secmark.models.torch_module import TorchSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.service.auth import sign_request
from secmark.timestamp import TrustStore
from tests.conftest import free_ports
from tests.postgres import running_postgres

STORES = ("folder", "sqlite", "postgresql")
SUSPECT_BATCH = 64
"""Inputs per request to the suspect."""
_READY_TIMEOUT = 60.0


# -- the demo's world ---------------------------------------------------------


@dataclass
class DemoWorld:
    """The demo's documents and the keys it generated."""

    folder: Path
    owner: IdentityKeys
    arbiter: IdentityKeys
    setup_seconds: float

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def claim(self, suspect: str) -> bytes:
        return file_claim(
            self.owner,
            commitment=self.read("owner.commitment.json"),
            commitment_evidence=self.read("owner.commitment.evidence.json"),
            suspect=suspect,
            arbiter=open_identity(self.read("arbiter.identity.json")),
            release=self.read("owner.release.json"),
            release_evidence=self.read("owner.release.evidence.json"),
        )


def run_the_demo(folder: Path) -> DemoWorld:
    """``secmark demo`` into ``folder``, keeping the keys it generates
    (owner, thief, arbiter, in that order)."""
    made: list[IdentityKeys] = []

    class Recording:
        @staticmethod
        def generate() -> IdentityKeys:
            keys = IdentityKeys.generate()
            made.append(keys)
            return keys

    import torch

    torch.set_num_threads(1)
    started = time.monotonic()
    with mock.patch.object(demo, "IdentityKeys", Recording):
        outcome = demo.run_demo(folder, say=lambda line: None)
    if not outcome.succeeded or len(made) != 3:
        raise SystemExit("the demo did not end as it should")
    return DemoWorld(folder, made[0], made[2], time.monotonic() - started)


# -- the suspect: the thief's deployed model behind a JSON API ----------------


class _SuspectHandler(BaseHTTPRequestHandler):
    server: _SuspectServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = np.asarray(body["inputs"], dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        with self.server.lock:  # one forward pass at a time
            labels = self.server.model.predict(rows)
            self.server.answered += len(rows)
        data = json.dumps({"labels": [int(label) for label in labels]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _SuspectServer(ThreadingHTTPServer):
    daemon_threads = True
    model: TorchSuspect
    lock: threading.Lock
    answered: int


@contextmanager
def suspect_server(model_file: Path) -> Iterator[_SuspectServer]:
    server = _SuspectServer(("127.0.0.1", 0), _SuspectHandler)
    server.model = TorchSuspect.from_file(new_model(seed=0), model_file)
    server.lock = threading.Lock()
    server.answered = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- the service in a process of its own --------------------------------------


def arbiter_folder(base: Path, world: DemoWorld, name: str) -> Path:
    """A fresh arbiter folder with the demo's arbiter keys and policy, as
    ``secmark arbiter init`` sets one up, and the suspect defaults beside it."""
    files = base / f"{name}-files"
    files.mkdir()
    write_key_file(files / "arbiter.key", world.arbiter, None, unencrypted=True)
    shutil.copy(world.folder / "arbiter.identity.json", files / "identity.json")
    folder = base / name
    folder.mkdir()
    policy = ArbiterPolicy(challenge_size=demo.CHALLENGE)
    config = {
        "challenge_days": 7,
        "challenge_size": policy.challenge_size,
        "decoys_per_trigger": policy.decoys_per_trigger,
        "identity": str(files / "identity.json"),
        "key_file": str(files / "arbiter.key"),
        "trust": [str(world.folder / demo.TSA_ROOT)],
    }
    (folder / "arbiter.json").write_text(json.dumps(config))
    defaults = {
        "json": {
            "request": {"inputs": "{{inputs}}"},
            "answers": "/labels",
            "output": "labels",
            "batch_size": SUSPECT_BATCH,
            "retries": 0,
        }
    }
    (files / "suspects.json").write_text(json.dumps(defaults))
    return folder


def serve(folder: Path, port: int, database: str | None) -> None:
    """The service of the arbiter in ``folder`` (``--serve``: the child process)."""
    import uvicorn

    from secmark.models.egress import EgressPolicy
    from secmark.protocol.database_store import DatabaseStore
    from secmark.service.app import create_app
    from secmark.service.limits import ServiceLimits
    from secmark.service.suspects import ReferenceSuspects

    config = json.loads((folder / "arbiter.json").read_text())
    store = None if database is None else DatabaseStore.open(database)
    arbiter = Arbiter(
        read_key_file(config["key_file"], None),
        open_identity(Path(config["identity"]).read_bytes()),
        TrustStore.from_pem_files(config["trust"]),
        folder,
        policy=ArbiterPolicy(
            challenge_size=config["challenge_size"],
            decoys_per_trigger=config["decoys_per_trigger"],
        ),
        store=store,
    )
    # The benchmark's suspect listens on loopback, which a service open to
    # claimants does not query.
    loopback = EgressPolicy.from_cidrs(["127.0.0.0/8"])
    suspects = ReferenceSuspects.from_file(
        Path(config["key_file"]).parent / "suspects.json", egress=loopback
    )
    limits = ServiceLimits(rate=1e9, burst=10**9)
    app = create_app(arbiter, suspects=suspects, limits=limits)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def service_process(folder: Path, database: str | None, log: Path) -> Iterator[str]:
    """The service in its own process; yields its base URL."""
    port = free_ports(1)[0]
    command = [sys.executable, __file__, "--serve", str(folder), "--port", str(port)]
    if database is not None:
        command += ["--database", database]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/openapi.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- PostgreSQL -----------------------------------------------------------------


# -- measuring -------------------------------------------------------------------


@dataclass
class Rate:
    """One rate measurement."""

    requests: int
    seconds: float
    per_second: list[int]
    latencies: list[float]
    unexpected: Counter[str] = field(default_factory=Counter)
    ran_out: bool = False
    examples: dict[int, str] = field(default_factory=dict)
    """The first answer of each unexpected status."""

    def line(self, name: str) -> str:
        rps = self.requests / self.seconds
        windows = statistics.median(self.per_second) if self.per_second else float("nan")
        ms = sorted(1000 * latency for latency in self.latencies)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else float("nan")
        text = (
            f"  {name:30s} {rps:8.1f} req/s (median of 1 s windows {windows:6.1f}; "
            f"{self.requests} in {self.seconds:.1f} s), latency median "
            f"{statistics.median(ms) if ms else float('nan'):6.1f} ms, p95 {p95:6.1f} ms"
        )
        if self.unexpected:
            text += f"; UNEXPECTED answers: {dict(self.unexpected)}, e.g. {self.examples}"
        if self.ran_out:
            text += " (claims pool ran out early)"
        return text


def measure(
    base: str,
    seconds: float,
    threads: int,
    send: Callable[[httpx.Client, int], httpx.Response],
    expected: int,
    limit: int | None = None,
) -> Rate:
    """``threads`` clients each sending ``send(client, i)`` (i counting up
    across all of them, below ``limit``) for ``seconds``."""
    counter = itertools.count()
    lock = threading.Lock()
    done: list[float] = []
    latencies: list[float] = []
    unexpected: Counter[str] = Counter()
    examples: dict[int, str] = {}
    ran_out = threading.Event()
    start = time.monotonic()
    stop = start + seconds

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.monotonic() < stop:
                with lock:
                    i = next(counter)
                if limit is not None and i >= limit:
                    ran_out.set()
                    return
                sent = time.monotonic()
                response = send(client, i)
                now = time.monotonic()
                with lock:
                    done.append(now - start)
                    latencies.append(now - sent)
                    if response.status_code != expected:
                        unexpected[str(response.status_code)] += 1
                        examples.setdefault(response.status_code, response.text[:160])

    workers = [threading.Thread(target=client_loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = min(max(done, default=seconds), seconds) if ran_out.is_set() else seconds
    elapsed = max(elapsed, 1e-9)
    counts = Counter(int(t) for t in done if t < int(elapsed) or not ran_out.is_set())
    windows = [counts.get(second, 0) for second in range(int(elapsed))]
    return Rate(len(done), elapsed, windows, latencies, unexpected, ran_out.is_set(), examples)


def signed_post(
    client: httpx.Client, path: str, keys: IdentityKeys, body: bytes = b""
) -> httpx.Response:
    """``POST path`` signed by a party of the case (accepted whether or not
    the service asks for it)."""
    headers = {"Authorization": sign_request(keys, "POST", path, body)}
    response = client.post(path, content=body, headers=headers)
    if response.status_code not in (200, 201, 202):
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return response


@dataclass
class Dispute:
    case_id: str
    seconds: float
    steps: dict[str, float]
    outcome: str
    matches: str


def the_demos_dispute(base: str, world: DemoWorld, suspect_url: str) -> Dispute:
    """The demo's claim against the served thief's model, through the API
    only, from the claim's submission to the signed verdict."""
    claim = world.claim(f"json:{suspect_url}")
    commitment = open_commitment(world.read("owner.commitment.json"))
    arbiter_identity = open_identity(world.read("arbiter.identity.json"))
    steps: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        started = last = time.monotonic()

        def step(name: str) -> None:
            nonlocal last
            now = time.monotonic()
            steps[name] = now - last
            last = now

        filed = client.post("/claims", content=claim)
        if filed.status_code not in (200, 201):  # 200: filed before (it should not be)
            raise RuntimeError(f"the claim was not filed: {filed.text[:300]}")
        if filed.status_code == 200:
            print("  NOTE: the demo's claim was answered 200 (filed before), not 201")
        case_id = filed.json()["case"]
        step("claim")
        challenge = signed_post(client, f"/cases/{case_id}/challenge", world.owner).content
        step("challenge")
        reveal = answer_challenge(world.owner, commitment, challenge, arbiter_identity)
        signed_post(client, f"/cases/{case_id}/reveal", world.owner, reveal)
        step("reveal (computed and sent)")
        job = signed_post(client, f"/cases/{case_id}/query", world.arbiter).json()
        while job["state"] not in ("done", "failed"):
            time.sleep(0.02)
            job = client.get(f"/jobs/{job['job']}").json()
        if job["state"] != "done":
            raise RuntimeError(f"the query job failed: {job}")
        step("query job")
        verdict = signed_post(client, f"/cases/{case_id}/decide", world.arbiter).content
        step("decide")
        seconds = time.monotonic() - started
    decision = open_verdict(verdict, world.arbiter.public_keys).document
    test = decision.test
    return Dispute(
        case_id,
        seconds,
        steps,
        decision.outcome,
        f"{test.matches}/{test.trials} (threshold {test.threshold})",
    )


def bench_store(
    name: str,
    base: str,
    world: DemoWorld,
    suspect_url: str,
    claims: list[bytes],
    args: argparse.Namespace,
) -> None:
    dispute = the_demos_dispute(base, world, suspect_url)
    steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in dispute.steps.items())
    print(
        f"  demo dispute, claim to verdict:  {dispute.seconds:.2f} s ({dispute.outcome}, "
        f"{dispute.matches}; {steps})",
        flush=True,
    )
    verdict_path = f"/cases/{dispute.case_id}/verdict"
    reads = measure(
        base, args.seconds, args.threads, lambda client, i: client.get(verdict_path), 200
    )
    print(reads.line("verdict reads"), flush=True)
    filed = measure(
        base,
        args.seconds,
        args.threads,
        lambda client, i: client.post("/claims", content=claims[i]),
        201,
        limit=len(claims),
    )
    print(filed.line("distinct claims"), flush=True)
    again = measure(
        base,
        args.seconds,
        args.threads,
        lambda client, i: client.post("/claims", content=claims[0]),
        200,
    )
    print(again.line("the same claim again"), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each rate's duration")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument(
        "--claims", type=int, default=0, help="distinct claims made (default: 100 per second)"
    )
    parser.add_argument("--stores", default=",".join(STORES), help="of " + ", ".join(STORES))
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.port, args.database)
        return 0
    stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    if not set(stores) <= set(STORES):
        parser.error(f"--stores: of {', '.join(STORES)}")

    began = time.monotonic()
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="secmark-bench-")))
        print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()}", flush=True)
        world = run_the_demo(base / "demo")
        print(f"setup: secmark demo in {world.setup_seconds:.1f} s", flush=True)
        count = args.claims or int(100 * args.seconds)
        made = time.monotonic()
        claims = [world.claim(f"json:http://127.0.0.1:9/predict/{i}") for i in range(count)]
        assert len({hashlib.sha256(claim).digest() for claim in claims}) == count
        print(f"setup: {count} distinct claims signed in {time.monotonic() - made:.1f} s")
        suspect = stack.enter_context(suspect_server(world.folder / "thief-model.safetensors"))
        suspect_url = f"http://127.0.0.1:{suspect.server_address[1]}/predict"
        print(
            f"each rate: {args.seconds:g} s, {args.threads} client threads, one connection each; "
            "the service's rate limit lifted",
            flush=True,
        )
        for store in stores:
            print(f"{store}:", flush=True)
            try:
                with ExitStack() as per_store:
                    database: str | None = None
                    if store == "sqlite":
                        database = f"sqlite:///{base / 'cases.sqlite'}"
                    elif store == "postgresql":
                        try:
                            server = per_store.enter_context(running_postgres())
                        except RuntimeError as error:
                            print(f"  skipped: {error}", flush=True)
                            continue
                        database = server.database_url()
                    folder = arbiter_folder(base, world, f"arbiter-{store}")
                    url = per_store.enter_context(
                        service_process(folder, database, base / f"{store}.log")
                    )
                    bench_store(store, url, world, suspect_url, claims, args)
            finally:
                print(f"  load average after: {os.getloadavg()}", flush=True)
    print(f"runtime: {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
