"""A client of the arbiter service (:mod:`secmark.service.app`), for the
owner's and the arbiter operator's commands (``--arbiter-url``).

:class:`ArbiterClient` speaks the service's routes over httpx. With
``keys`` (the caller's identity keys) every step that changes a case, and
every read of a case's private parts, carries a signed ``Authorization``
header (:func:`~secmark.service.auth.sign_request`); reads of public state
are sent unsigned.

Every refusal is one of secmark's typed errors, built from the service's
RFC 9457 problem document and naming what was wrong: 400 (and 413)
:class:`~secmark.errors.EncodingError` (a ``key-material`` problem
:class:`~secmark.errors.KeyMaterialError`), 401 and 403
:class:`~secmark.errors.SignatureError`, 404 and 409
:class:`~secmark.errors.ProtocolError`, 422
:class:`~secmark.errors.ProofError` (a ``timestamp`` problem
:class:`~secmark.errors.TimestampError`), 502
:class:`~secmark.errors.SuspectError`, anything else a plain
:class:`~secmark.errors.SecmarkError`. Each also is a :class:`ServiceError`
carrying the problem. A 429 is retried once after its ``Retry-After``.

Only ``http`` and ``https`` URLs are used; a redirect is followed only
within the same scheme, host and port (and only where it keeps the
request's meaning); an answer is read no further than ``max_response``
bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import format_time, is_hex_digest, utc_now
from secmark.errors import (
    EncodingError,
    KeyMaterialError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    SuspectError,
    TimestampError,
)
from secmark.protocol.bundle import MAX_BUNDLE_SIZE
from secmark.service.auth import sign_request

__all__ = [
    "DEFAULT_TIMEOUT",
    "ArbiterClient",
    "CaseInfo",
    "JobInfo",
    "ProblemDocument",
    "ServiceError",
    "check_case_id",
]

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds to connect, and between bytes of an answer."""

MAX_RETRY_AFTER: Final = 60
"""The longest ``Retry-After`` the client waits out before its one retry."""

_MAX_REDIRECTS: Final = 3
_MAX_DETAIL: Final = 500
_JOB_ID = re.compile(r"[0-9a-f]{1,64}")
_FINISHED: Final = ("done", "failed")


@dataclass(frozen=True)
class ProblemDocument:
    """What the service said was wrong (RFC 9457; ``type`` and ``title``
    may be empty when the answer was not a problem document)."""

    status: int
    type: str
    title: str
    detail: str


class ServiceError(SecmarkError):
    """A refusal by the arbiter service; the concrete class is also the
    typed error of its status (module docstring)."""

    problem: ProblemDocument | None = None


class _EncodingRefusal(EncodingError, ServiceError):
    pass


class _KeyMaterialRefusal(KeyMaterialError, ServiceError):
    pass


class _SignatureRefusal(SignatureError, ServiceError):
    pass


class _ProofRefusal(ProofError, ServiceError):
    pass


class _TimestampRefusal(TimestampError, ServiceError):
    pass


class _ProtocolRefusal(ProtocolError, ServiceError):
    pass


class _SuspectRefusal(SuspectError, ServiceError):
    pass


_BY_STATUS: Final[Mapping[int, type[ServiceError]]] = {
    400: _EncodingRefusal,
    401: _SignatureRefusal,
    403: _SignatureRefusal,
    404: _ProtocolRefusal,
    409: _ProtocolRefusal,
    413: _EncodingRefusal,
    422: _ProofRefusal,
    502: _SuspectRefusal,
}
_BY_TYPE: Final[Mapping[tuple[int, str], type[ServiceError]]] = {
    (400, "key-material"): _KeyMaterialRefusal,
    (422, "timestamp"): _TimestampRefusal,
}
"""Where the problem's type names a narrower error than its status."""


def _refusal(what: str, problem: ProblemDocument) -> ServiceError:
    name = problem.type.rpartition("/")[2]
    kind = _BY_TYPE.get((problem.status, name)) or _BY_STATUS.get(problem.status, ServiceError)
    title = f" {problem.title}" if problem.title else ""
    error = kind(f"the arbiter refused {what} ({problem.status}{title}): {problem.detail}")
    error.problem = problem
    return error


