"""The marking gateway over HTTP, in front of real OIP servers."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from secmark.crypto.keyfile import write_key_file
from secmark.messages.checkpoint import open_checkpoint
from secmark.serving.entry import client_account
from secmark.serving.gateway import GatewayConfig, create_gateway
from secmark.serving.log import QueryLog
from secmark.serving.marking import canonical_input, verify_marking
from secmark.serving.wrapper import MarkedClassifier
from secmark.timestamp import TimestampAuthority, TimestampServer, TrustStore
from secmark.timestamp.evidence import TimestampEvidence
from tests.conftest import free_ports
from tests.models.conftest import BIAS, WEIGHTS, _stop_group, _wait_for_server, linear_logits
from tests.serving.gateway_world import (
    ENCODING,
    FAULTS,
    OPERATOR,
    MemorySink,
    OipServer,
    make_marker,
    make_policy,
    model_labels,
    random_inputs,
    running,
)

POLICY = make_policy()
POLICY_ID = bytes.fromhex(POLICY.digest)
KEY = "alice-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
CONFIG = GatewayConfig(
    upstream="http://127.0.0.1:1", model="linear", output="label", answer="classes", timeout=1.0
)


def infer_body(batch: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "id": "q-1",
        "inputs": [
            {
                "name": "input-0",
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.reshape(-1).tolist(),
            }
        ],
        **extra,
    }


def served_labels(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "label"
    return [int(v) for v in output["data"]]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["status"] == status
    assert "Traceback" not in problem["detail"]
    return problem


@pytest.fixture(scope="module")
def oip() -> Iterator[OipServer]:
    with OipServer() as server:
        yield server


@pytest.fixture(scope="module")
def world(
    oip: OipServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, QueryLog]]:
    """A gateway in front of ``oip``'s linear model, logging to SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('log') / 'query-log.sqlite'}"
    log = QueryLog.open(url, policy_id=POLICY_ID)
    app = create_gateway(make_marker(POLICY), log, replace(CONFIG, upstream=oip.base_url))
    try:
        with running(app) as base_url:
            yield base_url, log
    finally:
        log.close()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        yield http


def test_marks_a_binomial_fraction_the_same_way_every_time_and_logs_them(
    world: tuple[str, QueryLog], client: httpx.Client
) -> None:
    base_url, log = world
    inputs = random_inputs(2048, seed=1)
    url = f"{base_url}/v2/models/linear/infer"
    start = log.size()
    served: list[int] = []
    for batch in np.split(inputs, 8):
        served += served_labels(client.post(url, json=infer_body(batch), headers=HEADERS))
    model = model_labels(inputs)
    marked = [i for i, (s, m) in enumerate(zip(served, model)) if s != m]
    # Rate 1/4 over 2048 inputs: mean 512, standard deviation 19.6; six of them.
    assert abs(len(marked) - 512) <= 6 * math.sqrt(2048 * 0.25 * 0.75)
    # Asked again, every answer is the same; the second asking is logged too.
    again = served_labels(client.post(url, json=infer_body(inputs[:256]), headers=HEADERS))
    assert again == served[:256]
    first = [log.entry(seq) for seq in range(start, start + len(marked))]
    assert [e.input for e in first] == [canonical_input(inputs[i], ENCODING) for i in marked]
    for entry, index in zip(first, marked):
        assert entry.marked and entry.served_answer == served[index]
        assert entry.model_answer == model[index] != entry.served_answer
        assert entry.client == client_account(POLICY_ID, KEY)
        verify_marking(
            POLICY,
            input_digest=bytes.fromhex(entry.input_digest),
            model_answer=entry.model_answer,
            served_answer=entry.served_answer,
            marked=True,
            proof=entry.proof,
        )
    assert log.size() == start + len(marked) + sum(1 for i in marked if i < 256)


