"""request_timestamp over HTTP against the built-in server, and every way it can fail."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from asn1crypto import tsp

from secmark.errors import TimestampError
from secmark.timestamp import (
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    TimestampAuthority,
    TimestampServer,
    TrustStore,
    request_timestamp,
    request_timestamp_from,
    verify_timestamp,
)
from secmark.timestamp.authority import MAX_REQUEST_SIZE
from tests.timestamp.conftest import MESSAGE


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha512"])
def test_http_round_trip(
    authority: TimestampAuthority, trust: TrustStore, hash_algorithm: str
) -> None:
    with TimestampServer(authority.respond, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        token = request_timestamp(server.url, MESSAGE, hash_algorithm=hash_algorithm)
    assert verify_timestamp(token, MESSAGE, trust).hash_algorithm == hash_algorithm


def test_caller_supplied_client_is_used_and_left_open(
    authority: TimestampAuthority, trust: TrustStore
) -> None:
    with TimestampServer(authority.respond, port=0) as server, httpx.Client() as client:
        request_timestamp(server.url, MESSAGE, client=client)
        token = request_timestamp(server.url, MESSAGE, client=client)
        assert not client.is_closed
    assert verify_timestamp(token, MESSAGE, trust).serial_number == 2


def test_server_refuses_what_rfc_3161_does_not_allow(authority: TimestampAuthority) -> None:
    with TimestampServer(authority.respond, port=0) as server:
        get = httpx.get(server.url)
        assert get.status_code == 405 and get.headers["Allow"] == "POST"
        assert httpx.post(server.url, content=b"x").status_code == 415
        assert (
            httpx.post(
                server.url, content=b"x", headers={"Content-Type": "application/octet-stream"}
            ).status_code
            == 415
        )
        too_big = httpx.post(
            server.url,
            content=b"\x30" * (MAX_REQUEST_SIZE + 1),
            headers={"Content-Type": QUERY_MEDIA_TYPE},
        )
        assert too_big.status_code == 413
        garbage = httpx.post(
            server.url, content=b"garbage", headers={"Content-Type": QUERY_MEDIA_TYPE}
        )
        # A request the TSA cannot parse is answered with a rejection, not an HTTP error.
        assert garbage.status_code == 200
        assert garbage.headers["Content-Type"] == REPLY_MEDIA_TYPE
        assert tsp.PKIStatusInfo.load(garbage.content[2:])["status"].native == "rejection"


# --- Client failures ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_down() -> None:
    url = f"http://127.0.0.1:{_free_port()}/"
    with pytest.raises(
        TimestampError, match="cannot connect to the TSA at .*that the TSA is running"
    ):
        request_timestamp(url, MESSAGE)


def test_slow_server(authority: TimestampAuthority) -> None:
    def slow(request: bytes) -> bytes:
        time.sleep(1.0)
        return authority.respond(request)

    with (
        TimestampServer(slow, port=0) as server,
        pytest.raises(TimestampError, match="did not answer within 0.2 s"),
    ):
        request_timestamp(server.url, MESSAGE, timeout=0.2)


def test_garbage_body() -> None:
    with (
        TimestampServer(lambda request: b"this is not DER", port=0) as server,
        pytest.raises(TimestampError, match="is not a DER TimeStampResp"),
    ):
        request_timestamp(server.url, MESSAGE)


def test_rejection_status(authority: TimestampAuthority) -> None:
    def refusing(request: bytes) -> bytes:
        return authority.respond(b"mangled " + request)

    with (
        TimestampServer(refusing, port=0) as server,
        pytest.raises(
            TimestampError, match=r"did not grant the timestamp: rejection \(badDataFormat\): "
        ),
    ):
        request_timestamp(server.url, MESSAGE)


def test_wrong_nonce(authority: TimestampAuthority) -> None:
    def renonce(request: bytes) -> bytes:
        parsed = tsp.TimeStampReq.load(request)
        return authority.respond(
            tsp.TimeStampReq({**parsed.native, "nonce": parsed["nonce"].native + 1}).dump()
        )

    with pytest.raises(TimestampError, match="replayed or belongs to another request"):
        request_timestamp_from(renonce, MESSAGE)


def test_replayed_answer(authority: TimestampAuthority) -> None:
    """An answer recorded for one request does not satisfy the next (fresh nonce)."""
    recorded: list[bytes] = []

    def replaying(request: bytes) -> bytes:
        if not recorded:
            recorded.append(authority.respond(request))
        return recorded[0]

    request_timestamp_from(replaying, MESSAGE)
    with pytest.raises(TimestampError, match="nonce"):
        request_timestamp_from(replaying, MESSAGE)


def test_other_imprint(authority: TimestampAuthority) -> None:
    def other(request: bytes) -> bytes:
        parsed = tsp.TimeStampReq.load(request).native
        parsed["message_imprint"]["hashed_message"] = bytes(32)
        return authority.respond(tsp.TimeStampReq(parsed).dump())

    with pytest.raises(TimestampError, match="another imprint"):
        request_timestamp_from(other, MESSAGE)


def test_unsupported_hash_algorithm() -> None:
    with pytest.raises(TimestampError, match="unsupported imprint hash algorithm 'sha1'"):
        request_timestamp_from(lambda request: b"", MESSAGE, hash_algorithm="sha1")


@contextmanager
def _raw_server(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """An HTTP server answering every POST with fixed bytes."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "error"),
    [
        (500, REPLY_MEDIA_TYPE, b"", "answered HTTP 500 Internal Server Error"),
        (404, "text/html", b"<html>", "answered HTTP 404"),
        (200, "text/html", b"<html>", "content type 'text/html'"),
        (200, REPLY_MEDIA_TYPE, b"\x30" * 70000, "more than 65536 bytes"),
    ],
    ids=["http-500", "http-404", "wrong-content-type", "oversized"],
)
def test_http_failures(status: int, content_type: str, body: bytes, error: str) -> None:
    with _raw_server(status, content_type, body) as url, pytest.raises(TimestampError, match=error):
        request_timestamp(url, MESSAGE)


