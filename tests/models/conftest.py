"""Fixtures of the suspect-adapter tests: a real MLServer, and a fake OIP server.

``mlserver`` starts MLServer 1.7.1 once per test session on 127.0.0.1, with
the runtimes of ``oip_runtime.py``: the model ``linear`` (version ``v1``) and
one misbehaving model per fault in ``MISBEHAVING_MODES``. It is skipped only
when mlserver is not installed.

``fake_oip`` is a stdlib ``http.server`` on 127.0.0.1 for what MLServer never
does (invalid JSON, wrong Content-Type, trickled bodies, ...) and to see the
requests as sent (headers). A test registers a reply for a model name of its
own with ``fake_oip.route(name, reply)``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_ports

NUM_FEATURES = 64
NUM_CLASSES = 10
# A fixed classifier over 8x8 inputs, shared by the server and the in-process reference.
WEIGHTS = np.random.default_rng(20240601).standard_normal((NUM_FEATURES, NUM_CLASSES))
BIAS = np.random.default_rng(20240602).standard_normal(NUM_CLASSES)

MISBEHAVING_MODES = (
    "extra-row",
    "nan",
    "fractional-labels",
    "no-outputs",
    "crash",
    "refuse",
    "slow",
)
LINEAR_VERSION = "v1"
_STARTUP_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0


def linear_logits(batch: np.ndarray) -> np.ndarray:
    """The served classifier, computed in process."""
    return batch.reshape(batch.shape[0], -1).astype(np.float64) @ WEIGHTS + BIAS


def digit_like_inputs(rows: int, seed: int = 7) -> np.ndarray:
    """Integer 8x8 images with values 0..16, like scikit-learn's digits."""
    return np.random.default_rng(seed).integers(0, 17, size=(rows, 8, 8)).astype(np.float32)


def _model_settings(
    name: str, implementation: str, extra: dict[str, Any], **parameters: Any
) -> str:
    return json.dumps(
        {
            "name": name,
            "implementation": f"oip_runtime.{implementation}",
            "parameters": {**parameters, "extra": extra},
        }
    )


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (for connection-refused cases)."""
    return free_ports(1)[0]


@dataclass(frozen=True)
class MLServerProcess:
    base_url: str
    log: Path


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerProcess]:
    if importlib.util.find_spec("mlserver") is None:
        pytest.skip("mlserver is not installed (the test extra pins mlserver==1.7.1)")
    root = tmp_path_factory.mktemp("mlserver")
    shutil.copy(Path(__file__).with_name("oip_runtime.py"), root / "oip_runtime.py")
    np.save(root / "weights.npy", WEIGHTS)
    np.save(root / "bias.npy", BIAS)
    weights = {"weights": str(root / "weights.npy"), "bias": str(root / "bias.npy")}
    http_port, grpc_port = free_ports(2)
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                # gRPC cannot be disabled and binds with SO_REUSEPORT: give it its own port.
                "grpc_port": grpc_port,
                "metrics_endpoint": None,
                # One worker process per model breaks under uvloop >= 0.22.
                "parallel_workers": 0,
            }
        )
    )
    models = {
        "linear": _model_settings("linear", "LinearClassifier", weights, version=LINEAR_VERSION)
    }
    for mode in MISBEHAVING_MODES:
        models[mode] = _model_settings(mode, "Misbehaving", {**weights, "mode": mode})
    for name, settings in models.items():
        (root / name).mkdir()
        (root / name / "model-settings.json").write_text(settings)

    log = root / "mlserver.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "from mlserver.cli import main; main()", "start", str(root)],
            cwd=root,  # MLServer writes .envs/ and .metrics/ into its working directory
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_for_server(process, f"{base_url}/v2/health/ready", log)
        yield MLServerProcess(base_url=base_url, log=log)
    finally:
        _stop_group(process)


def _wait_for_server(process: subprocess.Popen[bytes], ready_url: str, log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if client.get(ready_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"MLServer did not become ready (exit code {process.poll()}):\n{tail}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=_STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            continue


# --- the fake server ---------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the fake server answers. ``declared_length`` overrides the
    Content-Length (a larger one makes a short read); ``trickle`` sends the
    body in pieces of that many bytes, sleeping ``trickle_delay`` between."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    declared_length: int | None = None
    trickle: int | None = None
    trickle_delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(document: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(document).encode())


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeOipServer:
    base_url: str
    routes: dict[str, Callable[[dict[str, Any]], Reply]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def route(self, model: str, reply: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        """Answer ``POST /v2/models/{model}/infer`` with ``reply`` (or ``reply(request)``)."""
        self.routes[model] = reply if callable(reply) else (lambda _request: reply)

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(f"/v2/models/{model}/")]


class _Handler(BaseHTTPRequestHandler):
    server: _FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _record(self, body: bytes) -> None:
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.server.fake.requests.append(Recorded(self.command, self.path, headers, body))

    def do_GET(self) -> None:
        self._record(b"")
        ready = self.path == "/v2/health/ready" or (
            self.path.endswith("/ready") and self.path.split("/")[3] in self.server.fake.routes
        )
        self._send(Reply(status=200 if ready else 404, body=b"{}"))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        parts = self.path.split("/")
        route = self.server.fake.routes.get(parts[3]) if len(parts) > 3 else None
        if route is None:
            self._send(json_reply({"error": f"no route for {self.path}"}, status=404))
            return
        self._send(route(json.loads(body)))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        length = len(reply.body) if reply.declared_length is None else reply.declared_length
        self.send_header("Content-Length", str(length))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        try:
            if reply.trickle is None:
                self.wfile.write(reply.body)
                return
            for start in range(0, len(reply.body), reply.trickle):
                self.wfile.write(reply.body[start : start + reply.trickle])
                self.wfile.flush()
                time.sleep(reply.trickle_delay)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as some tests expect


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOipServer


@pytest.fixture(scope="session")
def fake_oip() -> Iterator[FakeOipServer]:
    server = _FakeHTTPServer(("127.0.0.1", 0), _Handler)
    server.fake = FakeOipServer(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
