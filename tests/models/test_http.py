"""The HTTP transport of the remote adapters, against a real server on 127.0.0.1:
retries and Retry-After, halting after failures that do not depend on the
inputs, counted requests, redacted credentials."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.models import JsonApiSuspect, OipSuspect
from secmark.models.http import MAX_BACKOFF, check_headers, parse_retry_after
from tests.models import json_server
from tests.models.conftest import FakeOipServer, Reply, json_reply
from tests.models.json_server import Answer, JsonApi, labels_of

json_api = json_server.json_api

TEMPLATE = {"instances": "{{inputs}}"}
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def predictions(body: Any, _headers: dict[str, str]) -> Answer:
    return Answer(body={"predictions": labels_of(body["instances"])})


def suspect(url: str, **options: Any) -> JsonApiSuspect:
    return JsonApiSuspect(url, request=TEMPLATE, answers="/predictions", output="labels", **options)


# --- Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("999999999", 999999999.0),
        ("1000000000", math.inf),  # ten digits: "come back in 30 years"
        ("9" * 60, math.inf),
        (format_datetime(NOW + timedelta(seconds=20), usegmt=True), 20.0),
        (format_datetime(NOW - timedelta(days=1), usegmt=True), 0.0),  # past: no wait
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT" + "x" * 40, None),  # longer than any date
        ("Mon, 99 Foo 2025 99:99:99 GMT", None),
    ],
)
def test_retry_after_is_read_as_rfc_9110_says(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_429_waits_as_long_as_retry_after_asks(json_api: JsonApi) -> None:
    calls: list[int] = []

    def limited(body: Any, headers: dict[str, str]) -> Answer:
        calls.append(1)
        if len(calls) == 1:
            return Answer(429, {"error": "slow down"}, headers=(("Retry-After", "1"),))
        return predictions(body, headers)

    url = json_api.route("/rate-limited", limited)
    with suspect(url, backoff=0.0) as model:
        started = time.monotonic()
        answers = model.predict(np.eye(10, dtype=np.float32)[:3])
        elapsed = time.monotonic() - started
        assert model.requests_sent == 2
    np.testing.assert_array_equal(answers, [0, 1, 2])
    # Without honouring Retry-After the backoff of 0 s would retry at once.
    assert 1.0 <= elapsed < 2.5


def test_a_retry_after_too_long_to_wait_fails_at_once_and_halts(json_api: JsonApi) -> None:
    url = json_api.route(
        "/come-back-tomorrow",
        Answer(429, {"error": "quota exhausted"}, headers=(("Retry-After", "86400"),)),
    )
    with suspect(url, retries=5) as model:
        started = time.monotonic()
        with pytest.raises(SuspectError, match=r"asks to wait 86400 s .*longer than the 30 s"):
            model.predict(np.zeros((2, 10)))
        assert time.monotonic() - started < 1.0
        # Asked again (run_plan does, input by input): nothing more is sent.
        with pytest.raises(SuspectError, match=r"not sent: this failure does not depend"):
            model.predict(np.zeros((1, 10)))
        assert model.requests_sent == 1
    assert len(json_api.requests_to("/come-back-tomorrow")) == 1
    assert MAX_BACKOFF == 30.0


def test_429_still_there_after_every_retry_halts(json_api: JsonApi) -> None:
    url = json_api.route("/always-limited", Answer(429, {"error": "rate limited"}))
    with suspect(url, retries=2, backoff=0.01) as model:
        with pytest.raises(SuspectError, match=r"HTTP 429: rate limited \(gave up after 3"):
            model.predict(np.zeros((2, 10)))
        with pytest.raises(SuspectError, match=r"not sent"):
            model.predict(np.zeros((1, 10)))
        assert model.requests_sent == 3
    assert len(json_api.requests_to("/always-limited")) == 3


# --- halting after failures that do not depend on the inputs ---------------------


@pytest.mark.parametrize("status", [401, 403, 404, 405, 415])
def test_a_failure_independent_of_the_inputs_is_sent_once(json_api: JsonApi, status: int) -> None:
    path = f"/refused-{status}"
    url = json_api.route(path, Answer(status, {"error": "no"}))
    with suspect(url, retries=3, backoff=2.0) as model:
        for rows in (4, 1, 1, 1):  # a batch, then input by input as run_plan asks
            with pytest.raises(SuspectError, match=rf"HTTP {status}: no"):
                model.predict(np.zeros((rows, 10)))
        assert model.requests_sent == 1
    assert len(json_api.requests_to(path)) == 1


def test_a_refusal_of_some_inputs_does_not_halt(json_api: JsonApi) -> None:
    """A 400 may be about one input: the others are still asked."""

    def picky(body: Any, headers: dict[str, str]) -> Answer:
        if any(row[0] == 1 for row in body["instances"]):
            return Answer(400, {"error": "input refused by policy"})
        return predictions(body, headers)

    url = json_api.route("/picky", picky)
    batch = np.eye(10, dtype=np.float32)[:3]
    with suspect(url, retries=3) as model:
        with pytest.raises(SuspectError, match=r"HTTP 400: input refused by policy$"):
            model.predict(batch)
        np.testing.assert_array_equal(model.predict(batch[1:]), [1, 2])
        assert model.requests_sent == 2


def test_a_response_of_the_wrong_form_halts(json_api: JsonApi) -> None:
    """No answers where the pointer says: every input would fail alike."""
    url = json_api.route("/wrong-form", Answer(body={"outputs": [1, 2]}))
    with suspect(url) as model:
        with pytest.raises(SuspectError, match=r"no value at '/predictions'"):
            model.predict(np.zeros((2, 10)))
        with pytest.raises(SuspectError, match=r"no value at '/predictions' \(not sent"):
            model.predict(np.zeros((1, 10)))
        assert model.requests_sent == 1


def test_a_wrong_value_for_some_input_does_not_halt(json_api: JsonApi) -> None:
    """A null (NaN) answer may concern one input: the others are still asked."""
    url = json_api.route("/null-answer", Answer(body={"predictions": [None, 1]}))
    with suspect(url) as model:
        for _ in range(2):
            with pytest.raises(SuspectError, match=r"the answer to input 0 is null"):
                model.predict(np.zeros((2, 10)))
        assert model.requests_sent == 2


def test_an_unreachable_server_halts_and_counts_nothing(unused_port: int) -> None:
    with suspect(f"http://127.0.0.1:{unused_port}/p", retries=1, backoff=0.01) as model:
        with pytest.raises(SuspectError, match=r"connection failed .*2 attempts"):
            model.predict(np.zeros((2, 3)))
        with pytest.raises(SuspectError, match=r"not sent"):
            model.predict(np.zeros((1, 3)))
        assert model.requests_sent == 0  # no connection opened: nothing reached a server


def test_server_errors_do_not_halt(fake_oip: FakeOipServer) -> None:
    """A 5xx may be one input crashing the model: the others are still asked."""
    fake_oip.route("crashes-once", json_reply({"error": "boom"}, status=500))
    with OipSuspect(fake_oip.base_url, "crashes-once", retries=0) as model:
        for _ in range(2):
            with pytest.raises(SuspectError, match=r"HTTP 500: boom"):
                model.predict(np.zeros((1, 2)))
        assert model.requests_sent == 2


def test_timeouts_are_counted_as_sent(fake_oip: FakeOipServer) -> None:
    body = b'{"outputs": [{"name": "o", "shape": [1], "datatype": "INT64", "data": [1]}]}'
    fake_oip.route("dawdles", Reply(body=body, trickle=4, trickle_delay=0.1))
    with OipSuspect(
        fake_oip.base_url, "dawdles", output="labels", timeout=0.3, retries=1, backoff=0.01
    ) as model:
        with pytest.raises(SuspectError, match=r"timed out"):
            model.predict(np.zeros((1, 2)))
        assert model.requests_sent == 2


# --- credentials -----------------------------------------------------------------

TOKEN = "Bearer tok-3f9a1c77e0d24b5e"


def test_a_server_echoing_the_credentials_cannot_put_them_into_an_error(
    json_api: JsonApi,
) -> None:
    def echo(_body: Any, headers: dict[str, str]) -> Answer:
        return Answer(
            400,
            {
                "error": f"bad request from {headers['authorization']}; key "
                f"{headers['x-api-key']}; token {headers['authorization'][7:]}"
            },
        )

    url = json_api.route("/echo", echo)
    with (
        suspect(url, headers={"Authorization": TOKEN, "X-Api-Key": "k-0123456789"}) as model,
        pytest.raises(SuspectError) as raised,
    ):
        model.predict(np.zeros((1, 3)))
    message = str(raised.value)
    assert "tok-3f9a1c77e0d24b5e" not in message and "k-0123456789" not in message
    assert message.count("[redacted]") == 3
    (seen,) = json_api.requests_to("/echo")
    assert seen.headers["authorization"] == TOKEN


def test_a_long_credential_cut_by_the_error_limit_leaves_no_prefix(json_api: JsonApi) -> None:
    jwt = "eyJ" + "x" * 1200
    url = json_api.route("/echo-long", lambda _b, h: Answer(401, {"error": h["authorization"]}))
    with (
        suspect(url, headers={"Authorization": f"Bearer {jwt}"}) as model,
        pytest.raises(SuspectError) as raised,
    ):
        model.predict(np.zeros((1, 3)))
    assert "xxxxxxxx" not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": "Bearer abc\r\nX-Evil: 1"}, r"value of header 'Authorization'"),
        ({"Authorization": " Bearer padded"}, r"value of header 'Authorization'"),
        ({"Bad Name": "secret-v"}, r"not an HTTP field name"),
        ({"Host": "other-model.example"}, r"header 'Host' cannot be set"),
        ({"X-Amzn-SageMaker-Target-Model": "other.tar.gz"}, r"cannot be set"),
        ({"Content-Type": "text/plain"}, r"cannot be set"),
        ({"X-Key": "secret-one", "x-key": "secret-two"}, r"given twice"),
    ],
)
def test_headers_are_checked_and_values_never_quoted(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SuspectError, match=message) as raised:
        check_headers(headers)
    for value in headers.values():
        assert value not in str(raised.value)
