"""The marking gateway's added latency and throughput against its bare upstream.

Starts a real OIP server on 127.0.0.1 (MLServer 1.7.1 serving the linear
8x8 -> 10 classifier of ``tests/models/oip_runtime.py`` if mlserver is
installed, else the minimal stdlib OIP server of ``tests/serving/gateway_world.py``)
and ``secmark gateway`` in front of it (its own process, uvicorn, a SQLite
query log next to a policy at rate 1/4, log rate 0, answers read from
``label``). One client on a kept-alive connection per side then asks, in
interleaved pairs (upstream then gateway, then the other order), the same
random request of 1 input or of 32 inputs.

Reported per request size: the median and 95th percentile of the added
latency (gateway minus upstream, pair by pair, wall clock) and the
throughput ratio (sequential requests per second through the gateway over
straight to the upstream). Target: median added latency <= 1 ms for one input.

Wall-clock figures on a small shared machine include the other jobs (each
of the gateway's extra wake-ups waits for a core); the load average is
printed beside them, and so is the gateway process's CPU time per request,
which they do not inflate as much.

Run: python3 benchmarks/gateway.py [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secmark.crypto.keyfile import write_key_file
from tests.conftest import free_ports
from tests.models.conftest import BIAS, WEIGHTS
from tests.serving.gateway_world import OPERATOR, OipServer, make_policy

SIZES = (1, 32)
TARGET_MS = 1.0
KEY = "benchmark-client-key"
_READY_TIMEOUT = 60.0


def _wait(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                break
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def mlserver(folder: Path) -> Iterator[str]:
    shutil.copy(ROOT / "tests" / "models" / "oip_runtime.py", folder / "oip_runtime.py")
    np.save(folder / "weights.npy", WEIGHTS)
    np.save(folder / "bias.npy", BIAS)
    http_port, grpc_port = free_ports(2)
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "linear").mkdir()
    extra = {"weights": str(folder / "weights.npy"), "bias": str(folder / "bias.npy")}
    model = {"name": "linear", "implementation": "oip_runtime.LinearClassifier"}
    (folder / "linear" / "model-settings.json").write_text(
        json.dumps({**model, "parameters": {"extra": extra}})
    )
    process = subprocess.Popen(
        [sys.executable, "-c", "from mlserver.cli import main; main()", "start", str(folder)],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        _wait(f"{base_url}/v2/health/ready", process)
        yield base_url
    finally:
        _stop(process)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def gateway(folder: Path, upstream: str) -> Iterator[tuple[str, int]]:
    (folder / "policy.json").write_bytes(make_policy().to_json())
    write_key_file(folder / "operator.key", OPERATOR, None, unencrypted=True)
    port = free_ports(1)[0]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "secmark",
            "gateway",
            f"--upstream={upstream}",
            "--model=linear",
            f"--policy={folder / 'policy.json'}",
            f"--operator-key={folder / 'operator.key'}",
            f"--listen=127.0.0.1:{port}",
            "--output=label",
            "--answer=classes",
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base_url}/v2/health/live", process)
        yield base_url, process.pid
    finally:
        _stop(process)


def body(rows: int, seed: int) -> bytes:
    batch = np.random.default_rng(seed).standard_normal((rows, 8, 8)).astype(np.float32)
    tensor = {"name": "input-0", "shape": [rows, 8, 8], "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": batch.reshape(-1).tolist()}]}).encode()


def timed(client: httpx.Client, url: str, content: bytes) -> float:
    started = time.perf_counter()
    response = client.post(url, content=content, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return elapsed


def measure(
    upstream: str, gateway_url: str, gateway_pid: int, rounds: int
) -> dict[int, dict[str, float]]:
    path = "/v2/models/linear/infer"
    headers = {"Authorization": f"Bearer {KEY}"}
    results: dict[int, dict[str, float]] = {}
    with (
        httpx.Client(base_url=upstream, trust_env=False, timeout=10.0) as bare,
        httpx.Client(base_url=gateway_url, trust_env=False, timeout=10.0, headers=headers) as front,
    ):
        for rows in SIZES:
            for seed in range(20):  # warm both paths up
                timed(bare, path, body(rows, seed))
                timed(front, path, body(rows, seed))
            direct: list[float] = []
            through: list[float] = []
            cpu = cpu_seconds(gateway_pid)
            for index in range(rounds):
                content = body(rows, 1000 + index)
                pair = [(bare, direct), (front, through)]
                for client, times in pair if index % 2 == 0 else pair[::-1]:
                    times.append(timed(client, path, content))
            cpu = cpu_seconds(gateway_pid) - cpu
            added = sorted((g - d) * 1e3 for g, d in zip(through, direct))
            results[rows] = {
                "median_ms": statistics.median(added),
                "p95_ms": added[int(0.95 * (len(added) - 1))],
                "upstream_median_ms": statistics.median(direct) * 1e3,
                "throughput_ratio": sum(direct) / sum(through),
                "gateway_cpu_ms": cpu / rounds * 1e3,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="secmark-bench-")))
        if importlib.util.find_spec("mlserver") is not None:
            (folder / "mlserver").mkdir()
            upstream = stack.enter_context(mlserver(folder / "mlserver"))
            kind = "MLServer 1.7.1"
        else:
            upstream = stack.enter_context(OipServer()).base_url
            kind = "stdlib OIP server"
        front, pid = stack.enter_context(gateway(folder, upstream))
        results = measure(upstream, front, pid, args.rounds)
    print(
        f"gateway vs bare upstream ({kind}), {args.rounds} interleaved pairs per size, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for rows, figures in results.items():
        print(
            f"  {rows:>3} input(s)/request: added latency median {figures['median_ms']:.2f} ms, "
            f"p95 {figures['p95_ms']:.2f} ms (upstream median {figures['upstream_median_ms']:.2f} ms); "
            f"throughput ratio {figures['throughput_ratio']:.2f}; "
            f"gateway CPU {figures['gateway_cpu_ms']:.2f} ms per request"
        )
    verdict = "meets" if results[1]["median_ms"] <= TARGET_MS else "misses"
    print(f"  target: median added latency <= {TARGET_MS:g} ms for one input: {verdict}")


if __name__ == "__main__":
    main()
