"""HTTP for remote suspects: one endpoint, bounded retries, counted requests.

Both remote adapters (:class:`~secmark.models.OipSuspect`,
:class:`~secmark.models.JsonApiSuspect`) post JSON through an
:class:`HttpTransport`. The suspect is a party to the dispute, and a remote
API may bill every request, so the transport:

1. bounds each attempt: the whole exchange (connect, send, wait, read the
   body) within ``timeout`` seconds, a body of at most ``max_response_bytes``
   (a server trickling bytes or sending gigabytes cannot hold the arbiter);
2. retries, at most ``retries`` times, only what may succeed when asked
   again: a connection that could not be opened or broke, a timeout, HTTP
   408, 429 and 5xx. Before retry *n* it waits ``backoff * 2**(n-1)``
   seconds, at most :data:`MAX_BACKOFF`, and at least what a
   ``Retry-After`` header of a 429 or 503 answer asks (delay-seconds or an
   HTTP-date, RFC 9110 10.2.3). A ``Retry-After`` longer than
   :data:`MAX_BACKOFF` is not waited for: the request fails at once, saying
   how long the server asked for. Any other status is final, and a 3xx is
   not followed;
3. stops for good after a failure that does not depend on what was sent
   (:data:`HALTING_STATUSES`, a 429 or a connection failure still there
   after every retry, a ``Retry-After`` too long to wait for, and, through
   :meth:`HttpTransport.halt`, a response of the wrong form,
   :class:`ResponseFormError`): every later request fails with the same
   error *without being sent*. A caller that retries a failed batch one
   input at a time (:func:`secmark.protocol.querying.run_plan`) then pays
   for nothing more. Failures that may concern one input only (400, 413,
   422, 5xx, timeouts, a NaN or a missing answer) do not stop it;
4. counts in :attr:`HttpTransport.requests_sent` every attempt that may
   have reached the server (and may be billed): every one whose connection
   was opened, whatever became of it;
5. treats every header value as a credential: none is ever quoted, and
   server text quoted in an error (at most :data:`MAX_ERROR_TEXT`
   characters of it) has every header value, and every word of one of at
   least :data:`MIN_REDACTED_LENGTH` characters (the token after
   ``Bearer``), replaced by ``[redacted]``, so that a server echoing the
   request cannot put a token into an error, a transcript or a log;
6. with an :class:`~secmark.models.egress.EgressPolicy`, sends each request
   only to an address the policy permits (checked as the request is sent,
   and the address checked is the one connected to), and stops for good
   when the host is not one.

Failures are :class:`~secmark.errors.SuspectError`, prefixed with the
suspect's reference.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httpx
import numpy as np

from secmark.encoding.jcs import reject_duplicate_keys, reject_json_constant
from secmark.errors import SecmarkError, SuspectError
from secmark.files import read_regular_file
from secmark.models.base import check_batch, check_batch_size
from secmark.models.egress import EgressPolicy, EgressRefused

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is Python 3.11 and later

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "HALTING_STATUSES",
    "MAX_BACKOFF",
    "MAX_ERROR_TEXT",
    "MAX_RESPONSE_BYTES",
    "MIN_REDACTED_LENGTH",
    "HttpSuspect",
    "HttpTransport",
    "ResponseFormError",
    "TlsFiles",
    "check_answer_kind",
    "check_headers",
    "check_input_shape",
    "check_media_type",
    "hide_userinfo",
    "load_json",
    "parse_retry_after",
    "reshape_rows",
]

DEFAULT_BATCH_SIZE = 64
"""Rows per request: keeps one request well under servers' body limits."""

DEFAULT_TIMEOUT = 10.0
"""Seconds one attempt (connect, send, wait, read the whole body) may take."""

DEFAULT_RETRIES = 2
"""Extra attempts after a timeout, a connection failure, a 408, 429 or 5xx."""

DEFAULT_BACKOFF = 0.25
"""Seconds before the first retry; each further retry waits twice as long,
up to ``MAX_BACKOFF``."""

MAX_BACKOFF = 30.0
"""Longest wait between two attempts, however many retries are allowed and
whatever a ``Retry-After`` header asks."""

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Largest response body read (after content decoding): a hostile server must
not exhaust the arbiter's memory. 64 logit rows need a few kilobytes."""

MAX_ERROR_TEXT = 200
"""Characters of a server's own error text quoted in an error."""

