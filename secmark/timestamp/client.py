"""Obtaining an RFC 3161 timestamp token for a message.

The message is the bytes to be dated (in secmark, a commitment's 32-byte
id). The request carries an imprint: SHA-256 or SHA-512 *of the message*, so
that ``verify_timestamp(token, message, ...)`` and rfc3161-client's
``verify_message(response, message)`` work on the message itself.

The answer is checked before it is returned: granted status, the imprint and
the nonce of this request, and parsable by both asn1crypto and rfc3161-client.
It is *not* checked against any trust store; that is
:func:`secmark.timestamp.verify_timestamp`'s job, done where the token is used.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
from asn1crypto import core, tsp

from secmark.errors import TimestampError
from secmark.timestamp._tsp import (
    MAX_TOKEN_SIZE,
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    describe_status,
    imprint,
    load_response,
)

__all__ = ["DEFAULT_TIMEOUT", "request_timestamp", "request_timestamp_from"]

DEFAULT_TIMEOUT: Final = 10.0
"""Seconds to wait for a TSA to connect, and then for each read."""

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
    """The answer, if it grants this very request; else TimestampError."""
    try:
        return _check_grant(request, answer, source)
    except (ValueError, TypeError, KeyError) as error:
        raise TimestampError(f"the answer of {source} is malformed: {error}") from None


def _check_grant(request: _Request, answer: bytes, source: str) -> bytes:
    response = load_response(answer, what=f"the answer of {source}")
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
    request = _build_request(message, hash_algorithm)
    source = f"the TSA at {url}"
    http = client if client is not None else httpx.Client()
    body = bytearray()
    try:
        with http.stream(
            "POST",
            url,
            content=request.der,
            headers={"Content-Type": QUERY_MEDIA_TYPE, "Accept": REPLY_MEDIA_TYPE},
            timeout=timeout,
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
    except httpx.TimeoutException:
        raise TimestampError(
            f"{source} did not answer within {timeout} s; retry later or raise the timeout"
        ) from None
    except httpx.ConnectError as error:
        raise TimestampError(
            f"cannot connect to {source}: {error}; check the URL and that the TSA is running"
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise TimestampError(f"the HTTP exchange with {source} failed: {error}") from None
    finally:
        if client is None:
            http.close()
    return _check_answer(request, bytes(body), source)


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
