"""OipSuspect against a real MLServer and a fake server that breaks the protocol."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.models import CallableSuspect, OipSuspect, Suspect
from tests.models.conftest import (
    LINEAR_VERSION,
    FakeOipServer,
    MLServerProcess,
    Reply,
    digit_like_inputs,
    json_reply,
    linear_logits,
)

# --- a real MLServer ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, lambda x: np.argmax(linear_logits(x), axis=1), id="argmax-of-logits"),
        pytest.param({"output": "values"}, linear_logits, id="logits-as-values"),
        pytest.param(
            {"output_name": "label", "output": "labels"},
            lambda x: np.argmax(linear_logits(x), axis=1),
            id="label-output",
        ),
        pytest.param(
            {"datatype": "UINT8"}, lambda x: np.argmax(linear_logits(x), axis=1), id="uint8-inputs"
        ),
        pytest.param(
            {"model_version": LINEAR_VERSION},
            lambda x: np.argmax(linear_logits(x), axis=1),
            id="versioned-path",
        ),
    ],
)
def test_remote_answers_equal_in_process_answers(
    mlserver: MLServerProcess, options: dict[str, Any], expected: Any
) -> None:
    inputs = digit_like_inputs(100)
    with OipSuspect(mlserver.base_url, "linear", batch_size=32, **options) as suspect:
        answers = suspect.predict(inputs)
    np.testing.assert_array_equal(answers, expected(inputs))
    assert answers.dtype == (np.float64 if options.get("output") == "values" else np.int64)
    assert answers.shape[0] == 100


def test_remote_and_in_process_adapters_agree(mlserver: MLServerProcess) -> None:
    inputs = digit_like_inputs(37, seed=11)
    local = CallableSuspect(linear_logits, output="argmax")
    with OipSuspect(mlserver.base_url, "linear") as remote:
        assert isinstance(remote, Suspect)
        np.testing.assert_array_equal(remote.predict(inputs), local.predict(inputs))


def test_describe_is_the_canonical_model_url(mlserver: MLServerProcess) -> None:
    with OipSuspect(mlserver.base_url + "/", "linear", model_version=LINEAR_VERSION) as suspect:
        assert suspect.describe() == f"oip:{mlserver.base_url}/v2/models/linear/versions/v1"


def test_unknown_model_is_a_404_without_retry(mlserver: MLServerProcess) -> None:
    with OipSuspect(mlserver.base_url, "no-such-model", retries=3, backoff=2.0) as suspect:
        started = time.monotonic()
        with pytest.raises(SuspectError, match=r"HTTP 404: Model no-such-model not found"):
            suspect.predict(digit_like_inputs(2))
        assert time.monotonic() - started < 1.5  # one retry alone would sleep 2 s


def test_unknown_version_is_a_404(mlserver: MLServerProcess) -> None:
    with (
        OipSuspect(mlserver.base_url, "linear", model_version="v9", retries=0) as suspect,
        pytest.raises(SuspectError, match=r"HTTP 404: .*version v9 not found"),
    ):
        suspect.predict(digit_like_inputs(2))


def test_missing_output_name_is_refused(mlserver: MLServerProcess) -> None:
    with (
        OipSuspect(mlserver.base_url, "linear", output_name="probabilities") as suspect,
        pytest.raises(SuspectError, match=r"'probabilities' is absent .*'logits', 'label'"),
    ):
        suspect.predict(digit_like_inputs(2))


def test_argmax_of_a_scalar_output_is_refused(mlserver: MLServerProcess) -> None:
    # argmax over one column would always be 0: a silent, always-wrong label.
    with (
        OipSuspect(mlserver.base_url, "linear", output_name="label") as suspect,
        pytest.raises(SuspectError, match=r"at least 2 scores per input, got shape \(3, 1\)"),
    ):
        suspect.predict(digit_like_inputs(3))


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("extra-row", {}, r"expected 5 answers \(one per input\), got 6"),
        ("nan", {}, r"output element 0 is null \(NaN\?\)"),
        ("fractional-labels", {"output": "labels"}, r"answer to input 0 is not an integer label"),
        ("no-outputs", {}, r"the response has no outputs"),
        (
            "refuse",
            {"retries": 3, "backoff": 2.0},
            r"HTTP 400: query refused by the suspect's policy",
        ),
    ],
)
def test_misbehaving_model_is_refused(
    mlserver: MLServerProcess, model: str, options: dict[str, Any], message: str
) -> None:
    with OipSuspect(mlserver.base_url, model, **options) as suspect:
        started = time.monotonic()
        with pytest.raises(SuspectError, match=message) as raised:
            suspect.predict(digit_like_inputs(5))
        assert time.monotonic() - started < 1.5  # none of these is retried
    assert str(raised.value).startswith(f"oip:{mlserver.base_url}/v2/models/{model}: ")


def test_server_error_is_retried_then_reported(mlserver: MLServerProcess) -> None:
    with (
        OipSuspect(mlserver.base_url, "crash", retries=1, backoff=0.01) as suspect,
        pytest.raises(SuspectError, match=r"\(gave up after 2 attempts\)") as failure,
    ):
        suspect.predict(digit_like_inputs(2))
    # The first attempt's 500 is always answered; the server may close the
    # connection after it, so the retry can fail on the connection instead.
    assert re.search(
        r"HTTP 500: RuntimeError: simulated crash inside the model"
        r"|connection failed \(RemoteProtocolError",
        str(failure.value),
    )


def test_slow_model_times_out_after_bounded_retries(mlserver: MLServerProcess) -> None:
    with OipSuspect(mlserver.base_url, "slow", timeout=0.4, retries=1, backoff=0.05) as suspect:
        started = time.monotonic()
        with pytest.raises(
            SuspectError, match=r"timed out after 0.4 s \(gave up after 2 attempts\)"
        ):
            suspect.predict(digit_like_inputs(2))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.8  # two attempts of 0.4 s each; the message counts them


def test_wait_until_ready(mlserver: MLServerProcess) -> None:
    with OipSuspect(mlserver.base_url, "linear") as suspect:
        suspect.wait_until_ready(5.0)
    with (
        OipSuspect(mlserver.base_url, "no-such-model") as suspect,
        pytest.raises(SuspectError, match=r"not ready after 0.3 s .*HTTP 404"),
    ):
        suspect.wait_until_ready(0.3)


# --- the fake server: what MLServer never does ------------------------------


def labels_reply(request: dict[str, Any]) -> Reply:
    rows = request["inputs"][0]["shape"][0]
    return json_reply(
        {
            "outputs": [
                {"name": "label", "shape": [rows], "datatype": "INT64", "data": list(range(rows))}
            ]
        }
    )


def output_reply(tensor: dict[str, Any]) -> Reply:
    return json_reply({"outputs": [tensor]})


def test_request_format_and_auth_header(fake_oip: FakeOipServer) -> None:
    fake_oip.route("auth", labels_reply)
    batch = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    with OipSuspect(
        fake_oip.base_url, "auth", output="labels", headers={"Authorization": "Bearer s3cret"}
    ) as suspect:
        np.testing.assert_array_equal(suspect.predict(batch), [0, 1])
    (request,) = fake_oip.requests_for("auth")
    assert request.method == "POST"
    assert request.path == "/v2/models/auth/infer"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "inputs": [
            {"name": "input-0", "shape": [2, 2, 2], "datatype": "FP32", "data": list(range(8))}
        ]
    }


def test_batches_are_split_and_reassembled(fake_oip: FakeOipServer) -> None:
    fake_oip.route("batches", labels_reply)
    with OipSuspect(fake_oip.base_url, "batches", output="labels", batch_size=4) as suspect:
        answers = suspect.predict(np.zeros((10, 3), dtype=np.float32))
    np.testing.assert_array_equal(answers, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    shapes = [json.loads(r.body)["inputs"][0]["shape"] for r in fake_oip.requests_for("batches")]
    assert shapes == [[4, 3], [4, 3], [2, 3]]


def test_a_caller_supplied_client_is_used_and_left_open(fake_oip: FakeOipServer) -> None:
    fake_oip.route("own-client", labels_reply)
    with httpx.Client(trust_env=False) as client:
        with OipSuspect(
            fake_oip.base_url, "own-client", output="labels", client=client, headers={"X-Case": "7"}
        ) as suspect:
            suspect.predict(np.zeros((1, 2)))
        assert not client.is_closed
    assert fake_oip.requests_for("own-client")[0].headers["x-case"] == "7"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param(
            Reply(body=b'{"outputs": [{"name": "label", "shape": [2], "da'),
            r"invalid JSON in the response",
            id="truncated-json",
        ),
        pytest.param(
            Reply(body=b"<html>busy</html>", content_type="text/html"),
            r"the response is not JSON \(Content-Type 'text/html'\): <html>busy</html>",
            id="html-body",
        ),
        pytest.param(
            Reply(
                body=b'{"outputs": [{"name": "label", "shape": [2], "datatype": "FP64", '
                b'"data": [1.0, NaN]}]}'
            ),
            r"invalid JSON .*NaN is not JSON",
            id="nan-literal",
        ),
        pytest.param(
            Reply(body=b'{"outputs": [], "outputs": [{"name": "label"}]}'),
            r"invalid JSON .*duplicate key",
            id="duplicate-keys",
        ),
        pytest.param(Reply(body=b"\xff\xfe{}"), r"invalid JSON", id="not-utf8"),
        pytest.param(json_reply([1, 2]), r"not a JSON object", id="top-level-array"),
        pytest.param(
            json_reply({"outputs": {"label": [1, 2]}}), r"has no outputs", id="outputs-not-list"
        ),
        pytest.param(
            output_reply(
                {"name": "label", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}
            ),
            r"shape \[2, 2\] needs 4 values, the data holds 3",
            id="shape-data-mismatch",
        ),
        pytest.param(
            output_reply(
                {"name": "label", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0], [3.0]]}
            ),
            r"nested output data does not follow its shape",
            id="ragged-nested-data",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}),
            r"datatype BYTES cannot carry answers",
            id="bytes-datatype",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "FP8", "data": [1.0, 2.0]}),
            r"unknown output datatype 'FP8'",
            id="unknown-datatype",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "INT64", "data": [1, True]}),
            r"output element 1 is bool, not a number of type INT64",
            id="boolean-element",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "FP32", "data": [1.0, "2"]}),
            r"output element 1 is str",
            id="string-element",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 2.0]}),
            r"output element 1 is float, not a number of type INT64",
            id="float-in-integer-tensor",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "UINT8", "data": [1, 300]}),
            r"outside the range of UINT8",
            id="integer-out-of-range",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [-1], "datatype": "INT64", "data": [1, 2]}),
            r"shape must be a list of 1 to 32 non-negative integers, got \[-1\]",
            id="negative-dimension",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}),
            r"expected 2 answers \(one per input\), got 3",
            id="answers-for-other-rows",
        ),
        pytest.param(
            json_reply(
                {
                    "outputs": [
                        {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                        {"name": "label", "shape": [2], "datatype": "INT64", "data": [3, 4]},
                    ]
                }
            ),
            r"the output 'label' is twice",
            id="output-name-twice",
        ),
        pytest.param(
            output_reply({"name": "label", "shape": [2], "datatype": "FP64", "data": [1e300, 2.0]}),
            r"a label does not fit in a 64-bit integer",
            id="label-overflow",
        ),
        pytest.param(
            Reply(
                body=b'{"outputs": [{"name": "label", "shape": [2], "datatype": "FP64", '
                b'"data": [1e400, 2.0]}]}'
            ),
            r"the answer to input 0 is not finite",
            id="number-overflowing-to-infinity",
        ),
        pytest.param(
            Reply(body=b"[" * 100_000 + b"]" * 100_000),
            r"invalid JSON in the response",
            id="nesting-bomb",
        ),
        pytest.param(
            output_reply(
                {"name": "label", "shape": [2] + [1] * 40, "datatype": "INT64", "data": [1, 2]}
            ),
            r"list of 1 to 32 non-negative integers",
            id="rank-too-large",
        ),
    ],
)
def test_malformed_response_is_refused(
    fake_oip: FakeOipServer, request: pytest.FixtureRequest, reply: Reply, message: str
) -> None:
    model = f"malformed-{request.node.callspec.id}"
    fake_oip.route(model, reply)
    with (
        OipSuspect(
            fake_oip.base_url, model, output="labels", output_name="label", retries=2, backoff=2.0
        ) as suspect,
        pytest.raises(SuspectError, match=message),
    ):
        suspect.predict(np.zeros((2, 4), dtype=np.float32))
    assert len(fake_oip.requests_for(model)) == 1  # a malformed answer is final


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ([[3, 1], [4, 1]], [2, 2]),  # nested along the shape, as the protocol allows
        ([3, 1, 4, 1], [2, 2]),  # flat, row-major
    ],
)
def test_nested_and_flat_data_are_both_read_row_major(
    fake_oip: FakeOipServer, data: list[Any], shape: list[int]
) -> None:
    fake_oip.route(
        "tokens", output_reply({"name": "t", "shape": shape, "datatype": "INT32", "data": data})
    )
    with OipSuspect(fake_oip.base_url, "tokens", output="labels") as suspect:
        np.testing.assert_array_equal(suspect.predict(np.zeros((2, 1))), [[3, 1], [4, 1]])


def test_client_errors_are_not_retried(fake_oip: FakeOipServer) -> None:
    fake_oip.route("forbidden", json_reply({"error": "missing token"}, status=401))
    with (
        OipSuspect(fake_oip.base_url, "forbidden", retries=3, backoff=2.0) as suspect,
        pytest.raises(SuspectError, match=r"HTTP 401: missing token$"),
    ):
        suspect.predict(np.zeros((1, 2)))
    assert len(fake_oip.requests_for("forbidden")) == 1


def test_redirects_are_not_followed(fake_oip: FakeOipServer) -> None:
    fake_oip.route("moved", Reply(status=302, headers=(("Location", "http://example.invalid/"),)))
    with (
        OipSuspect(fake_oip.base_url, "moved", retries=3, backoff=2.0) as suspect,
        pytest.raises(SuspectError, match=r"HTTP 302"),
    ):
        suspect.predict(np.zeros((1, 2)))
    assert len(fake_oip.requests_for("moved")) == 1


def test_unavailable_server_is_retried_a_bounded_number_of_times(fake_oip: FakeOipServer) -> None:
    fake_oip.route("overloaded", json_reply({"error": "overloaded"}, status=503))
    with (
        OipSuspect(fake_oip.base_url, "overloaded", retries=2, backoff=0.01) as suspect,
        pytest.raises(SuspectError, match=r"HTTP 503: overloaded \(gave up after 3 attempts\)"),
    ):
        suspect.predict(np.zeros((1, 2)))
    assert len(fake_oip.requests_for("overloaded")) == 3


def test_a_transient_failure_then_success_returns_answers(fake_oip: FakeOipServer) -> None:
    calls: list[int] = []

    def flaky(request: dict[str, Any]) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return json_reply({"error": "warming up"}, status=503)
        return labels_reply(request)

    fake_oip.route("flaky", flaky)
    with OipSuspect(fake_oip.base_url, "flaky", output="labels", backoff=0.01) as suspect:
        np.testing.assert_array_equal(suspect.predict(np.zeros((3, 2))), [0, 1, 2])
    assert len(calls) == 2


def test_short_read_is_a_connection_failure(fake_oip: FakeOipServer) -> None:
    fake_oip.route("short", Reply(body=b'{"outputs": [', declared_length=1000))
    with (
        OipSuspect(fake_oip.base_url, "short", retries=1, backoff=0.01) as suspect,
        pytest.raises(SuspectError, match=r"connection failed .*gave up after 2 attempts"),
    ):
        suspect.predict(np.zeros((1, 2)))
    assert len(fake_oip.requests_for("short")) == 2


def test_oversized_response_is_refused(fake_oip: FakeOipServer) -> None:
    fake_oip.route(
        "big",
        output_reply({"name": "o", "shape": [1, 2000], "datatype": "FP64", "data": [0.5] * 2000}),
    )
    with (
        OipSuspect(fake_oip.base_url, "big", max_response_bytes=1000) as suspect,
        pytest.raises(SuspectError, match=r"larger than 1000 bytes"),
    ):
        suspect.predict(np.zeros((1, 2)))


def test_trickled_body_is_bounded_by_the_total_timeout(fake_oip: FakeOipServer) -> None:
    # Each piece arrives well within the read timeout; the whole body does not.
    body = json.dumps({"outputs": [{"name": "o", "shape": [1], "datatype": "INT64", "data": [1]}]})
    fake_oip.route("trickle", Reply(body=body.encode(), trickle=4, trickle_delay=0.1))
    with OipSuspect(
        fake_oip.base_url, "trickle", output="labels", timeout=0.5, retries=0
    ) as suspect:
        started = time.monotonic()
        with pytest.raises(
            SuspectError, match=r"timed out after 0.5 s \(gave up after 1 attempts\)"
        ):
            suspect.predict(np.zeros((1, 2)))
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_retried_then_reported(unused_port: int) -> None:
    with OipSuspect(f"http://127.0.0.1:{unused_port}", "m", retries=1, backoff=0.01) as suspect:
        with pytest.raises(SuspectError, match=r"connection failed \(ConnectError.*2 attempts"):
            suspect.predict(np.zeros((1, 2)))
        with pytest.raises(SuspectError, match=r"not ready after 0.2 s \(ConnectError"):
            suspect.wait_until_ready(0.2)


# --- inputs and configuration ---------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "batch", "message"),
    [
        ("INT64", np.array([[0.5, 1.0]]), r"non-integral values, which INT64 cannot carry"),
        ("UINT8", np.array([[0, 256]]), r"outside the range of UINT8"),
        ("UINT8", np.array([[-1, 2]]), r"outside the range of UINT8"),
        ("FP16", np.array([[1e6, 0.0]]), r"too large for FP16"),
        ("FP32", np.array([[np.nan, 0.0]]), r"only finite values"),
        ("FP32", np.zeros((0, 2)), r"at least one row"),
    ],
)
def test_unencodable_batch_is_refused_before_any_request(
    fake_oip: FakeOipServer, datatype: str, batch: np.ndarray, message: str
) -> None:
    fake_oip.route("never", labels_reply)
    with (
        OipSuspect(fake_oip.base_url, "never", datatype=datatype) as suspect,
        pytest.raises(SuspectError, match=message),
    ):
        suspect.predict(batch)
    assert fake_oip.requests_for("never") == []


def test_integer_batches_are_sent_as_integers(fake_oip: FakeOipServer) -> None:
    fake_oip.route("ints", labels_reply)
    with OipSuspect(fake_oip.base_url, "ints", datatype="INT64", output="labels") as suspect:
        suspect.predict(np.array([[2.0, 2**40]]))
    sent = json.loads(fake_oip.requests_for("ints")[0].body)["inputs"][0]
    assert sent["datatype"] == "INT64"
    assert sent["data"] == [2, 2**40]


@pytest.mark.parametrize(
    ("base_url", "model", "version", "reference"),
    [
        ("HTTP://Example.COM:80/", "m", None, "oip:http://example.com/v2/models/m"),
        (
            "https://example.com:443/prefix//",
            "m",
            "2",
            "oip:https://example.com/prefix/v2/models/m/versions/2",
        ),
        ("http://[::1]:8080", "a:b c", None, "oip:http://[::1]:8080/v2/models/a%3Ab%20c"),
        ("http://[0:0::0:1]:08080/", "m", "1", "oip:http://[::1]:8080/v2/models/m/versions/1"),
        ("http://[::FFFF:127.0.0.1]", "m", None, "oip:http://127.0.0.1/v2/models/m"),
        ("http://LocalHost.:80/a/%7e/%70", "m", None, "oip:http://localhost/a/~/p/v2/models/m"),
        (
            "https://XN--BCHER-KVA.example",
            "é",
            None,
            "oip:https://xn--bcher-kva.example/v2/models/%C3%A9",
        ),
    ],
)
def test_reference_is_canonical(
    base_url: str, model: str, version: str | None, reference: str
) -> None:
    with OipSuspect(base_url, model, model_version=version) as suspect:
        assert suspect.describe() == reference


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("ftp://h", "m"), {}, r"http\(s\)://host"),
        (("http://user:pw@h", "m"), {}, r"must not hold credentials"),
        (("http://h/?token=1", "m"), {}, r"must not hold credentials, a query"),
        (("http://h", ""), {}, r"model_name must be a non-empty string"),
        (("http://h", "m"), {"model_version": ""}, r"model_version"),
        (("http://h", "m"), {"datatype": "BYTES"}, r"unsupported input datatype 'BYTES'"),
        (("http://h", "m"), {"timeout": 0}, r"timeout must be a positive number"),
        (("http://h", "m"), {"timeout": float("inf")}, r"timeout must be a positive number"),
        (("http://h", "m"), {"retries": -1}, r"retries must be a non-negative integer"),
        (("http://h", "m"), {"backoff": -0.1}, r"backoff must be"),
        (("http://h", "m"), {"batch_size": 0}, r"batch_size must be a positive integer"),
        (("http://h", "m"), {"output": "softmax"}, r"unknown output kind 'softmax'"),
        (("http://h", "m"), {"max_response_bytes": 0}, r"max_response_bytes"),
        (("http://127.1", "m"), {}, r"four decimal numbers"),
        (("http://0x7f000001", "m"), {}, r"four decimal numbers"),
        (("http://h/./p", "m"), {}, r"'\.' or '\.\.'"),
        (("http://h/%2e%2E", "m"), {}, r"'\.' or '\.\.'"),
        (("http://h/a%2Fb", "m"), {}, r"decoded into separators"),
        (("http://h\\p", "m"), {}, r"backslash"),
        (("http://h", "a/b"), {}, r"the model name 'a/b'.*separators"),
        (("http://h", ".."), {}, r"the model name '\.\.'"),
        (("http://h", "m;v=1"), {}, r"path parameters"),
        (("http://h", "m"), {"model_version": "01"}, r"without leading zeros: 1"),
        (("http://h", " m"), {}, r"white space"),
    ],
)
def test_invalid_configuration_is_refused(
    args: tuple[str, str], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(SuspectError, match=message):
        OipSuspect(*args, **options)


def test_close_is_idempotent() -> None:
    suspect = OipSuspect("http://127.0.0.1:9", "m")
    suspect.close()
    suspect.close()
