"""Obtaining an RFC 3161 timestamp token for a message.

The message is the bytes to be dated (in secmark, a commitment's 32-byte
id). The request carries an imprint: SHA-256 or SHA-512 *of the message*, so
that ``verify_timestamp(token, message, ...)`` and rfc3161-client's
``verify_message(response, message)`` work on the message itself.

The answer is checked before it is returned: granted status, the imprint and
the nonce of this request, and parsable by both asn1crypto and rfc3161-client
(after the SignedData's unsigned SETs, such as the certificates, are
re-encoded in DER order: OpenSSL-based TSAs write them unsorted). It is
*not* checked against any trust store; that is
:func:`secmark.timestamp.verify_timestamp`'s job, done where the token is used
(``secmark timestamp`` does it before it stores the token).

``timeout`` bounds the whole exchange with a TSA, not each read: a TSA that
drips its answer a byte at a time is cut off at the deadline.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
from asn1crypto import core, tsp

from secmark.errors import TimestampError
from secmark.timestamp._tsp import (
    MALFORMED_INPUT_ERRORS,
    MAX_TOKEN_SIZE,
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    describe_status,
    imprint,
    load_response,
)

__all__ = ["DEFAULT_TIMEOUT", "request_timestamp", "request_timestamp_from"]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds the whole exchange with a TSA may take: connecting, sending the
request and receiving the whole answer (a deadline, not a per-read timeout)."""

# An exchange longer than an hour is a hang, not a slow TSA (and the thread
# join cannot wait for ever: threading.TIMEOUT_MAX).
_MAX_TIMEOUT: Final = 3600.0

# After the deadline, how long the exchange's thread gets to notice that its
# connection was closed before it is left to finish on its own (daemon).
_ABANDON_GRACE: Final = 1.0

_NONCE_BITS: Final = 64


@dataclass(frozen=True)
class _Request:
    der: bytes
    hash_algorithm: str
    hashed_message: bytes
    nonce: int


def _build_request(message: bytes, hash_algorithm: str) -> _Request:
    hashed_message = imprint(message, hash_algorithm)
    nonce = secrets.randbits(_NONCE_BITS)
    der = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": hash_algorithm},
                "hashed_message": hashed_message,
            },
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()
    return _Request(der, hash_algorithm, hashed_message, nonce)


def _check_answer(request: _Request, answer: bytes, source: str) -> bytes:
    """The answer (unsigned SETs in DER order), if it grants this very request."""
    try:
        return _check_grant(request, answer, source)
    except MALFORMED_INPUT_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise TimestampError(f"the answer of {source} is malformed: {reason}") from None


def _check_grant(request: _Request, answer: bytes, source: str) -> bytes:
    answer, response = load_response(answer, what=f"the answer of {source}")
    status = response["status"]
    if status["status"].native != "granted":
        # grantedWithMods is refused too: verifiers (rfc3161-client among them)
        # do not accept it, so such a token could never be used.
        raise TimestampError(f"{source} did not grant the timestamp: {describe_status(status)}")
    token = response["time_stamp_token"]
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        raise TimestampError(f"{source} granted the timestamp but sent no token")
    content = token["content"]["encap_content_info"]
    if content["content_type"].native != "tst_info" or isinstance(content["content"], core.Void):
        raise TimestampError(f"{source} sent a token without TSTInfo")
    tst_info = content["content"].parsed
    message_imprint = tst_info["message_imprint"]
    if (
        message_imprint["hash_algorithm"]["algorithm"].native != request.hash_algorithm
        or message_imprint["hashed_message"].native != request.hashed_message
    ):
        raise TimestampError(f"{source} timestamped another imprint than the one requested")
    if tst_info["nonce"].native != request.nonce:
        raise TimestampError(
            f"{source} answered with nonce {tst_info['nonce'].native} instead of "
            f"{request.nonce}: the answer is replayed or belongs to another request"
        )
    return answer


