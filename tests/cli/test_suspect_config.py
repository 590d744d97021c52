"""``--suspect-config``: the file is parsed strictly, and every fault is a
typed error naming the member, with no traceback and nothing sent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from secmark.errors import EncodingError, KeyMaterialError
from secmark.models import JsonApiSuspect, OipSuspect, SuspectConfig, TlsFiles
from tests.models import cli_world
from tests.models.cli_world import TriggerSet, run

trigger_set = cli_world.trigger_set

# Nothing listens on port 9 of the loopback: a request that were sent would
# fail with "connection failed", which no case below expects.
URL = "http://127.0.0.1:9"
OIP = {"url": URL, "model": "m"}
JSON = {"protocol": "json", "url": f"{URL}/p", "request": {"x": "{{inputs}}"}, "answers": ""}


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(body({**OIP, "retry": 3}), r"'retry' is not a setting of a suspect", id="unknown-key"),
        pytest.param(body({**OIP, "retries": True}), r"'retries' must be an integer from 0 to 10, not a boolean", id="true-for-int"),
        pytest.param(body({**OIP, "batch_size": 1.5}), r"'batch_size' must be an integer from 1 to 65536, not a number", id="float-for-int"),
        pytest.param(body({**OIP, "retries": 11}), r"'retries' must be an integer from 0 to 10, not 11", id="int-out-of-range"),
        pytest.param(body({**OIP, "timeout": "10"}), r"'timeout' must be a number of seconds above 0 to 3600, not a string", id="string-for-number"),
        pytest.param(body({**OIP, "timeout": 0}), r"'timeout' must be a number of seconds above 0", id="zero-timeout"),
        pytest.param(body({**OIP, "batch_dimension": 1}), r"'batch_dimension' must be true or false, not an integer", id="int-for-bool"),
        pytest.param(body({**OIP, "url": 5}), r"'url' must be a string of 1 to 1024 characters, not an integer", id="int-for-string"),
        pytest.param(b'{"url": "http://127.0.0.1:9", "model": "m", "url": "http://other"}', r"duplicate key 'url'", id="duplicate-key"),
        pytest.param(b'{"url": "http://127.0.0.1:9", "model": "m", "timeout": NaN}', r"NaN is not JSON", id="nan"),
        pytest.param(b'{"url": "http://127.0.0.1:9", "model": "m", "timeout": 1e999}', r"out of the range of a double", id="infinity"),
        pytest.param(b'["http://127.0.0.1:9"]', r"must be a JSON object, not a list", id="not-an-object"),
        pytest.param(b'{"url": "http://127.0.0.1:9", "model": "\xff"}', r"invalid JSON", id="not-utf8"),
        pytest.param(b'{"url": "http://127.0.0.1:9", "model": "m",}', r"invalid JSON", id="trailing-comma"),
        pytest.param(body({"model": "m"}), r"'url' is missing", id="no-url"),
        pytest.param(body({"url": URL}), r"'model' is missing: an oip suspect names its model", id="no-model"),
        pytest.param(body({**OIP, "protocol": "grpc"}), r"'protocol' must be one of oip, json", id="unknown-protocol"),
        pytest.param(body({**OIP, "request": {"x": "{{inputs}}"}}), r"'request' applies to protocol 'json' only", id="json-key-for-oip"),
        pytest.param(body({**JSON, "model": "m"}), r"'model' applies to protocol 'oip' only", id="oip-key-for-json"),
        pytest.param(body({k: v for k, v in JSON.items() if k != "answers"}), r"'answers' is missing", id="no-answers"),
        pytest.param(body({**JSON, "request": {"x": "inputs"}}), r"'request' is no request template: .* not 0 times", id="no-placeholder"),
        pytest.param(body({**JSON, "answers": "predictions"}), r"'answers' is no JSON pointer", id="bad-pointer"),
        pytest.param(body({**JSON, "answer": 0}), r"'answer' must be a string, not an integer", id="pointer-not-a-string"),
        pytest.param(body({**OIP, "requested_outputs": "predict_proba"}), r"'requested_outputs' must be a list of 1 to 16 non-empty strings", id="string-for-list"),
        pytest.param(body({**OIP, "input_shape": [8, 0]}), r"'input_shape' must be a list of 1 to 32 positive integers", id="zero-dimension"),
        pytest.param(body({**OIP, "datatype": "fp32"}), r"'datatype' must be one of UINT8", id="unknown-datatype"),
        pytest.param(body({**OIP, "output": "scores"}), r"'output' must be one of argmax, labels, values", id="unknown-output"),
        pytest.param(body({**OIP, "tls": {"ca": "ca.pem"}}), r"'tls'\['ca'\] is not a TLS setting", id="unknown-tls-key"),
        pytest.param(body({**OIP, "tls": {"key_file": "k.pem"}}), r"'key_file'\] needs its certificate", id="key-without-cert"),
        pytest.param(body({**OIP, "headers": {"Authorization": "Bearer x"}}), r"'headers' must not hold 'Authorization'", id="credential-in-config"),
        pytest.param(body({**OIP, "headers": {"X-Case": 7}}), r"'headers' member 'X-Case' must be a string, not an integer", id="header-not-a-string"),
        pytest.param(body({**OIP, "headers_from_env": {"Authorization": "1TOKEN"}}), r"must name an environment variable", id="bad-variable-name"),
        pytest.param(body({**OIP, "batch_dimension": False, "batch_size": 8}), r"'batch_size' must be 1 or absent for a model without a batch dimension", id="batch-without-dimension"),
        pytest.param(body({**OIP, "description": ""}), r"'description' must be a string of 1 to 4096", id="empty-description"),
    ],
)  # fmt: skip
def test_a_malformed_config_is_refused_naming_what_is_wrong(
    trigger_set: TriggerSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    message: str,
) -> None:
    import re

    config = tmp_path / "suspect.json"
    config.write_bytes(data)
    for extra in ([], ["--json"]):
        result = run(capsys, *trigger_set.check("--suspect-config", str(config), *extra))
        assert result.status == 3, result.err
        (line,) = result.err.splitlines()
        assert line.startswith("secmark: error: ")
        assert re.search(message, line), line
        assert "connection failed" not in line
    assert result.data["error"] == "EncodingError"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "http://user:secret@127.0.0.1:9", "model": "m"}, r"credentials"),
        ({"url": "http://127.0.0.1:9/?x=1", "model": "m"}, r"query"),
        ({"url": URL, "model": "a/b"}, r"'/' and '\\'"),
        ({"url": URL, "model": "m", "model_version": "007"}, r"without leading zeros: 7"),
        ({"url": URL, "model": "m", "headers": {"Host": "other"}}, r"header 'Host' cannot be set"),
        ({**OIP, "output_name": "a", "requested_outputs": ["b"]}, r"not among the requested"),
    ],
)
def test_an_invalid_suspect_setting_is_refused_before_anything_is_sent(
    trigger_set: TriggerSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    message: str,
) -> None:
    import re

    path = tmp_path / "suspect.json"
    path.write_text(json.dumps(config))
    result = run(capsys, *trigger_set.check("--suspect-config", str(path)))
    assert result.status == 9, result.err
    assert re.search(message, result.err)
    assert "secret" not in result.err


def test_an_unreadable_or_oversized_config_is_refused(
    trigger_set: TriggerSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = run(capsys, *trigger_set.check("--suspect-config", str(tmp_path / "none.json")))
    assert missing.status == 1 and "cannot read suspect config" in missing.err
    folder = run(capsys, *trigger_set.check("--suspect-config", str(tmp_path)))
    assert folder.status == 1 and "it is a directory" in folder.err
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # a reader that blocked on it would hang the test
    piped = run(capsys, *trigger_set.check("--suspect-config", str(fifo)))
    assert piped.status == 1 and "it is a FIFO" in piped.err
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**OIP, "description": "x" * 4000}) + " " * (1024 * 1024))
    oversized = run(capsys, *trigger_set.check("--suspect-config", str(big)))
    assert oversized.status == 3 and "over the limit" in oversized.err


@pytest.mark.parametrize(
    ("flags", "status", "message"),
    [
        (["--url", URL], 1, r"needs both --url and --model"),
        (["--url", URL, "--model", "m", "--retries", "11"], 3, r"--retries must be an integer from 0 to 10, not 11"),
        (["--url", URL, "--model", "m", "--timeout", "0"], 3, r"--timeout must be a number of seconds above 0"),
        (["--url", URL, "--model", "m", "--header-from-env", "Authorization"], 3, r"--header-from-env takes NAME=VALUE"),
        (["--url", URL, "--model", "m", "--tls-key-file", "k.pem"], 3, r"--tls-ca-file, --tls-cert-file, --tls-key-file\['key_file'\] needs its certificate"),
        (["--url", URL, "--model", "m", "--torch-factory", "x:y"], 1, r"name the suspect with"),
    ],
)  # fmt: skip
def test_flags_are_checked_as_a_config_is(
    trigger_set: TriggerSet,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    status: int,
    message: str,
) -> None:
    import re

    result = run(capsys, *trigger_set.check(*flags))
    assert result.status == status, result.err
    assert re.search(message, result.err), result.err


def test_a_config_reads_its_files_from_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "suspect.json").write_text(
        json.dumps(
            {
                **OIP,
                "model_version": "3",
                "tls": {"ca_file": "ca.pem"},
                "headers_file": "headers.json",
                "requested_outputs": ["predict_proba"],
                "batch_dimension": False,
            }
        )
    )
    config = SuspectConfig.from_file(folder / "suspect.json")
    assert config.tls == TlsFiles(ca_file=folder / "ca.pem")
    assert config.headers_file == folder / "headers.json"
    assert config.reference() == f"oip:{URL}/v2/models/m/versions/3"
    assert config.requested_outputs == ("predict_proba",) and config.batch_dimension is False


def test_a_config_builds_the_adapter_it_describes(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SuspectConfig.from_json(
        body({**OIP, "headers_from_env": {"Authorization": "SECMARK_CONFIG_TEST"}}), base=Path()
    )
    with pytest.raises(KeyMaterialError, match="SECMARK_CONFIG_TEST"):
        config.build(environ={})
    with config.build(environ={"SECMARK_CONFIG_TEST": "Bearer x"}) as model:
        assert isinstance(model, OipSuspect)
        assert model.describe() == config.reference() == f"oip:{URL}/v2/models/m"
    json_config = SuspectConfig.from_json(body(JSON), base=Path())
    with json_config.build(environ={}) as model:
        assert isinstance(model, JsonApiSuspect)
        assert model.describe() == json_config.reference() == f"json:{URL}/p"
    with pytest.raises(EncodingError, match="'url' is missing"):
        SuspectConfig.from_mapping({"model": "m"}, base=Path())