def test_invalid_url() -> None:
    with pytest.raises(TimestampError, match="HTTP exchange with the TSA at"):
        request_timestamp("ftp://127.0.0.1/", MESSAGE)


# --- The deadline: a TSA that drips its answer --------------------------------


@contextmanager
def _dripping_server(
    respond: Callable[[bytes], bytes], *, delay: float, chunk: int, drip_headers: bool
) -> Iterator[str]:
    """A real TSA on 127.0.0.1 that sends a valid answer ``chunk`` bytes every ``delay`` s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += connection.recv(4096)
                head, body = received.split(b"\r\n\r\n", 1)
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                )
                while len(body) < length:
                    body += connection.recv(4096)
                answer = respond(body)
                data = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: " + REPLY_MEDIA_TYPE.encode()
                    + b"\r\nContent-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
                )  # fmt: skip
                start = 0 if drip_headers else len(data) - len(answer)
                try:
                    connection.sendall(data[:start])
                    for index in range(start, len(data), chunk):
                        if stop.is_set():
                            break
                        connection.sendall(data[index : index + chunk])
                        time.sleep(delay)
                except OSError:
                    continue  # the client hung up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body-drips", "headers-drip"])
@pytest.mark.parametrize("own_client", [True, False], ids=["own-client", "caller-client"])
def test_dripping_tsa_is_cut_off_at_the_deadline(
    authority: TimestampAuthority, drip_headers: bool, own_client: bool
) -> None:
    """Each read arrives in time, the whole answer never would: about 40 s at one byte a 50 ms."""
    with (
        _dripping_server(authority.respond, delay=0.05, chunk=1, drip_headers=drip_headers) as url,
        httpx.Client() as client,
    ):
        started = time.monotonic()
        with pytest.raises(TimestampError, match="did not answer within 1.0 s"):
            request_timestamp(url, MESSAGE, timeout=1.0, client=None if own_client else client)
        assert time.monotonic() - started < 5.0  # not the ~40 s of the whole drip


def test_answer_in_chunks_within_the_deadline(
    authority: TimestampAuthority, trust: TrustStore
) -> None:
    """Control: the same server, faster, is a working TSA."""
    with _dripping_server(authority.respond, delay=0.01, chunk=64, drip_headers=True) as url:
        token = request_timestamp(url, MESSAGE, timeout=10.0)
    assert verify_timestamp(token, MESSAGE, trust).serial_number == 1


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), 1e12])
def test_timeout_must_be_positive_and_bounded(timeout: float) -> None:
    with pytest.raises(TimestampError, match="positive number of seconds up to 3600"):
        request_timestamp("http://127.0.0.1:1/", MESSAGE, timeout=timeout)


# --- Bursts: the listen backlog --------------------------------------------------


def test_200_simultaneous_connections_all_get_answers(authority: TimestampAuthority) -> None:
    """With the stdlib's backlog of 5, 91 to 117 of them were reset."""
    answer = request_timestamp_from(authority.respond, MESSAGE)
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": bytes(32),
            },
        }
    ).dump()
    http_request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + QUERY_MEDIA_TYPE.encode()
        + b"\r\nContent-Length: " + str(len(request)).encode() + b"\r\nConnection: close\r\n\r\n"
        + request
    )  # fmt: skip
    clients = 200
    start = threading.Barrier(clients)
    outcomes: list[str] = ["not run"] * clients

    def one(index: int, port: int) -> None:
        try:
            start.wait(timeout=30)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                connection.sendall(http_request)
                received = b""
                while chunk := connection.recv(65536):
                    received += chunk
            outcomes[index] = "answered" if received.endswith(answer) else received[:40].decode()
        except OSError as error:
            outcomes[index] = type(error).__name__

    with TimestampServer(lambda body: answer, port=0) as server:
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        threads = [threading.Thread(target=one, args=(i, port)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert outcomes == ["answered"] * clients, Counter(outcomes)