def request_timestamp(
    url: str,
    message: bytes,
    *,
    hash_algorithm: str = "sha256",
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> bytes:
    """Ask the TSA at ``url`` to timestamp ``message``; return the token.

    The token is the DER of the whole TimeStampResp. ``hash_algorithm`` is
    ``"sha256"`` or ``"sha512"``. ``client`` lets the caller supply proxies,
    TLS settings or a mock transport; it is not closed.

    Raises:
        TimestampError: the TSA cannot be reached or does not answer within
            ``timeout``, answers with an HTTP error, the wrong content type or
            an oversized or malformed body, refuses (the message gives its
            status, failure bits and text), or grants something other than
            this request.
    """
    if not 0 < timeout <= _MAX_TIMEOUT:
        raise TimestampError(
            f"the timeout must be a positive number of seconds up to {_MAX_TIMEOUT:g}, "
            f"not {timeout}"
        )
    request = _build_request(message, hash_algorithm)
    source = f"the TSA at {url}"
    http = client if client is not None else httpx.Client()
    exchange = _Exchange(http, url, request.der, source, timeout)
    worker = threading.Thread(target=exchange.run, name="secmark-tsa-request", daemon=True)
    try:
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            # Past the deadline: stop the exchange. Closing our own client
            # closes its socket; a caller's client is left open, and the
            # exchange thread stops at its next read (each is bounded too).
            exchange.cancelled.set()
            if client is None:
                http.close()
                worker.join(_ABANDON_GRACE)
            raise exchange.too_late()
    finally:
        if client is None:
            http.close()
    if exchange.error is not None:
        raise exchange.error
    return _check_answer(request, exchange.body, source)


class _Exchange:
    """One POST to a TSA, run in a thread so that the caller can stop waiting.

    httpx bounds each network operation, not the whole exchange; the caller
    joins this thread until the deadline. The body is read in chunks, and
    the deadline and :attr:`cancelled` are checked between them.
    """

    def __init__(
        self, http: httpx.Client, url: str, request_der: bytes, source: str, timeout: float
    ) -> None:
        self._http = http
        self._url = url
        self._request_der = request_der
        self._source = source
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self.cancelled = threading.Event()
        self.body = b""
        # A TimestampError, or anything else (a bug) to re-raise as it is.
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.body = self._post()
        except TimestampError as error:
            self.error = error
        except httpx.TimeoutException:
            self.error = self.too_late()
        except httpx.ConnectError as error:
            self.error = TimestampError(
                f"cannot connect to {self._source}: {error}; check the URL and that the TSA "
                "is running"
            )
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            self.error = TimestampError(f"the HTTP exchange with {self._source} failed: {error}")
        except BaseException as error:  # noqa: BLE001 (re-raised in the caller's thread)
            self.error = error

    def too_late(self) -> TimestampError:
        """The error for an exchange past its deadline (the same from either thread)."""
        return TimestampError(
            f"{self._source} did not answer within {self._timeout} s; "
            "retry later or raise the timeout"
        )

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or self.cancelled.is_set():
            raise self.too_late()
        return remaining

    def _post(self) -> bytes:
        source = self._source
        body = bytearray()
        with self._http.stream(
            "POST",
            self._url,
            content=self._request_der,
            headers={"Content-Type": QUERY_MEDIA_TYPE, "Accept": REPLY_MEDIA_TYPE},
            timeout=self._remaining(),
        ) as response:
            if response.status_code != 200:
                raise TimestampError(
                    f"{source} answered HTTP {response.status_code} {response.reason_phrase}; "
                    "check the URL, or retry later if the TSA is in trouble"
                )
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if media_type != REPLY_MEDIA_TYPE:
                raise TimestampError(
                    f"{source} answered with content type {media_type or 'none'!r}, not "
                    f"{REPLY_MEDIA_TYPE}; the URL is probably not a timestamp service"
                )
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_TOKEN_SIZE:
                    raise TimestampError(
                        f"{source} sent more than {MAX_TOKEN_SIZE} bytes; it is not a TSA answer"
                    )
                self._remaining()
        return bytes(body)


def request_timestamp_from(
    authority: Callable[[bytes], bytes],
    message: bytes,
    *,
    hash_algorithm: str = "sha256",
) -> bytes:
    """Timestamp ``message`` with an in-process authority; return the token.

    ``authority`` answers a DER TimeStampReq with a DER TimeStampResp, as
    :meth:`secmark.timestamp.TimestampAuthority.respond` does. The answer is
    checked exactly as :func:`request_timestamp` checks a remote one.

    Raises:
        TimestampError: the authority refuses, or answers with something that
            is not a grant of this request.
    """
    request = _build_request(message, hash_algorithm)
    return _check_answer(request, authority(request.der), "the timestamp authority")
