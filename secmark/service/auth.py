"""Signed requests: how a party of a case proves who is asking.

A request that reads a case's private parts (the reveal; the transcript
before the decision) carries::

    Authorization: Secmark-Signature keyid=<hex>, time=<RFC 3339>, signature=<b64url>

``keyid`` is the signer's identity key id (64 lower-case hex digits),
``time`` the signing time as ``YYYY-MM-DDTHH:MM:SSZ``, and ``signature`` the
unpadded base64url Ed25519 signature, by the identity's signing key, of::

    METHOD "\\n" PATH "\\n" TIME "\\n" hex(SHA-256(body))

where PATH is the request target as sent (path, and ``?`` and the query
when there is one). The service accepts it when the key is a party of the
case (the commitment's owner, or the arbiter itself), the time is within
:data:`MAX_SKEW` of its clock, the signature verifies
(:func:`secmark.crypto.keys.verify_ed25519`) and the same signature was not
accepted before: each is accepted once, and is remembered (by the service,
in its database) only as long as its time lies within the window, after
which the time check refuses it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from secmark.crypto.keys import IdentityKeys, verify_ed25519
from secmark.encoding import b64url_decode, b64url_encode, format_time, parse_time, utc_now
from secmark.errors import EncodingError, SignatureError

__all__ = [
    "MAX_SKEW",
    "SCHEME",
    "AuthenticationError",
    "RequestVerifier",
    "SignatureMemory",
    "sign_request",
    "signed_message",
]

SCHEME: Final = "Secmark-Signature"
MAX_SKEW: Final = timedelta(minutes=5)
"""How far a request's signing time may lie from the service's clock."""

_HEADER = re.compile(
    rf"{SCHEME} keyid=(?P<keyid>[0-9a-f]{{64}}), time=(?P<time>[0-9TZ:-]{{20}}), "
    r"signature=(?P<signature>[A-Za-z0-9_-]{86})"
)


class AuthenticationError(SignatureError):
    """A request that needs a party's signature carries none, or one that is
    malformed, outside the time window, replayed or not valid (HTTP 401).
    A valid signature by a key that is no party of the case is a plain
    :class:`~secmark.errors.SignatureError` (HTTP 403)."""


def signed_message(method: str, path: str, time: str, body: bytes) -> bytes:
    """The bytes a request signature covers (module docstring)."""
    return "\n".join((method.upper(), path, time, hashlib.sha256(body).hexdigest())).encode()


def sign_request(
    keys: IdentityKeys, method: str, path: str, body: bytes = b"", *, now: datetime | None = None
) -> str:
    """The ``Authorization`` header value signing this request with ``keys``."""
    time = format_time(now or utc_now())
    signature = keys.sign(signed_message(method, path, time, body))
    return f"{SCHEME} keyid={keys.key_id}, time={time}, signature={b64url_encode(signature)}"


@dataclass(frozen=True)
class _Parsed:
    key_id: str
    time: str
    signature: bytes


def _parse(header: str) -> _Parsed:
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        raise AuthenticationError(
            f"the Authorization header must read '{SCHEME} keyid=<64 hex digits>, "
            "time=<YYYY-MM-DDTHH:MM:SSZ>, signature=<86 base64url characters>'"
        )
    try:
        signature = b64url_decode(match["signature"], what="the signature", size=64)
    except EncodingError as error:
        raise AuthenticationError(str(error)) from None
    return _Parsed(match["keyid"], match["time"], signature)


SignatureMemory = Callable[[bytes, datetime, datetime], bool]
"""``remember(signature, expires, now)``: record an accepted signature until
``expires``; False when it was recorded before (a replay)."""


class RequestVerifier:
    """Checks signed requests and remembers accepted signatures (thread-safe).

    ``remember`` keeps the accepted signatures (the service keeps them in its
    database, so a restart forgets none); by default they are kept in memory.
    """

    def __init__(
        self,
        *,
        window: timedelta = MAX_SKEW,
        clock: Callable[[], datetime] = utc_now,
        remember: SignatureMemory | None = None,
    ) -> None:
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[bytes, datetime] = {}
        self._remember = remember or self._remember_in_memory

    def _remember_in_memory(self, signature: bytes, expires: datetime, now: datetime) -> bool:
        with self._lock:
            # Forget what the time check now refuses anyway: the cache holds
            # at most one window of accepted signatures.
            for old in [s for s, expiry in self._seen.items() if expiry < now]:
                del self._seen[old]
            if signature in self._seen:
                return False
            self._seen[signature] = expires
            return True

    def verify(
        self,
        header: str | None,
        method: str,
        path: str,
        body: bytes,
        parties: Mapping[str, bytes],
    ) -> str:
        """The key id of the party that signed this request.

        ``parties`` maps each party's key id to its Ed25519 signing key.

        Raises:
            AuthenticationError: no header, a malformed one, a time outside
                the window, a signature that does not verify, or one that
                was accepted before.
            SignatureError: a valid header by a key that is no party.
        """
        if header is None:
            raise AuthenticationError(
                "this resource is readable by the parties of the case only: sign the request "
                f"with your identity key ({SCHEME})"
            )
        parsed = _parse(header)
        if parsed.key_id not in parties:
            raise SignatureError(f"key {parsed.key_id} is not a party of this case")
        try:
            signed_at = parse_time(parsed.time, what="the signing time")
        except EncodingError as error:
            raise AuthenticationError(str(error)) from None
        now = self._clock()
        if abs(now - signed_at) > self._window:
            raise AuthenticationError(
                f"the request was signed at {parsed.time}, more than "
                f"{int(self._window.total_seconds())} s from the service's clock "
                f"({format_time(now)}): sign it again now"
            )
        try:
            verify_ed25519(
                parties[parsed.key_id],
                signed_message(method, path, parsed.time, body),
                parsed.signature,
            )
        except SignatureError:
            raise AuthenticationError(
                "the request signature does not verify (it covers method, path, time and the "
                "body's SHA-256)"
            ) from None
        if not self._remember(parsed.signature, signed_at + self._window, now):
            raise AuthenticationError("this signed request was accepted before: sign anew")
        return parsed.key_id
