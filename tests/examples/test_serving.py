"""Serving a model for tests and demos: MLServer's settings, and the runtime
behind ``secmark serve-example`` queried as a suspect."""

from __future__ import annotations

import json
import os
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

from secmark.cli.main import main
from secmark.errors import EncodingError, SecmarkError, SuspectError
from secmark.examples.serving import (
    INPUT_NAME,
    MODEL_SETTINGS_FILE,
    RUNTIME,
    SERVER_SETTINGS_FILE,
    RuntimeOptions,
    ServedModel,
    ServerAddress,
    write_mlserver_folder,
)
from secmark.models import OipSuspect
from tests.conftest import free_ports, listening

FACTORY = "secmark.examples.digits:DigitsCNN"
_READY_TIMEOUT = 90.0


def _weights(folder: Path) -> Path:
    path = folder / "model.safetensors"
    path.write_bytes(b"not read before the server starts")
    return path


def test_the_settings_are_what_mlserver_reads(tmp_path: Path) -> None:
    weights = _weights(tmp_path)
    model = ServedModel("digits", weights, RuntimeOptions(FACTORY), version="v1")
    path = write_mlserver_folder(
        tmp_path / "server", model, ServerAddress(http_port=9000, grpc_port=9001)
    )
    assert path == tmp_path / "server" / "digits" / MODEL_SETTINGS_FILE
    server = json.loads((tmp_path / "server" / SERVER_SETTINGS_FILE).read_text())
    assert server == {
        "host": "127.0.0.1",
        "http_port": 9000,
        "grpc_port": 9001,
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    settings = json.loads(path.read_text())
    assert settings["implementation"] == RUNTIME
    assert settings["parameters"]["uri"] == str(weights.resolve())
    assert settings["parameters"]["version"] == "v1"
    assert RuntimeOptions.from_extra(settings["parameters"]["extra"]) == model.options
    # Written again for the same model: fine. Another model's settings there would be served too.
    write_mlserver_folder(tmp_path / "server", model, ServerAddress())
    other = ServedModel("other", weights, RuntimeOptions(FACTORY))
    with pytest.raises(SecmarkError, match="already holds the settings of model 'digits'"):
        write_mlserver_folder(tmp_path / "server", other, ServerAddress())


def test_a_missing_weights_file_is_refused(tmp_path: Path) -> None:
    model = ServedModel("digits", tmp_path / "absent.safetensors", RuntimeOptions(FACTORY))
    with pytest.raises(SecmarkError, match="no model file"):
        write_mlserver_folder(tmp_path / "server", model, ServerAddress())
    assert not (tmp_path / "server").exists()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda w: ServedModel("a/b", w, RuntimeOptions(FACTORY)), "model name"),
        (lambda w: ServedModel("..", w, RuntimeOptions(FACTORY)), "model name"),
        (lambda w: ServedModel("d", w, RuntimeOptions(FACTORY), version="v 1"), "version"),
        (lambda w: RuntimeOptions("os.system"), "MODULE:FUNCTION"),
        (lambda w: RuntimeOptions("a:b; rm -rf /"), "MODULE:FUNCTION"),
        (lambda w: RuntimeOptions(FACTORY, threads=0), "threads"),
        (lambda w: RuntimeOptions(FACTORY, threads=True), "threads"),
        (lambda w: RuntimeOptions(FACTORY, max_batch_rows=1 << 30), "max_batch_rows"),
        (lambda w: RuntimeOptions.from_extra(None), "parameters.extra"),
        (lambda w: RuntimeOptions.from_extra({"threads": 1}), "MODULE:FUNCTION"),
        (lambda w: ServerAddress(http_port=8080, grpc_port=8080), "ports must differ"),
        (lambda w: ServerAddress(http_port=0), "HTTP port"),
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, build: object, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        build(tmp_path / "w")  # type: ignore[operator]