def _problem_of(response: httpx.Response, body: bytes) -> ProblemDocument:
    """The problem document of an error answer, or one made of its status
    and the start of its text when it is none (a proxy's error page)."""
    status = response.status_code
    document: Any = None
    if response.headers.get("content-type", "").startswith(
        ("application/problem+json", "application/json")
    ):
        try:
            document = json.loads(body)
        except ValueError:
            document = None
    if isinstance(document, dict):
        values = {key: document.get(key) for key in ("type", "title", "detail")}
        texts = {key: value if isinstance(value, str) else "" for key, value in values.items()}
        detail = texts["detail"] or texts["title"] or response.reason_phrase
        return ProblemDocument(status, texts["type"], texts["title"], detail[:_MAX_DETAIL])
    text = body[:_MAX_DETAIL].decode("utf-8", "replace").strip()
    return ProblemDocument(status, "", response.reason_phrase, text or response.reason_phrase)


def check_case_id(case_id: str) -> str:
    """``case_id`` if it is a case id (64 lower-case hex digits).

    Raises:
        ProtocolError: it is not (no case has it).
    """
    if not is_hex_digest(case_id):
        raise ProtocolError(f"no case {case_id[:80]!r}: a case id is 64 lower-case hex digits")
    return case_id


@dataclass(frozen=True)
class CaseInfo:
    """A case's public state, as ``GET /cases/{id}`` shows it."""

    case_id: str
    stage: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str | None:
        value = self.facts.get("outcome")
        return value if isinstance(value, str) else None

    @property
    def job(self) -> str | None:
        value = self.facts.get("job")
        return value if isinstance(value, str) else None

    @classmethod
    def from_json(cls, value: Any) -> CaseInfo:
        if not (
            isinstance(value, dict)
            and isinstance(value.get("case"), str)
            and is_hex_digest(value["case"])
            and isinstance(value.get("stage"), str)
        ):
            raise EncodingError("the arbiter's answer is not a case (no case id and stage)")
        return cls(value["case"], value["stage"], dict(value))


@dataclass(frozen=True)
class JobInfo:
    """A query job: its state (queued, running, done, failed), the inputs
    answered of the total, and the error of a failed job."""

    job_id: str
    case_id: str
    state: str
    answered: int
    total: int
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED

    @classmethod
    def from_json(cls, value: Any) -> JobInfo:
        if not isinstance(value, dict):
            raise EncodingError("the arbiter's answer is not a query job")
        job, case, state = value.get("job"), value.get("case"), value.get("state")
        answered, total, error = value.get("answered"), value.get("total"), value.get("error")
        if not (
            isinstance(job, str)
            and _JOB_ID.fullmatch(job)
            and isinstance(case, str)
            and isinstance(state, str)
            and type(answered) is int
            and type(total) is int
            and (error is None or isinstance(error, str))
        ):
            raise EncodingError("the arbiter's answer is not a query job")
        return cls(job, case, state, answered, total, error)


