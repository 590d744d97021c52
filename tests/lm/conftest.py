"""Fixtures of the language-model suspect tests: a small model folder, and a
real OpenAI-compatible server serving it.

``lm_model`` builds the folder of :mod:`secmark.examples.lm` (its tokenizer,
an untrained GPT-2-style model) once per run: the pytest-xdist workers share
the folder of the first one to get here. ``lm_server`` starts
``transformers serve`` on it once per worker, on 127.0.0.1, and stops its
process group afterwards. It takes seconds to start: a test does its own
work first (loading the model in process) and then calls
:meth:`LmServer.ready`, which waits until the server is healthy (it loads
the model before), or fails the test quoting the server's log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from secmark.models.tokenizer import LMTokenizer
from tests.conftest import free_ports

MODEL_SEED = 11
PROMPT_LENGTH = 6
_STARTUP_TIMEOUT = 90.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class LmModel:
    folder: Path
    tokenizer: LMTokenizer
    words: tuple[int, ...]
    """The tokenizer's word ids: what prompts and targets are drawn from."""

    def prompts(self, rows: int, seed: int) -> np.ndarray:
        """``rows`` prompts of PROMPT_LENGTH random word ids, int64."""
        rng = np.random.default_rng(seed)
        return rng.choice(np.array(self.words, dtype=np.int64), size=(rows, PROMPT_LENGTH))


def _build(folder: Path) -> None:
    from secmark.examples.lm import new_model, save_model, train_tokenizer

    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer = train_tokenizer(work / "tokenizer")
    save_model(new_model(MODEL_SEED), tokenizer.parent, work / "model")
    work.rename(folder)


@pytest.fixture(scope="session")
def lm_model(tmp_path_factory: pytest.TempPathFactory) -> LmModel:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "lm-model"
    with FileLock(shared / "lm-model.lock"):
        if not folder.exists():
            _build(folder)
    tokenizer = LMTokenizer.from_file(folder / "model")
    return LmModel(folder / "model", tokenizer, tokenizer.word_ids())


@dataclass
class LmServer:
    base_url: str
    model: str
    """The ``model`` member requests name: the folder it serves."""
    process: subprocess.Popen[bytes]
    log: Path
    healthy: bool = False

    def ready(self) -> str:
        """The base URL, once ``/health`` answers 200 (the first call waits)."""
        if not self.healthy:
            _wait_for_health(self.process, f"{self.base_url}/health", self.log)
            self.healthy = True
        return self.base_url


@pytest.fixture(scope="session")
def lm_server(lm_model: LmModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LmServer]:
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs its extra: pip install 'transformers[serving]'")
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("lm-server") / "serve.log"
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # beside the other worker, on two cores
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]
            + ["serve", str(lm_model.folder), "--host", "127.0.0.1", "--port", str(port)]
            + ["--device", "cpu", "--log-level", "warning"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group (it runs the model in another process)
        )
    try:
        yield LmServer(f"http://127.0.0.1:{port}", str(lm_model.folder), process, log)
    finally:
        _stop_group(process)


def _wait_for_health(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"transformers serve did not become healthy (exit code {process.poll()}):\n{tail}")


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