def test_write_settings_only_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _weights(tmp_path)
    folder = tmp_path / "server"
    status = main(
        ["serve-example", str(weights), "--factory", FACTORY, "--name", "digits", "--port", "9100"]
        + ["--write-settings", str(folder), "--json"]
    )
    assert status == 0
    assert json.loads(capsys.readouterr().out)["folder"] == str(folder)
    server = json.loads((folder / SERVER_SETTINGS_FILE).read_text())
    assert (server["http_port"], server["grpc_port"]) == (9100, 9101)


# -- the runtime, served ------------------------------------------------------


@dataclass(frozen=True)
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    ports: tuple[int, int]
    reference: str
    model: object


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("torch")
    pytest.importorskip("mlserver", reason="mlserver is not installed (the test extra pins it)")
    from secmark.embed import save_state
    from secmark.examples.digits import new_model

    folder = tmp_path_factory.mktemp("served")
    model = new_model(seed=3)
    save_state(model, folder / "model.safetensors")
    http_port, grpc_port = free_ports(2)
    output, log = folder / "stdout.txt", folder / "log.txt"
    with output.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "secmark.cli.main", "serve-example"]
            + [str(folder / "model.safetensors"), "--factory", FACTORY, "--name", "digits"]
            + ["--port", str(http_port), "--grpc-port", str(grpc_port), "--json"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + _READY_TIMEOUT
        while not output.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not output.read_text():
            pytest.fail(f"serve-example did not start:\n{log.read_text()[-3000:]}")
        reference = json.loads(output.read_text())["reference"]
        yield Served(
            f"http://127.0.0.1:{http_port}", process, (http_port, grpc_port), reference, model
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _inputs(rows: int) -> np.ndarray:
    return np.random.default_rng(5).random((rows, 1, 8, 8), dtype=np.float32)


def test_the_served_model_answers_as_in_process(served: Served) -> None:
    import torch

    inputs = _inputs(150)  # more than one request of 64 rows
    with torch.inference_mode():
        expected = served.model(torch.from_numpy(inputs)).argmax(dim=1).numpy()  # type: ignore[operator]
    with OipSuspect(served.base_url, "digits") as suspect:
        assert suspect.describe() == served.reference
        np.testing.assert_array_equal(suspect.predict(inputs), expected)
    with OipSuspect(served.base_url, "digits", output_name="label", output="labels") as labels:
        np.testing.assert_array_equal(labels.predict(inputs), expected)


def test_requests_it_cannot_answer_get_a_json_error(served: Served) -> None:
    with (
        OipSuspect(served.base_url, "digits", input_name="x", retries=0) as suspect,
        pytest.raises(SuspectError, match=f"expected one input named '{INPUT_NAME}'"),
    ):
        suspect.predict(_inputs(2))
    wrong_shape = np.zeros((2, 3, 5), dtype=np.float32)
    with (
        OipSuspect(served.base_url, "digits", retries=0) as suspect,
        pytest.raises(SuspectError, match="cannot take inputs of shape"),
    ):
        suspect.predict(wrong_shape)


def test_a_request_naming_outputs_gets_those_only(served: Served) -> None:
    inputs = _inputs(3)
    tensor = {"name": INPUT_NAME, "shape": list(inputs.shape), "datatype": "FP32"}
    tensor["data"] = inputs.ravel().tolist()
    url = f"{served.base_url}/v2/models/digits/infer"
    with httpx.Client(trust_env=False, timeout=10) as client:
        answer = client.post(url, json={"inputs": [tensor], "outputs": [{"name": "label"}]})
        assert answer.status_code == 200
        (output,) = answer.json()["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == ("label", "INT64", [3, 1])
        refused = client.post(url, json={"inputs": [tensor], "outputs": [{"name": "nope"}]})
        assert refused.status_code == 400
        assert "no output 'nope'" in refused.json()["error"]


def test_sigterm_stops_the_server_and_frees_its_ports(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    assert not any(listening(port) for port in served.ports)