def test_one_input_spelled_differently_gets_one_decision_and_is_forwarded_canonically(
    world: tuple[str, QueryLog], oip: OipServer, client: httpx.Client
) -> None:
    base_url, log = world
    url = f"{base_url}/v2/models/linear/infer"
    # Integer-valued inputs with zeros; find a few marked and unmarked ones.
    inputs = np.random.default_rng(3).integers(-2, 3, size=(64, 8, 8)).astype(np.float32)
    canonical_spelling = served_labels(client.post(url, json=infer_body(inputs), headers=HEADERS))
    assert canonical_spelling != model_labels(inputs)  # some are marked
    as_ints = infer_body(inputs)
    as_ints["inputs"][0]["data"] = [int(v) for v in inputs.reshape(-1)]
    negative_zeros = infer_body(inputs)
    negative_zeros["inputs"][0]["data"] = [
        -0.0 if v == 0 else v for v in inputs.reshape(-1).tolist()
    ]
    nested = infer_body(inputs)
    nested["inputs"][0]["data"] = inputs.tolist()
    for body in (as_ints, negative_zeros, nested):
        size = log.size()
        assert served_labels(client.post(url, json=body, headers=HEADERS)) == canonical_spelling
        # The same entries as for the first spelling: same input bytes.
        assert log.size() - size == sum(
            a != b for a, b in zip(canonical_spelling, model_labels(inputs))
        )
    # The model saw canonical values: +0.0, and float32 values of doubles.
    sent = oip.bodies[-1][1]["inputs"][0]
    assert sent["data"] == [0.0 if v == 0 else v for v in inputs.reshape(-1).tolist()]
    assert all(math.copysign(1.0, v) == 1.0 for v in sent["data"] if v == 0)
    double = np.full((1, 8, 8), 0.1)
    client.post(url, json=infer_body(double), headers=HEADERS)
    forwarded = oip.bodies[-1][1]
    assert forwarded["inputs"][0]["data"] == [float(np.float32(0.1))] * 64
    assert forwarded["id"] == "q-1" and forwarded["inputs"][0]["name"] == "input-0"


def _raw(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


ONE = np.zeros((1, 8, 8), dtype=np.float32)
GOOD = infer_body(ONE)
GOOD_TEXT = json.dumps(GOOD)


def _with_tensor(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{**GOOD["inputs"][0], **fields}]}


