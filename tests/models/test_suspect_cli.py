"""``secmark check`` against suspects as they are served: a stock MLServer
scikit-learn model and a JSON API, described by ``--suspect-config``; retries,
halts, request counts, credentials and progress, all through the command line."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import free_ports
from tests.models import cli_world, json_server
from tests.models.cli_world import TriggerSet, run, write_config
from tests.models.conftest import _stop_group, _wait_for_server
from tests.models.json_server import Answer, JsonApi, labels_of

json_api = json_server.json_api
trigger_set = cli_world.trigger_set

VERTEX_PATH = "/v1/projects/case-7/locations/europe-west4/endpoints/4711:rawPredict"
TOKEN = "Bearer tok-5d1e0c9a2b7f4e38"
API_KEY = "key-8c2f7a1e9d3b"


# --- a stock MLServer scikit-learn model ------------------------------------------


@dataclass(frozen=True)
class SklearnServer:
    base_url: str
    model: Any


@pytest.fixture(scope="module")
def sklearn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SklearnServer]:
    """MLServer 1.7.1 with its stock runtime ``mlserver_sklearn.SKLearnModel``
    serving a logistic regression trained on scikit-learn's digits."""
    if importlib.util.find_spec("mlserver_sklearn") is None:
        pytest.skip("mlserver-sklearn is not installed (the test extra pins it)")
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("mlserver-sklearn")
    digits = load_digits()
    with threadpool_limits(1):  # BLAS threads on two busy cores wait on each other
        model = LogisticRegression(max_iter=3000).fit(digits.data, digits.target)
    (root / "digits").mkdir()
    joblib.dump(model, root / "digits" / "model.joblib")
    (root / "digits" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "digits",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    http_port, grpc_port = free_ports(2)
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_endpoint": None,
                "parallel_workers": 0,
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
        _wait_for_server(process, f"{base_url}/v2/models/digits/ready", log)
        yield SklearnServer(base_url, model)
    finally:
        _stop_group(process)


def matches_of(predicted: np.ndarray, trigger_set: TriggerSet) -> int:
    return int((np.asarray(predicted) == trigger_set.labels).sum())


def test_a_stock_sklearn_model_answers_predict_proba_through_a_suspect_config(
    trigger_set: TriggerSet,
    sklearn_server: SklearnServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(
        tmp_path / "suspect.json",
        {
            "description": "MLServer sklearn digits, scores from predict_proba",
            "url": sklearn_server.base_url,
            "model": "digits",
            "model_version": "v1",
            "requested_outputs": ["predict_proba"],
            "output_name": "predict_proba",
            "output": "argmax",
            "timeout": 30,
        },
    )
    result = run(capsys, *trigger_set.check("--suspect-config", str(config), "--json"))
    assert result.status == 0, result.err
    probabilities = sklearn_server.model.predict_proba(trigger_set.inputs.astype(np.float32))
    assert result.data["matches"] == matches_of(probabilities.argmax(axis=1), trigger_set)
    assert result.data["trials"] == 64 and result.data["decision"] is False
    assert result.data["requests_sent"] == 3  # 64 triggers and 128 decoys, 64 per request


def test_the_same_model_by_flags_and_its_default_output_as_labels(
    trigger_set: TriggerSet, sklearn_server: SklearnServer, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--url", sklearn_server.base_url, "--model", "digits", "--model-version", "v1"]
    result = run(capsys, *trigger_set.check(*flags, "--output", "labels", "--json"))
    assert result.status == 0, result.err
    predicted = sklearn_server.model.predict(trigger_set.inputs.astype(np.float32))
    assert result.data["matches"] == matches_of(predicted, trigger_set)


def test_scores_asked_of_a_model_answering_labels_stop_after_one_request(
    trigger_set: TriggerSet, sklearn_server: SklearnServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """MLServer's sklearn runtime answers ``predict`` (INT64 [N, 1]) unless
    asked for predict_proba: every input fails alike, so the query step stops
    after the first request instead of asking input by input (billed)."""
    flags = ["--url", sklearn_server.base_url, "--model", "digits", "--model-version", "v1"]
    result = run(capsys, *trigger_set.check(*flags))
    assert result.status == 9
    assert "needs one row of at least 2 scores per input, got shape (64, 1)" in result.err
    assert "(1 request sent to the suspect)" in result.err


# --- a JSON API --------------------------------------------------------------------


def vertex(body: Any, _headers: dict[str, str]) -> Answer:
    scores = [
        [1.0 if k == label else 0.0 for k in range(10)] for label in labels_of(body["instances"])
    ]
    return Answer(body={"predictions": scores, "deployedModelId": "1"})


def json_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "protocol": "json",
        "url": url,
        "request": {"instances": "{{inputs}}", "parameters": {}},
        "answers": "/predictions",
        "output": "argmax",
        **extra,
    }


def test_a_json_api_through_a_suspect_config(
    trigger_set: TriggerSet, json_api: JsonApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = json_api.route(VERTEX_PATH, vertex)
    config = write_config(tmp_path / "suspect.json", json_config(url))
    result = run(capsys, *trigger_set.check("--suspect-config", str(config)))
    assert result.status == 0, result.err
    expected = matches_of(labels_of(trigger_set.inputs.tolist()), trigger_set)
    assert f"suspect:    json:{url}" in result.out
    assert f"matches:    {expected} of 64 trials" in result.out
    assert "requests:   3 sent to the suspect" in result.out
    assert len(json_api.requests_to(VERTEX_PATH)) == 3


def test_429_and_retry_after_are_honoured_and_every_request_counted(
    trigger_set: TriggerSet, json_api: JsonApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []

    def limited(body: Any, headers: dict[str, str]) -> Answer:
        calls.append(1)
        if len(calls) == 1:
            return Answer(429, {"error": "rate limited"}, headers=(("Retry-After", "1"),))
        return vertex(body, headers)

    url = json_api.route("/limited/predict", limited)
    config = write_config(tmp_path / "suspect.json", json_config(url, backoff=0))
    started = time.monotonic()
    result = run(capsys, *trigger_set.check("--suspect-config", str(config), "--json"))
    assert result.status == 0, result.err
    assert time.monotonic() - started >= 1.0  # a backoff of 0 would have retried at once
    assert result.data["requests_sent"] == 4 == len(calls)  # 3 batches, one of them twice


def test_a_deterministic_refusal_is_not_asked_again_input_by_input(
    trigger_set: TriggerSet, json_api: JsonApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = json_api.route("/forbidden/predict", Answer(403, {"error": "no access to this model"}))
    config = write_config(tmp_path / "suspect.json", json_config(url, retries=3))
    result = run(capsys, *trigger_set.check("--suspect-config", str(config)))
    assert result.status == 9
    assert "HTTP 403: no access to this model" in result.err
    assert "(1 request sent to the suspect)" in result.err
    assert len(json_api.requests_to("/forbidden/predict")) == 1


# --- credentials ---------------------------------------------------------------------


def guarded(body: Any, headers: dict[str, str]) -> Answer:
    if headers.get("authorization") != TOKEN or headers.get("x-api-key") != API_KEY:
        return Answer(401, {"error": "missing credentials"})
    return vertex(body, headers)


def echoing(_body: Any, headers: dict[str, str]) -> Answer:
    echoed = f"{headers.get('authorization')} / {headers.get('x-api-key')}"
    return Answer(400, {"error": f"rejected request with credentials {echoed}"})


def credential_config(tmp_path: Path, url: str) -> Path:
    headers = tmp_path / "headers.json"
    headers.write_text(json.dumps({"X-Api-Key": API_KEY}))
    headers.chmod(0o600)
    config = json_config(
        url,
        headers={"X-Case": "case-7"},
        headers_from_env={"Authorization": "SECMARK_TEST_SUSPECT_TOKEN"},
        headers_file="headers.json",  # read from the config's folder
    )
    return write_config(tmp_path / "suspect.json", config)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert "tok-5d1e0c9a2b7f4e38" not in text and API_KEY not in text


def test_credentials_from_the_environment_and_a_file_reach_the_server_only(
    trigger_set: TriggerSet,
    json_api: JsonApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECMARK_TEST_SUSPECT_TOKEN", TOKEN)
    url = json_api.route("/guarded/predict", guarded)
    argv = trigger_set.check("--suspect-config", str(credential_config(tmp_path, url)))
    result = run(capsys, *argv, "--json")
    assert result.status == 0, result.err
    assert result.data["requests_sent"] == 3
    assert_no_secret(" ".join(argv), result.out, result.err)
    seen = json_api.requests_to("/guarded/predict")
    assert {(s.headers["authorization"], s.headers["x-api-key"]) for s in seen} == {
        (TOKEN, API_KEY)
    }
    assert seen[0].headers["x-case"] == "case-7"


def test_a_server_echoing_credentials_cannot_make_secmark_print_them(
    trigger_set: TriggerSet,
    json_api: JsonApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECMARK_TEST_SUSPECT_TOKEN", TOKEN)
    url = json_api.route("/echoing/predict", echoing)
    config = credential_config(tmp_path, url)
    for extra in ([], ["--json"]):
        result = run(capsys, *trigger_set.check("--suspect-config", str(config), *extra))
        assert result.status == 9
        assert "rejected request with credentials [redacted] / [redacted]" in result.err
        assert_no_secret(result.out, result.err)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        pytest.param(
            lambda folder: (folder / "headers.json").chmod(0o644),
            6,
            r"headers file .*headers.json holds credentials and is readable by others",
            id="headers-file-readable-by-others",
        ),
        pytest.param(
            lambda folder: os.environ.pop("SECMARK_TEST_SUSPECT_TOKEN"),
            6,
            r"environment variable SECMARK_TEST_SUSPECT_TOKEN \(for header 'Authorization'\) "
            r"is not set",
            id="variable-unset",
        ),
        pytest.param(
            lambda folder: (folder / "headers.json").write_text(f'{{"X-Api-Key": "{API_KEY}",}}'),
            3,
            r"headers file .*headers.json is not strict JSON$",
            id="headers-file-malformed",
        ),
    ],
)
def test_credential_failures_name_the_source_never_the_value(
    trigger_set: TriggerSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    status: int,
    message: str,
) -> None:
    import re

    monkeypatch.setenv("SECMARK_TEST_SUSPECT_TOKEN", TOKEN)
    config = credential_config(tmp_path, "http://127.0.0.1:9/never-asked")
    change(tmp_path)
    result = run(capsys, *trigger_set.check("--suspect-config", str(config)))
    assert result.status == status, result.err
    assert re.search(message, result.err.strip().splitlines()[-1])
    assert_no_secret(result.out, result.err)


def test_the_deprecated_header_flag_warns_without_repeating_the_value(
    trigger_set: TriggerSet, json_api: JsonApi, capsys: pytest.CaptureFixture[str]
) -> None:
    json_api.route("/v2/models/flagged/infer", Answer(401, {"error": "who are you"}))
    flags = ["--url", json_api.base_url, "--model", "flagged", "--header", f"Authorization:{TOKEN}"]
    result = run(capsys, *trigger_set.check(*flags))
    assert result.status == 9
    assert "--header puts its value on the command line" in result.err
    assert_no_secret(result.out, result.err)


# --- the command line itself -------------------------------------------------------


def test_flags_beside_a_suspect_config_are_refused(
    trigger_set: TriggerSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "suspect.json", json_config("http://127.0.0.1:9/p"))
    result = run(
        capsys,
        *trigger_set.check("--suspect-config", str(config), "--retries", "5", "--timeout", "3"),
    )
    assert result.status == 1
    assert "give --timeout, --retries in the file instead" in result.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_a_progress_bar_on_a_terminal_unless_quiet(
    trigger_set: TriggerSet,
    json_api: JsonApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    quiet: bool,
) -> None:
    url = json_api.route("/progress/predict", vertex)
    config = write_config(tmp_path / "suspect.json", json_config(url))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    options = ["--quiet"] if quiet else []
    result = run(capsys, *trigger_set.check("--suspect-config", str(config), *options, "--json"))
    assert result.status == 0
    shown = terminal.getvalue()
    if quiet:
        assert shown == ""
    else:
        assert "querying the suspect" in shown and "192/192" in shown and "requests=3" in shown


def test_no_progress_bar_when_standard_error_is_no_terminal(
    trigger_set: TriggerSet, json_api: JsonApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = json_api.route("/no-terminal/predict", vertex)
    config = write_config(tmp_path / "suspect.json", json_config(url))
    result = run(capsys, *trigger_set.check("--suspect-config", str(config), "--json"))
    assert result.status == 0 and result.err == ""