MIN_REDACTED_LENGTH = 8
"""Shortest word of a header value redacted on its own: shorter ones
(``Bearer``) are ordinary words, and no credential is that short."""

HALTING_STATUSES: Final = frozenset(
    {401, 403, 404, 405, 406, 407, 410, 411, 414, 415, 421, 426, 431}
)
"""Statuses that say nothing about the inputs sent (no credentials, no such
model, wrong method or media type, ...): asking again with other inputs
would only be billed again. A 3xx halts too. 400, 413 and 422 do not: a
server may refuse one input and answer the others."""

MAX_INPUT_RANK = 32
"""Most dimensions of one input as sent."""

_RETRIED_STATUSES: Final = frozenset({408, 429})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_MAX_RETRY_AFTER_TEXT = 64  # an IMF-fixdate has 29 characters
_MAX_DELAY_DIGITS = 9  # more is "come back in 30 years", read as unbounded
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
_MAX_HEADER_VALUE = 16 * 1024
_MAX_HEADERS = 64
_MAX_TLS_FILE = 1024 * 1024
# Headers the transport sets itself, or that would send the request to
# another resource than the reference names (Host: another virtual host;
# SageMaker's target headers: another model behind the same endpoint).
_RESERVED_HEADERS: Final = frozenset(
    {
        "connection",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-amzn-sagemaker-target-model",
        "x-amzn-sagemaker-target-variant",
        "x-amzn-sagemaker-target-container-hostname",
        "x-amzn-sagemaker-inference-component",
    }
)


class ResponseFormError(SuspectError):
    """A response of the wrong form, whatever the inputs: not JSON, without
    the output or the answers asked for, answers of another kind than the
    output asks for (one number where a row of scores is, integers where
    values are, strings). An honest server answers every input in one form,
    so the adapters halt their transport on it (module docstring, 3)."""


class _Transient(Exception):
    """A failure worth retrying. ``wait``: what Retry-After asked, if anything;
    ``halts``: stop for good now; ``halts_when_spent``: stop for good when it
    is still there after every retry (rate limits, unreachable servers)."""

    def __init__(
        self,
        message: str,
        *,
        wait: float | None = None,
        halts: bool = False,
        halts_when_spent: bool = False,
    ) -> None:
        super().__init__(message)
        self.wait = wait
        self.halts = halts
        self.halts_when_spent = halts_when_spent


def hide_userinfo(url: str, message: str) -> str:
    """``message`` with the credentials of ``url`` (``user:password@``), if
    any, replaced by ``***@``: a URL refused for holding them must not
    repeat them."""
    authority = url.partition("://")[2].split("/", 1)[0]
    userinfo = authority.rpartition("@")[0]
    return message.replace(userinfo + "@", "***@") if userinfo else message


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` as a dict, checked to be sendable as given.

    Names are HTTP tokens, not one the transport sets itself or that would
    reach another resource than the reference names (``Host``, SageMaker's
    ``X-Amzn-SageMaker-Target-*``); values are printable ASCII without line
    breaks or surrounding white space, at most 16 KiB. Errors name the
    header, never its value (it may be a credential).

    Raises:
        SuspectError: a rule is broken.
    """
    checked: dict[str, str] = {}
    if headers is None:
        return checked
    if not isinstance(headers, Mapping) or len(headers) > _MAX_HEADERS:
        raise SuspectError(f"headers must be a mapping of at most {_MAX_HEADERS} names to values")
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise SuspectError(
                f"header name {_summarise(repr(name))} is not an HTTP field name "
                "(letters, digits and !#$%&'*+-.^_`|~)"
            )
        if name.lower() in _RESERVED_HEADERS:
            raise SuspectError(
                f"header {name!r} cannot be set: the adapter sets it itself, or it would send "
                "the request to another resource than the suspect's reference names"
            )
        if name.lower() in seen:
            raise SuspectError(f"header {name!r} is given twice")
        seen.add(name.lower())
        if (
            not isinstance(value, str)
            or not value
            or len(value) > _MAX_HEADER_VALUE
            or not all(" " <= char <= "~" for char in value)
            or value.strip() != value
        ):
            # Never quote the value: it may be a credential.
            raise SuspectError(
                f"the value of header {name!r} must be 1 to {_MAX_HEADER_VALUE} printable ASCII "
                "characters without line breaks or surrounding white space"
            )
        checked[name] = value
    return checked