class ArbiterClient:
    """The arbiter service at ``base_url`` (``http`` or ``https``).

    ``keys`` sign the requests that need a party of the case; ``timeout``
    bounds connecting and each wait for the answer's bytes;
    ``max_response`` the bytes of one answer (the largest is a bundle).
    ``client`` is an httpx client to send through (its transport, say);
    the caller then closes it. Use it as a context manager, or call
    :meth:`close`.

    Raises:
        EncodingError: ``base_url`` is not an http(s) URL with a host.
    """

    def __init__(
        self,
        base_url: str,
        *,
        keys: IdentityKeys | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        max_response: int = MAX_BUNDLE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise EncodingError(f"{base_url[:200]!r} is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise EncodingError(
                f"the arbiter's URL must be http:// or https:// with a host, not {base_url[:200]!r}"
            )
        if url.query or url.fragment or url.userinfo:
            raise EncodingError(
                "the arbiter's URL takes no credentials, query or fragment: "
                "give the service's base URL"
            )
        self.base_url = url
        self._prefix = url.path.rstrip("/")
        self.keys = keys
        self.max_response = max_response
        self._sleep = sleep
        self._own = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._last_signed: tuple[tuple[str, bytes, str], str] | None = None

    def close(self) -> None:
        if self._own:
            self._client.close()

    def __enter__(self) -> ArbiterClient:  # noqa: PYI034 (not meant to be subclassed)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the routes ----------------------------------------------------------

    def file_claim(self, claim: bytes) -> CaseInfo:
        """File the signed claim ``claim``; the case it opened (or had opened)."""
        return CaseInfo.from_json(self._json("POST", "/claims", claim, what="the claim"))

    def challenge(self, case_id: str) -> bytes:
        """The case's signed challenge (issued on the first request)."""
        return self._send("POST", self._case(case_id, "/challenge"), b"", signed=True)

    def reveal(self, case_id: str, reveal: bytes) -> CaseInfo:
        """Submit the owner's signed reveal; the case after it."""
        path = self._case(case_id, "/reveal")
        return CaseInfo.from_json(self._json("POST", path, reveal, what="the reveal"))

    def start_query(self, case_id: str) -> JobInfo:
        """Start querying the case's suspect; its job (the same job when started before)."""
        return JobInfo.from_json(
            self._json("POST", self._case(case_id, "/query"), b"", signed=True)
        )

    def job(self, job_id: str) -> JobInfo:
        """A query job's state and progress."""
        if not _JOB_ID.fullmatch(job_id):
            raise ProtocolError(f"no job {job_id[:80]!r}: a job id is hexadecimal")
        return JobInfo.from_json(self._json("GET", f"/jobs/{job_id}", signed=False))

    def wait(
        self,
        job_id: str,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        progress: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """The job once done or failed (a failed job is returned, not raised),
        asking every ``poll`` seconds; ``progress`` sees each answer.

        Raises:
            SecmarkError: still unfinished after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if progress is not None:
                progress(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise SecmarkError(
                    f"query job {job_id} is still {job.state} ({job.answered} of {job.total} "
                    f"answered) after {timeout:g} s; ask again later"
                )
            self._sleep(poll)

    def decide(self, case_id: str) -> bytes:
        """Sign the verdict of a queried case; the signed verdict."""
        return self._send("POST", self._case(case_id, "/decide"), b"", signed=True)

    def case(self, case_id: str) -> CaseInfo:
        """The case's public state."""
        return CaseInfo.from_json(self._json("GET", self._case(case_id), signed=False))

    def verdict(self, case_id: str) -> bytes:
        """The signed verdict of a decided case."""
        return self._send("GET", self._case(case_id, "/verdict"), signed=False)

    def bundle(self, case_id: str) -> bytes:
        """The bundle of a decided case, to verify offline."""
        return self._send("GET", self._case(case_id, "/bundle"), signed=False)

    def read_reveal(self, case_id: str) -> bytes:
        """The case's reveal (a party's signed request)."""
        return self._send("GET", self._case(case_id, "/reveal"), signed=True)

    def transcript(self, case_id: str) -> bytes:
        """The case's signed transcript (signed by a party before the decision)."""
        return self._send("GET", self._case(case_id, "/transcript"), signed=True)

    # -- the exchange ----------------------------------------------------------

    @staticmethod
    def _case(case_id: str, suffix: str = "") -> str:
        return f"/cases/{check_case_id(case_id)}{suffix}"

    def _json(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        signed: bool = True,
        what: str | None = None,
    ) -> Any:
        data = self._send(method, path, body, signed=signed, what=what)
        try:
            return json.loads(data)
        except ValueError:
            raise EncodingError(
                f"the arbiter answered {method} {path} with malformed JSON"
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        signed: bool = True,
        what: str | None = None,
    ) -> bytes:
        """The body of the successful answer to ``method path``.

        Raises:
            ServiceError: the service refused (module docstring).
            SecmarkError: it could not be reached, redirected elsewhere,
                or answered more than ``max_response`` bytes.
        """
        what = what or f"{method} {path}"
        url = self.base_url.copy_with(path=self._prefix + path)
        retried = False
        redirects = 0
        while True:
            response, data = self._exchange(method, url, body, signed=signed)
            status = response.status_code
            if 200 <= status < 300:
                return data
            if 300 <= status < 400 and "location" in response.headers:
                redirects += 1
                url = self._redirect(method, url, response, redirects)
                continue
            problem = _problem_of(response, data)
            if status == 429 and not retried:
                retried = True
                self._sleep(self._retry_after(response, problem, what))
                continue
            if status == 429:
                raise ServiceError(
                    f"the arbiter refused {what} (429): {problem.detail}; try again later"
                )
            raise _refusal(what, problem)

    def _exchange(
        self, method: str, url: httpx.URL, body: bytes, *, signed: bool
    ) -> tuple[httpx.Response, bytes]:
        headers = {"Accept": "application/json, application/problem+json"}
        if body or method == "POST":
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(method, url, content=body, headers=headers)
        if signed and self.keys is not None:
            request.headers["Authorization"] = self._sign(method, request.url.raw_path, body)
        try:
            response = self._client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            raise SecmarkError(f"the arbiter at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as error:
            raise SecmarkError(
                f"cannot reach the arbiter at {self.base_url}: {type(error).__name__}: {error}"
            ) from None
        try:
            data = self._read_bounded(response)
        finally:
            response.close()
        return response, data

    def _read_bounded(self, response: httpx.Response) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_response:
            raise EncodingError(
                f"the arbiter's answer is {int(length)} bytes, over the limit of "
                f"{self.max_response}"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_response:
                    raise EncodingError(
                        f"the arbiter's answer is over the limit of {self.max_response} bytes"
                    )
                chunks.append(chunk)
        except httpx.HTTPError as error:
            raise SecmarkError(
                f"the answer of the arbiter at {self.base_url} broke off: {error}"
            ) from None
        return b"".join(chunks)

    def _sign(self, method: str, target: bytes, body: bytes) -> str:
        """A fresh signature: the service accepts each signature once, and
        signing times have whole seconds, so the same request is not signed
        twice within one second."""
        assert self.keys is not None
        key = (method, target, hashlib.sha256(body).hexdigest())
        now = utc_now()
        if self._last_signed is not None and self._last_signed == (key, format_time(now)):
            self._sleep(1.0 - (time.time() % 1.0) + 0.01)
            now = utc_now()
        self._last_signed = (key, format_time(now))
        return sign_request(self.keys, method, target.decode("ascii"), body, now=now)

    def _redirect(
        self, method: str, url: httpx.URL, response: httpx.Response, count: int
    ) -> httpx.URL:
        try:
            target = url.join(response.headers["location"])
        except (httpx.InvalidURL, ValueError):
            raise SecmarkError("the arbiter redirected to a malformed URL") from None
        same = (target.scheme, target.host, target.port) == (url.scheme, url.host, url.port)
        if not same:
            raise SecmarkError(
                f"the arbiter at {self.base_url} redirected {method} {url.path} to another "
                f"host ({target.scheme}://{target.host}): not followed"
            )
        if method != "GET" and response.status_code not in (307, 308):
            raise SecmarkError(
                f"the arbiter redirected {method} {url.path} with {response.status_code}, "
                "which would change the request: not followed"
            )
        if count > _MAX_REDIRECTS:
            raise SecmarkError(f"the arbiter redirected {method} {url.path} too many times")
        return target

    def _retry_after(self, response: httpx.Response, problem: ProblemDocument, what: str) -> float:
        text = response.headers.get("retry-after", "1").strip()
        seconds = int(text) if text.isdigit() else 1
        if seconds > MAX_RETRY_AFTER:
            raise ServiceError(
                f"the arbiter refused {what} (429): {problem.detail}; retry in {seconds} s"
            )
        return float(max(seconds, 1))