BAD_REQUESTS = {
    "nan-literal": GOOD_TEXT.replace("0.0", "NaN", 1).encode(),
    "infinity-literal": GOOD_TEXT.replace("0.0", "Infinity", 1).encode(),
    "overflowing-number": GOOD_TEXT.replace("0.0", "1e400", 1).encode(),
    "beyond-float32": _with_tensor(data=[1e39] + [0.0] * 63),
    "wrong-shape": _with_tensor(shape=[1, 8, 7], data=[0.0] * 56),
    "data-not-matching-shape": _with_tensor(data=[0.0] * 63),
    "ragged-nesting": _with_tensor(data=[[0.0] * 8] * 7 + [[0.0] * 7]),
    "wrong-datatype": _with_tensor(datatype="FP64"),
    "integer-datatype": _with_tensor(datatype="INT64"),
    "booleans": _with_tensor(data=[True] + [0.0] * 63),
    "strings": _with_tensor(data=["1"] + [0.0] * 63),
    "two-inputs": {"inputs": [GOOD["inputs"][0], GOOD["inputs"][0]]},
    "no-inputs": {"inputs": []},
    "empty-batch": _with_tensor(shape=[0, 8, 8], data=[]),
    "batch-too-large": _with_tensor(shape=[2000, 8, 8], data=[0.0] * 2000 * 64),
    "other-output-asked": {**GOOD, "outputs": [{"name": "logits"}]},
    "not-json": b"inputs=1",
    "duplicate-keys": b'{"inputs": [], "inputs": []}',
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_400_and_never_reach_the_model(
    case: str, world: tuple[str, QueryLog], oip: OipServer, client: httpx.Client
) -> None:
    base_url, _ = world
    seen = len(oip.bodies)
    response = client.post(
        f"{base_url}/v2/models/linear/infer",
        content=_raw(BAD_REQUESTS[case]),
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert len(oip.bodies) == seen


def test_size_media_type_and_key_are_checked_first(
    world: tuple[str, QueryLog], oip: OipServer, client: httpx.Client
) -> None:
    base_url, _ = world
    url = f"{base_url}/v2/models/linear/infer"
    seen = len(oip.bodies)
    huge = b"[" + b"0.0," * (5 * 1024 * 1024) + b"0.0]"
    assert_problem(client.post(url, content=huge, headers=HEADERS), 413)
    assert_problem(
        client.post(url, content=GOOD_TEXT, headers={**HEADERS, "Content-Type": "text/plain"}), 415
    )
    for authorization in (None, "Basic YWxpY2U6cHc=", "Bearer", "Bearer two words", KEY):
        headers = {} if authorization is None else {"Authorization": authorization}
        response = client.post(url, json=GOOD, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    assert len(oip.bodies) == seen


def test_passthrough_and_unknown_paths(world: tuple[str, QueryLog], client: httpx.Client) -> None:
    base_url, _ = world
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/linear/ready"):
        assert client.get(base_url + path).status_code == 200
    assert client.get(f"{base_url}/v2/models/linear").json()["name"] == "linear"
    assert_problem(client.get(f"{base_url}/v2/models/other/ready"), 404)
    assert_problem(
        client.post(f"{base_url}/v2/models/other/infer", json=GOOD, headers=HEADERS), 404
    )
    assert_problem(client.get(f"{base_url}/v2/repository/index"), 404)
    assert_problem(client.get(f"{base_url}/v2/models/linear/infer"), 405)


@pytest.mark.parametrize("fault", [*FAULTS, "unreachable"])
def test_upstream_faults_are_502_and_nothing_is_logged(
    fault: str, oip: OipServer, client: httpx.Client
) -> None:
    sink = MemorySink()
    upstream = f"http://127.0.0.1:{free_ports(1)[0]}" if fault == "unreachable" else oip.base_url
    config = replace(CONFIG, upstream=upstream, model=fault, timeout=0.5)
    with running(create_gateway(make_marker(POLICY), sink, config)) as base_url:
        # Enough inputs that some are to be marked.
        response = client.post(
            f"{base_url}/v2/models/{fault}/infer",
            json=infer_body(random_inputs(16, 2)),
            headers=HEADERS,
        )
    assert_problem(response, 502)
    assert sink.entries == []


def test_a_failing_log_means_no_answer(oip: OipServer, client: httpx.Client) -> None:
    sink = MemorySink()
    sink.failing = True
    config = replace(CONFIG, upstream=oip.base_url)
    with running(create_gateway(make_marker(POLICY), sink, config)) as base_url:
        url = f"{base_url}/v2/models/linear/infer"
        assert_problem(
            client.post(url, json=infer_body(random_inputs(16, 2)), headers=HEADERS), 503
        )
        sink.failing = False
        assert (
            len(
                served_labels(
                    client.post(url, json=infer_body(random_inputs(16, 2)), headers=HEADERS)
                )
            )
            == 16
        )
    assert sink.appends == 1


def test_scores_answers_agree_with_class_answers_and_with_the_wrapper(
    world: tuple[str, QueryLog], oip: OipServer, client: httpx.Client
) -> None:
    base_url, _ = world
    inputs = random_inputs(256, seed=5)
    labels = served_labels(
        client.post(f"{base_url}/v2/models/linear/infer", json=infer_body(inputs), headers=HEADERS)
    )
    sink = MemorySink()
    config = replace(CONFIG, upstream=oip.base_url, output="logits", answer="scores")
    with running(create_gateway(make_marker(POLICY), sink, config)) as scores_url:
        response = client.post(
            f"{scores_url}/v2/models/linear/infer",
            json=infer_body(inputs, outputs=[{"name": "logits"}]),
            headers=HEADERS,
        )
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    scores = np.asarray(output["data"]).reshape(output["shape"])
    assert np.argmax(scores, axis=1).tolist() == labels
    logits = linear_logits(inputs)
    assert np.allclose(np.sort(scores, axis=1), np.sort(logits, axis=1))
    assert len(sink.entries) == sum(a != b for a, b in zip(labels, model_labels(inputs)))
    wrapper = MarkedClassifier(linear_logits, make_marker(POLICY), MemorySink())
    assert wrapper.predict(inputs, api_key=KEY).tolist() == labels


def test_checkpoints_are_signed_and_timestamped_periodically_and_at_shutdown(
    oip: OipServer, tmp_path: Path
) -> None:
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    policy_id = bytes.fromhex(POLICY.digest)
    log = QueryLog.open(f"sqlite:///{tmp_path / 'log.sqlite'}", policy_id=policy_id)
    with TimestampServer(authority.respond, port=0) as tsa:
        config = replace(
            CONFIG, upstream=oip.base_url, checkpoint_seconds=0.1, timestamp_authorities=(tsa.url,)
        )
        with running(
            create_gateway(make_marker(POLICY), log, config, operator_keys=OPERATOR)
        ) as url:
            body = infer_body(random_inputs(8, 3))
            served_labels(httpx.post(f"{url}/v2/models/linear/infer", json=body, headers=HEADERS))
            time.sleep(0.35)
    size = log.size()
    checkpoint, evidence = log.stored_checkpoint(size)
    assert evidence is not None
    signed = open_checkpoint(checkpoint, OPERATOR.public_keys)
    trust = TrustStore(roots=(authority.root_certificate,))
    dated = TimestampEvidence.from_json(evidence)
    assert dated.subject == signed.digest
    assert dated.check(trust).require_trusted_time()
    log.close()


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLServer 1.7.1 serving only the linear classifier."""
    if importlib.util.find_spec("mlserver") is None:
        pytest.skip("mlserver is not installed (the test extra pins mlserver==1.7.1)")
    root = tmp_path_factory.mktemp("mlserver")
    shutil.copy(Path(__file__).parents[1] / "models" / "oip_runtime.py", root / "oip_runtime.py")
    np.save(root / "weights.npy", WEIGHTS)
    np.save(root / "bias.npy", BIAS)
    http_port, grpc_port = free_ports(2)
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    (root / "linear").mkdir()
    extra = {"weights": str(root / "weights.npy"), "bias": str(root / "bias.npy")}
    (root / "linear" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "linear",
                "implementation": "oip_runtime.LinearClassifier",
                "parameters": {"extra": extra},
            }
        )
    )
    log = root / "mlserver.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "from mlserver.cli import main; main()", "start", str(root)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_for_server(process, f"{base_url}/v2/health/ready", log)
        yield base_url
    finally:
        _stop_group(process)


def test_in_front_of_mlserver(mlserver: str, client: httpx.Client, tmp_path: Path) -> None:
    log = QueryLog.open(f"sqlite:///{tmp_path / 'log.sqlite'}", policy_id=POLICY_ID)
    inputs = random_inputs(256, seed=9)
    config = replace(CONFIG, upstream=mlserver)
    try:
        with running(create_gateway(make_marker(POLICY), log, config)) as base_url:
            assert client.get(f"{base_url}/v2/models/linear/ready").status_code == 200
            response = client.post(
                f"{base_url}/v2/models/linear/infer", json=infer_body(inputs), headers=HEADERS
            )
        labels = served_labels(response)  # the logits output is not served
        model = model_labels(inputs)
        marked = [i for i in range(256) if labels[i] != model[i]]
        assert 0 < len(marked) < 256
        assert log.size() == len(marked)
        for seq, index in enumerate(marked):
            entry = log.entry(seq)
            assert entry.input == canonical_input(inputs[index], ENCODING)
            verify_marking(
                POLICY,
                input_digest=bytes.fromhex(entry.input_digest),
                model_answer=entry.model_answer,
                served_answer=entry.served_answer,
                marked=entry.marked,
                proof=entry.proof,
            )
    finally:
        log.close()


def test_the_logged_fraction_includes_sampled_unmarked_queries(
    oip: OipServer, client: httpx.Client
) -> None:
    policy = make_policy(rate=Fraction(1, 4), log_rate=Fraction(1, 2))
    sink = MemorySink()
    with running(
        create_gateway(make_marker(policy), sink, replace(CONFIG, upstream=oip.base_url))
    ) as base_url:
        inputs = random_inputs(512, seed=11)
        labels = served_labels(
            client.post(
                f"{base_url}/v2/models/linear/infer", json=infer_body(inputs), headers=HEADERS
            )
        )
    marked = sum(a != b for a, b in zip(labels, model_labels(inputs)))
    assert sum(e.marked for e in sink.entries) == marked
    # Logged: marked, or unmarked with probability 1/2: 5/8 of 512 = 320, sd 11.
    assert abs(len(sink.entries) - 320) <= 6 * 11
    for entry in sink.entries:
        verify_marking(
            policy,
            input_digest=bytes.fromhex(entry.input_digest),
            model_answer=entry.model_answer,
            served_answer=entry.served_answer,
            marked=entry.marked,
            proof=entry.proof,
        )


def test_the_command_serves_marked_answers_and_logs_next_to_the_policy(
    oip: OipServer, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "policy.json").write_bytes(POLICY.to_json())
    write_key_file(tmp_path / "operator.key", OPERATOR, None, unencrypted=True)
    port = free_ports(1)[0]
    command = [
        sys.executable,
        "-m",
        "secmark",
        "gateway",
        f"--upstream={oip.base_url}",
        "--model=linear",
        f"--policy={tmp_path / 'policy.json'}",
        f"--operator-key={tmp_path / 'operator.key'}",
        f"--listen=127.0.0.1:{port}",
        "--output=label",
        "--answer=classes",
        "--checkpoint-seconds=60",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True)
    inputs = random_inputs(64, seed=13)
    try:
        _wait_for_gateway(process, f"http://127.0.0.1:{port}/v2/health/live")
        response = client.post(
            f"http://127.0.0.1:{port}/v2/models/linear/infer",
            json=infer_body(inputs),
            headers=HEADERS,
        )
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr.decode()
    marked = sum(a != b for a, b in zip(served_labels(response), model_labels(inputs)))
    log = QueryLog.open(f"sqlite:///{tmp_path / 'query-log.sqlite'}", policy_id=POLICY_ID)
    try:
        assert log.size() == marked
        # The shutdown signed a checkpoint of every entry.
        assert log.stored_checkpoint(marked)[0]
    finally:
        log.close()


def _wait_for_gateway(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 20.0
    with httpx.Client(trust_env=False, timeout=1.0) as http:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
    pytest.fail(f"the gateway did not start (exit status {process.poll()})")