def _no_password() -> bytes:
    # OpenSSL would otherwise prompt on the terminal for an encrypted key.
    raise SuspectError(
        "the TLS client key is encrypted; give it unencrypted, readable only by its owner"
    )


@dataclass(frozen=True)
class TlsFiles:
    """TLS settings of a remote suspect, as PEM files.

    ``ca_file``: the certificates trusted to sign the server's, instead of
    the system's; ``cert_file`` (and ``key_file``, unless the certificate
    file holds the key too): the client certificate presented to a server
    that asks for one (mutual TLS). The key must not be encrypted and must
    not be readable by group or others.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """An SSL context that verifies the server (against ``ca_file`` when
        given) and presents the client certificate, if any.

        Raises:
            SuspectError: a file cannot be read or is no PEM of its kind, a
                key without a certificate, an encrypted or exposed key.
        """
        if self.key_file is not None and self.cert_file is None:
            raise SuspectError("a TLS client key needs its certificate (cert_file)")
        cadata = None
        if self.ca_file is not None:
            cadata = _read_tls_file(self.ca_file, "TLS CA file").decode("ascii", "replace")
        try:
            context = ssl.create_default_context(cadata=cadata)
        except (ssl.SSLError, ValueError) as error:
            raise SuspectError(
                f"TLS CA file {self.ca_file} holds no PEM certificate ({error})"
            ) from None
        if self.cert_file is not None:
            _read_tls_file(self.cert_file, "TLS client certificate")
            key = self.key_file or self.cert_file
            if self.key_file is not None:
                _read_tls_file(self.key_file, "TLS client key")
            if key.stat().st_mode & 0o077:
                raise SuspectError(f"the TLS client key {key} is readable by others; chmod 600 it")
            try:
                context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
            except (ssl.SSLError, OSError) as error:
                raise SuspectError(
                    f"cannot load the TLS client certificate {self.cert_file} "
                    f"and key {key}: {error}"
                ) from None
        return context


def _read_tls_file(path: Path, what: str) -> bytes:
    try:
        return read_regular_file(path, max_size=_MAX_TLS_FILE, what=what)
    except SecmarkError as error:
        raise SuspectError(str(error)) from None


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header value asks to wait, from ``now``.

    Delay-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2015 07:28:00
    GMT``; a date in the past asks for no wait). ``math.inf`` for a delay of
    more than nine digits. None for anything else (negative, fractional,
    malformed, longer than 64 characters): such a header is ignored, and the
    usual backoff applies.
    """
    text = value.strip()
    if not text or len(text) > _MAX_RETRY_AFTER_TEXT:
        return None
    if text.isascii() and text.isdigit():
        return math.inf if len(text) > _MAX_DELAY_DIGITS else float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, of unknown local meaning
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _summarise(text: str, secrets: tuple[str, ...] = ()) -> str:
    """One printable line of at most MAX_ERROR_TEXT characters of server
    text, with every secret replaced (before the text is cut, so no part of
    a secret survives the cut)."""
    longest = max((len(secret) for secret in secrets), default=0)
    text = text[: 4 * MAX_ERROR_TEXT + longest]
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(line) > MAX_ERROR_TEXT:
        return line[:MAX_ERROR_TEXT] + "..."
    return line or "(empty body)"


def _secrets_of(headers: Mapping[str, str]) -> tuple[str, ...]:
    words = {
        word
        for value in headers.values()
        for word in [value, *value.split()]
        if len(word) >= MIN_REDACTED_LENGTH
    }
    # Longest first: a value is replaced whole before its words are.
    return tuple(sorted(words, key=len, reverse=True))


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity
        raise ValueError(f"the number {text[:40]} is out of the range of a double")
    return number


