"""What the gateway and wrapper tests share: a policy, sinks, servers.

- ``make_policy``: a serving policy over 8x8 float32 inputs and 10 classes
  (the classifier of ``tests/models/conftest.py``) at rate 1/4.
- ``MemorySink``: a thread-safe in-memory sink, that can be told to fail.
- ``OipServer``: a minimal real OIP v2 HTTP server (stdlib ``http.server``)
  serving that classifier as ``linear`` (outputs ``logits`` FP64 [N, 10]
  and ``label`` INT64 [N, 1], as MLServer does), and one faulty model per
  mode of ``FAULTS``; it records every request body it receives.
- ``running``: serves an ASGI app with uvicorn on a free loopback port in a
  thread, for the length of a ``with`` block.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import uvicorn
from typing_extensions import Self

from secmark.messages.document import SignedDocument
from secmark.messages.serving_policy import InputEncoding, ServingPolicy, create_serving_policy
from secmark.serving.entry import LogEntry
from secmark.serving.marking import Marker
from tests.conftest import fixed_keys, free_ports
from tests.models.conftest import BIAS, WEIGHTS, linear_logits

OWNER = fixed_keys("gateway owner")
OPERATOR = fixed_keys("gateway operator")
ENCODING = InputEncoding("float32", (8, 8))
NUM_CLASSES = 10
SLOW_SECONDS = 2.0

FAULTS = ("garbage", "error", "slow", "nan", "extra-row", "fractional", "no-label")


def make_policy(
    rate: Fraction = Fraction(1, 4), log_rate: Fraction = Fraction(0)
) -> SignedDocument[ServingPolicy]:
    """A fixed policy (fixed nonce and time): the same marking every run."""
    return create_serving_policy(
        OWNER,
        operator=OPERATOR.public_keys,
        release_id="ab" * 32,
        num_classes=NUM_CLASSES,
        rate=rate,
        log_rate=log_rate,
        input_encoding=ENCODING,
        nonce=bytes(range(32)),
        created=datetime(2026, 3, 1, tzinfo=timezone.utc),
    )


def make_marker(policy: SignedDocument[ServingPolicy]) -> Marker:
    return Marker(policy, OPERATOR.vrf)


class MemorySink:
    """Keeps appended entries in a list; ``failing`` makes ``append`` raise."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.appends = 0
        self.failing = False
        self._lock = threading.Lock()

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        with self._lock:
            if self.failing:
                raise OSError("disk full")
            self.appends += 1
            start = len(self.entries)
            self.entries.extend(entries)
            return list(range(start, len(self.entries)))


def random_inputs(rows: int, seed: int) -> np.ndarray:
    """Random float32 8x8 inputs."""
    return np.random.default_rng(seed).standard_normal((rows, 8, 8)).astype(np.float32)


def model_labels(batch: np.ndarray) -> list[int]:
    """What the served classifier answers, computed in process."""
    return [int(i) for i in np.argmax(linear_logits(np.asarray(batch)), axis=1)]


def _tensor(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.reshape(-1).tolist(),
    }


def _answer(model: str, request: dict[str, Any]) -> tuple[int, bytes]:
    tensor = request["inputs"][0]
    batch = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    logits = batch.reshape(batch.shape[0], -1) @ WEIGHTS + BIAS
    labels = np.argmax(logits, axis=1).astype(np.int64).reshape(-1, 1)
    if model == "garbage":
        return 200, b"<html>not json"
    if model == "error":
        return 500, b'{"error": "model crashed"}'
    if model == "slow":
        time.sleep(SLOW_SECONDS)
    if model == "extra-row":
        logits = np.vstack([logits, logits[:1]])
        labels = np.vstack([labels, labels[:1]])
    outputs = [_tensor("logits", logits, "FP64"), _tensor("label", labels, "INT64")]
    if model == "nan":
        outputs[0]["data"][0] = float("nan")  # json.dumps writes NaN
    if model == "fractional":
        outputs[1] = {**outputs[1], "data": [0.5] * labels.size, "datatype": "FP64"}
    if model == "no-label":
        outputs = outputs[:1]
    return 200, json.dumps(
        {"model_name": model, "id": request.get("id"), "outputs": outputs}
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to each answer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        ready = self.path in ("/v2/health/live", "/v2/health/ready", "/v2/models/linear/ready")
        if self.path == "/v2/models/linear":
            self._send(200, json.dumps({"name": "linear", "platform": "test"}).encode())
        else:
            self._send(200 if ready else 404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        model = self.path.split("/")[3]
        self.server.oip.bodies.append((model, json.loads(body)))
        status, reply = _answer(model, json.loads(body))
        self._send(status, reply)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up (the slow model)


class OipServer:
    """The minimal OIP server; ``bodies`` holds (model, request) as received."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.oip = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    oip: OipServer


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    port = free_ports(1)[0]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