def load_json(data: bytes | str, what: str, *, finite: bool = False) -> Any:
    """Strict JSON: UTF-8, complete, no duplicate keys, no ``NaN`` or
    ``Infinity`` literals; with ``finite``, no number out of a double's range
    either (else ``1e400`` reads as infinity, for the answer checks to refuse
    as the non-finite answer it is).

    Raises:
        ValueError: with ``what`` and the reason (the caller types it).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(
            text,
            object_pairs_hook=reject_duplicate_keys,
            parse_constant=reject_json_constant,
            parse_float=_finite_float if finite else float,
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"invalid JSON in {what} ({exc})") from None


class HttpTransport:
    """Posts JSON bodies to one URL as the module docstring says.

    ``reference`` prefixes every error; ``headers`` (checked by
    :func:`check_headers`) go with every request. Pass ``client`` to bring
    your own ``httpx.Client`` (it is then yours to close, and ``tls`` must
    be None); otherwise the transport's own client ignores proxy and
    ``.netrc`` settings from the environment, so the suspect is reached
    directly and receives nothing but ``headers``.
    """

    __slots__ = (
        "_backoff",
        "_client",
        "_halted",
        "_headers",
        "_max_response_bytes",
        "_owns_client",
        "_reference",
        "_requests_sent",
        "_retries",
        "_secrets",
        "_timeout",
        "_url",
    )

    def __init__(
        self,
        url: str,
        *,
        reference: str,
        timeout: float,
        retries: int,
        backoff: float,
        headers: Mapping[str, str] | None,
        client: httpx.Client | None,
        tls: TlsFiles | None,
        max_response_bytes: int,
        egress: EgressPolicy | None = None,
    ) -> None:
        if not (
            isinstance(timeout, (int, float))
            and not isinstance(timeout, bool)
            and math.isfinite(timeout)
            and timeout > 0
        ):
            raise SuspectError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise SuspectError(f"retries must be a non-negative integer, got {retries!r}")
        if not (
            isinstance(backoff, (int, float))
            and not isinstance(backoff, bool)
            and math.isfinite(backoff)
            and backoff >= 0
        ):
            raise SuspectError(f"backoff must be a non-negative number of seconds, got {backoff!r}")
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise SuspectError(
                f"max_response_bytes must be a positive integer, got {max_response_bytes!r}"
            )
        if client is not None and tls is not None:
            raise SuspectError("give TLS files or your own client, not both")
        if client is not None and egress is not None:
            raise SuspectError("give an egress policy or your own client, not both")
        self._url = url
        self._reference = reference
        self._timeout = float(timeout)
        self._retries = retries
        self._backoff = float(backoff)
        self._max_response_bytes = max_response_bytes
        given = check_headers(headers)
        self._secrets = _secrets_of(given)
        self._headers = {"Accept": "application/json", **given}
        self._halted: str | None = None
        self._requests_sent = 0
        self._owns_client = client is None
        if client is None:
            verify: ssl.SSLContext | bool = tls.context() if tls is not None else True
            hooks = {"request": [egress.pin]} if egress is not None else None
            client = httpx.Client(trust_env=False, verify=verify, event_hooks=hooks)
        self._client = client

    @property
    def requests_sent(self) -> int:
        """POST requests that may have reached the server (module docstring, 4)."""
        return self._requests_sent

    @property
    def timeout(self) -> float:
        return self._timeout

    def close(self) -> None:
        """Close the HTTP client if the transport created it (idempotent)."""
        if self._owns_client:
            self._client.close()

    def summarise(self, text: str) -> str:
        """Server text as it may be quoted: one line, cut, secrets redacted."""
        return _summarise(text, self._secrets)

    def error_text(self, body: bytes) -> str:
        """The server's error message: the ``error`` member of a JSON body
        (the Open Inference Protocol's error object; ``message`` and
        ``detail`` as other APIs name it), the last line of a Python
        traceback (what Python servers send for an unhandled exception), or
        the start of the body; redacted."""
        text = body.decode("utf-8", errors="replace")
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            for member in ("error", "message", "detail"):
                if isinstance(document.get(member), str):
                    return self.summarise(document[member])
        lines = text.strip().splitlines()
        if lines and lines[0].startswith("Traceback (most recent call last)"):
            return self.summarise(lines[-1])
        return self.summarise(text)

    def halt(self, message: str) -> None:
        """Send nothing more: every later :meth:`post` fails with ``message``
        (the first failure that halted the transport is kept)."""
        if self._halted is None:
            self._halted = message

    def get_status(self, url: str, timeout: float) -> int:
        """The status of ``GET url`` (readiness probes; not counted, not
        retried). Raises ``httpx.HTTPError`` for transport failures."""
        return self._client.get(url, headers=self._headers, timeout=timeout).status_code

    def post(self, body: bytes) -> tuple[str, bytes]:
        """(Content-Type, body) of a 200 answer to ``body``, after the
        retries the module docstring allows.

        Raises:
            SuspectError: every other outcome.
        """
        if self._halted is not None:
            raise SuspectError(
                f"{self._halted} (not sent: this failure does not depend on the inputs, "
                "so the adapter sends nothing more)"
            )
        failures = 0
        while True:
            try:
                return self._attempt(body)
            except _Transient as exc:
                failures += 1
                if failures > self._retries or exc.halts:
                    message = f"{self._reference}: {exc}"
                    if not exc.halts:
                        message += f" (gave up after {failures} attempts)"
                    if exc.halts or exc.halts_when_spent:
                        # Rate limited or unreachable: row-by-row retries would
                        # only be refused again (and billed).
                        self._halted = message
                    raise SuspectError(message) from None
                wait = min(self._backoff * 2 ** (failures - 1), MAX_BACKOFF)
                if exc.wait is not None:
                    wait = max(wait, exc.wait)
            time.sleep(wait)

    def _attempt(self, body: bytes) -> tuple[str, bytes]:
        """One attempt: (Content-Type, body) of a 200 answer, _Transient or SuspectError."""
        deadline = time.monotonic() + self._timeout
        headers = {**self._headers, "Content-Type": "application/json"}
        opened = False
        try:
            with self._client.stream(
                "POST", self._url, content=body, headers=headers, timeout=self._timeout
            ) as response:
                opened = True
                self._requests_sent += 1
                content = bytearray()
                for piece in response.iter_bytes():
                    content += piece
                    if len(content) > self._max_response_bytes:
                        raise SuspectError(
                            f"{self._reference}: the response is larger than "
                            f"{self._max_response_bytes} bytes"
                        )
                    if time.monotonic() > deadline:
                        raise _Transient(f"timed out after {self._timeout} s")
                status = response.status_code
                content_type = response.headers.get("content-type", "")
                retry_after = response.headers.get("retry-after")
        except EgressRefused as exc:
            # Where the name leads does not depend on the inputs.
            self._halted = f"{self._reference}: {exc}"
            raise EgressRefused(self._halted) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the server: not counted.
            raise _Transient(
                f"connection failed ({type(exc).__name__}: {self.summarise(str(exc))})",
                halts_when_spent=True,
            ) from None
        except httpx.TimeoutException:
            if not opened:
                self._requests_sent += 1  # sent, then no answer in time
            raise _Transient(f"timed out after {self._timeout} s") from None
        except httpx.TransportError as exc:
            if not opened:
                self._requests_sent += 1
            raise _Transient(
                f"connection failed ({type(exc).__name__}: {self.summarise(str(exc))})"
            ) from None
        except httpx.HTTPError as exc:
            raise SuspectError(
                f"{self._reference}: request failed "
                f"({type(exc).__name__}: {self.summarise(str(exc))})"
            ) from exc
        if status == 200:
            return content_type, bytes(content)
        text = f"HTTP {status}: {self.error_text(bytes(content))}"
        if status >= 500 or status in _RETRIED_STATUSES:
            wait = None
            if status in _RETRY_AFTER_STATUSES and retry_after is not None:
                wait = parse_retry_after(retry_after, now=datetime.now(timezone.utc))
            if wait is not None and wait > MAX_BACKOFF:
                asked = f"{wait:.0f} s" if math.isfinite(wait) else "an unbounded time"
                raise _Transient(
                    f"{text}; the server asks to wait {asked} before asking again (Retry-After), "
                    f"longer than the {MAX_BACKOFF:.0f} s this adapter waits: query again later",
                    halts=True,
                )
            raise _Transient(text, wait=wait, halts_when_spent=status == 429)
        message = f"{self._reference}: {text}"
        if 300 <= status < 400 or status in HALTING_STATUSES:
            self._halted = message
        raise SuspectError(message)


def check_media_type(content_type: str, body: bytes, transport: HttpTransport) -> None:
    """Raise ResponseFormError unless ``content_type`` is JSON
    (``application/json`` or ``*/*+json``)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ResponseFormError(
            f"the response is not JSON (Content-Type {transport.summarise(content_type)!r}): "
            f"{transport.error_text(body)}"
        )


def check_input_shape(shape: Sequence[int] | None) -> tuple[int, ...] | None:
    """``shape`` as a tuple of 1 to :data:`MAX_INPUT_RANK` positive ints, or None.

    Raises:
        SuspectError: anything else (``True`` is not a size).
    """
    if shape is None:
        return None
    if (
        isinstance(shape, str)
        or not isinstance(shape, Sequence)
        or not 0 < len(shape) <= MAX_INPUT_RANK
        or not all(type(dim) is int and dim > 0 for dim in shape)
    ):
        raise SuspectError(
            f"input_shape must be a list of 1 to {MAX_INPUT_RANK} positive integers, "
            f"got {shape!r:.80}"
        )
    return tuple(shape)


def reshape_rows(batch: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """Each row of ``batch`` in ``shape`` (its values in C order), or
    ``batch`` itself when ``shape`` is None.

    Raises:
        SuspectError: a row does not hold exactly as many values as ``shape``.
    """
    if shape is None:
        return batch
    row_size = math.prod(batch.shape[1:])
    if row_size != math.prod(shape):
        raise SuspectError(
            f"an input of shape {tuple(batch.shape[1:])} has {row_size} values, which cannot "
            f"be sent in input_shape {list(shape)} ({math.prod(shape)} values)"
        )
    return np.ascontiguousarray(batch).reshape((batch.shape[0], *shape))


def check_answer_kind(array: np.ndarray, output: str) -> None:
    """Raise ResponseFormError when ``array`` cannot hold answers of kind
    ``output``, whatever its values: ``"argmax"`` needs one row of at least
    two scores per input, ``"values"`` floating-point numbers. Everything
    else is :func:`~secmark.models.base.check_answers`'s to check."""
    if output == "argmax" and (array.ndim != 2 or array.shape[1] < 2):
        raise ResponseFormError(
            f"output 'argmax' needs one row of at least 2 scores per input, got shape "
            f"{array.shape}; use output 'labels' or 'values' for a model that answers scalars"
        )
    if output == "values" and array.dtype.kind in "iu":
        raise ResponseFormError(
            f"output 'values' needs floating-point answers, got dtype {array.dtype} "
            "(a class index is not a regression value)"
        )


class HttpSuspect:
    """What the adapters that post over :class:`HttpTransport` share: the
    reference they describe themselves by, batching, the input shape sent,
    the request count, and closing.

    A subclass calls :meth:`_connect` from its constructor and implements
    :meth:`_infer` (one request for at most ``batch_size`` rows, or one row
    without a batch dimension); it may override :meth:`_encode`.
    """

    __slots__ = ("_batch_dimension", "_batch_size", "_input_shape", "_reference", "_transport")

    def _connect(
        self,
        url: str,
        *,
        reference: str,
        batch_size: int,
        batch_dimension: bool,
        input_shape: Sequence[int] | None,
        timeout: float,
        retries: int,
        backoff: float,
        headers: Mapping[str, str] | None,
        client: httpx.Client | None,
        tls: TlsFiles | None,
        max_response_bytes: int,
        egress: EgressPolicy | None,
    ) -> None:
        """Check the shared settings and open the transport.

        Raises:
            SuspectError: a setting out of its range (:class:`HttpTransport`).
        """
        if not isinstance(batch_dimension, bool):
            raise SuspectError(f"batch_dimension must be True or False, got {batch_dimension!r}")
        self._reference = reference
        self._batch_dimension = batch_dimension
        self._batch_size = check_batch_size(batch_size) if batch_dimension else 1
        self._input_shape = check_input_shape(input_shape)
        self._transport = HttpTransport(
            url,
            reference=reference,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            client=client,
            tls=tls,
            max_response_bytes=max_response_bytes,
            egress=egress,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if the adapter created it (idempotent)."""
        self._transport.close()

    @property
    def requests_sent(self) -> int:
        """Requests that may have reached the server so far (every attempt
        whose connection was opened; module docstring)."""
        return self._transport.requests_sent

    def describe(self) -> str:
        return self._reference

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The endpoint's answers to every row of ``batch``; SuspectError on failure."""
        rows = reshape_rows(self._encode(check_batch(batch)), self._input_shape)
        parts = [
            self._infer(rows[start : start + self._batch_size])
            for start in range(0, rows.shape[0], self._batch_size)
        ]
        return np.concatenate(parts)

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        """The rows as they are sent (the batch itself unless overridden)."""
        return batch

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        raise NotImplementedError
