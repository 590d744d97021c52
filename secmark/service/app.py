"""The arbiter as an HTTP service: disputes through an API (issue 16, first slice).

:func:`create_app` serves one :class:`~secmark.protocol.arbiter.Arbiter`
(its public methods only, whatever store keeps its cases). Submissions are
the signed documents themselves, as ``application/json`` bodies; answers
are JSON, the signed documents, HTML (the judge's page) or Prometheus text.

=====================================  =======================================
``POST /claims``                       file a claim: 201 and the case (its id
                                       is the claim's digest), 200 when filed
                                       before
``POST /cases/{id}/challenge``         the signed challenge (issued once): a
                                       party's signed request
``POST /cases/{id}/reveal``            the owner's reveal: 200; the same again
                                       200, another 409
``POST /cases/{id}/query``             202 and the query job (one per case):
                                       a party's signed request
``GET /jobs/{id}``                     a job's state and progress
``POST /cases/{id}/decide``            the signed verdict (issued once): a
                                       party's signed request
``GET /cases/{id}``                    public state: stage, ids, outcome
``GET /cases/{id}/verdict``            the signed verdict of a decided case
``GET /cases/{id}/bundle``             its bundle, to verify offline
``GET /cases/{id}/page``               the judge's page (``secmark report``)
``GET /cases/{id}/reveal``             the reveal: a party's signed request
``GET /cases/{id}/transcript``         the transcript: public once decided,
                                       before that a party's signed request
``GET /commitments/{id}/cases``        the arbiter's cases on a commitment
``GET /metrics``                       Prometheus text
``GET /openapi.json``                  the OpenAPI schema
=====================================  =======================================

Signed requests (:mod:`secmark.service.auth`): the steps that cost the
arbiter work or decide (challenge, query, decide) and the reads of a case's
private parts need a request signed by a party of the case, the owner of
the claim's commitment or the arbiter; claims and reveals are signed
documents themselves. The service's tables live in the arbiter's database
when its cases are kept in one (:meth:`ServiceDatabase.for_arbiter`), and
the cases it lists and counts are the arbiter's store's, CLI-filed ones
included. Every error is an RFC 9457
problem document (:mod:`secmark.service.problems`), a body over
``limits.max_body`` is refused (413) before more of it is read, each caller
has a request rate (429 with ``Retry-After``), and every request and
transition goes to the audit log (:mod:`secmark.service.audit`). Steps that
change a case run one at a time per case (one service process per arbiter
folder), so a step submitted twice at once happens once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secmark import __version__
from secmark.encoding import format_time, is_hex_digest, utc_now
from secmark.errors import ProtocolError, SecmarkError
from secmark.protocol.arbiter import Arbiter
from secmark.protocol.bundle import examine_bundle
from secmark.protocol.case import STAGES, Case
from secmark.report import render_exhibit
from secmark.service.audit import AuditLog
from secmark.service.auth import RequestVerifier
from secmark.service.db import ServiceDatabase
from secmark.service.decoys import DecoyPools
from secmark.service.jobs import JobRunner
from secmark.service.limits import RateLimiter, ServiceLimits
from secmark.service.metrics import CONTENT_TYPE, RequestCounter, render_metrics
from secmark.service.problems import Problem, internal_problem, problem_for, problem_response
from secmark.service.suspects import ReferenceSuspects, SuspectFactory

__all__ = ["create_app"]

_LOG = logging.getLogger("secmark.service")
_T = TypeVar("_T")

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_CASE_PATH = re.compile(r"/cases/([0-9a-f]{64})(?:/|$)")
_DOCUMENT: Final = "application/json"
_SIGNED_BODY: Final = {
    "requestBody": {
        "required": True,
        "description": "the signed document itself (a DSSE envelope), as secmark writes it",
        "content": {_DOCUMENT: {"schema": {"type": "object"}}},
    }
}


def _signature_header(required: bool) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "Authorization",
                "in": "header",
                "required": required,
                "description": "a party's signature of the request: 'Secmark-Signature "
                "keyid=<hex>, time=<RFC 3339>, signature=<base64url>' (secmark.service.auth)",
                "schema": {"type": "string"},
            }
        ]
    }


_PARTY: Final = _signature_header(True)
"""A route that needs a party's signed request."""
_PARTY_BEFORE_DECIDED: Final = _signature_header(False)
"""A route that needs one until the case is decided."""

_PUBLIC_FACTS: Final[tuple[str, ...]] = (
    "claim_id",
    "commitment_id",
    "owner",
    "suspect",
    "challenge_id",
    "prior_challenges",
    "verdict_id",
    "outcome",
)
"""What ``GET /cases/{id}`` shows: not the test figures before the decision."""


class _Service:
    """What the routes share: the arbiter, the service's database, its job
    runner and limits, and one lock per case."""

    def __init__(
        self,
        arbiter: Arbiter,
        suspects: SuspectFactory,
        decoys: DecoyPools,
        limits: ServiceLimits,
    ) -> None:
        self.arbiter = arbiter
        self.limits = limits
        self.db = ServiceDatabase.for_arbiter(arbiter)
        self.audit = AuditLog(self.db)
        self.jobs = JobRunner(
            arbiter, self.db, self.audit, suspects, decoys, workers=limits.query_workers
        )
        self.verifier = RequestVerifier(remember=self.db.accept_signature)
        self.rates = RateLimiter(limits.rate, limits.burst)
        self.requests = RequestCounter()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, case_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(case_id, threading.Lock())

    def find(self, case_id: str) -> Case:
        """The case ``case_id`` names (64 lower-case hex digits).

        Raises:
            Problem: 404 for an id of no case (or no id at all).
            SecmarkError: the case's state is damaged.
        """
        if not is_hex_digest(case_id):
            raise Problem(
                404, "unknown-case", "No such case", "a case id is 64 lower-case hex digits"
            )
        try:
            return self.arbiter.find_case(case_id)
        except ProtocolError:
            # For a whole id, find_case's only refusal is "no case has it".
            raise Problem(404, "unknown-case", "No such case", f"no case {case_id}") from None

    def party(self, request: Request, body: bytes, case: Case) -> str:
        """The key id of the party of ``case`` that signed ``request``; its
        own rate is then spent too.

        Raises:
            AuthenticationError, SignatureError: see :class:`RequestVerifier`.
            Problem: 429, the signer's rate is spent.
        """
        owner = self.arbiter.commitment_of(case).document.owner
        parties = {
            owner.key_id: owner.signing_key,
            self.arbiter.keys.key_id: self.arbiter.keys.public_keys.signing_key,
        }
        scope = request.scope
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        key_id = self.verifier.verify(
            request.headers.get("authorization"), request.method, target, body, parties
        )
        request.state.identity = key_id
        retry = self.rates.take("key:" + key_id)
        if retry is not None:
            raise _too_many(retry)
        return key_id

    def _cases(self) -> Iterator[Case | None]:
        """Every case of the arbiter's store (None: one whose state does not load)."""
        for name in self.arbiter.store.case_names():
            try:
                yield self.arbiter.case(name)
            except SecmarkError:
                yield None

    def case_counts(self) -> dict[str, int]:
        """The arbiter's cases by stage (``damaged``: a state that does not load)."""
        counts = dict.fromkeys(STAGES, 0)
        for case in self._cases():
            stage = "damaged" if case is None else case.stage
            counts[stage] = counts.get(stage, 0) + 1
        return counts

    def commitment_cases(self, commitment_id: str) -> list[str]:
        """The ids of the arbiter's cases on ``commitment_id``: those filed
        elsewhere (the CLI) first, by id, then those filed here in filing order."""
        filed = self.db.filed_times()
        names = [
            case.name
            for case in self._cases()
            if case is not None and case.record.get("commitment_id") == commitment_id
        ]
        return sorted(names, key=lambda name: (filed.get(name, ""), name))


def _too_many(retry: int) -> Problem:
    return Problem(
        429,
        "rate-limited",
        "Too many requests",
        f"this caller's request rate is spent; retry in {retry} s",
        {"Retry-After": str(retry)},
    )


def _public(case: Case) -> dict[str, Any]:
    facts = {key: case.record[key] for key in _PUBLIC_FACTS if key in case.record}
    return {"case": case.name, "stage": case.stage, **facts}


def _document(data: bytes, status: int = 200) -> Response:
    return Response(data, status, media_type=_DOCUMENT)


def _require_decided(case: Case, what: str) -> None:
    if not case.at_least("decided"):
        raise ProtocolError(f"case {case.name} is at stage {case.stage!r}: it has no {what} yet")


class _Gate:
    """The outermost layer: per-address rate, body size, request counts,
    the audit row of every request, and a problem for any failure that
    escaped the routes (logged here, never shown to the client)."""

    def __init__(self, app: ASGIApp, service: _Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        client = scope.get("client")
        state = scope.setdefault("state", {})
        state["identity"] = "addr:" + (client[0] if client else "unknown")
        match = _CASE_PATH.match(scope["path"])
        state["case_id"] = match[1] if match else None
        status = 500
        started = False

        async def send_counted(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        limit = service.limits.max_body
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        try:
            retry = service.rates.take(state["identity"])
            length = _content_length(scope)
            if retry is not None:
                await problem_response(_too_many(retry))(scope, receive, send_counted)
            elif length is not None and length > limit:
                await problem_response(_too_large(limit))(scope, receive, send_counted)
            else:
                await self.app(scope, receive_limited, send_counted)
        except Exception:  # noqa: BLE001 - logged, answered as a problem, never a traceback
            if not started:
                _LOG.exception("request %s %s failed", scope["method"], scope["path"])
                await problem_response(internal_problem())(scope, receive, send_counted)
            # Else the route's handler logged it and answered already.
        finally:
            service.requests.add(status)
            try:
                await run_in_threadpool(
                    service.audit.request,
                    scope["method"],
                    scope["path"],
                    status,
                    state.get("case_id"),
                    state.get("identity"),
                )
            except Exception:  # noqa: BLE001 - answered already: log it, serve on
                _LOG.exception("cannot audit %s %s", scope["method"], scope["path"])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> Problem:
    return Problem(
        413, "too-large", "Request body too large", f"a request body is at most {limit} bytes"
    )


DEFAULT_LIMITS: Final = ServiceLimits()


def create_app(
    arbiter: Arbiter,
    *,
    suspects: SuspectFactory | None = None,
    decoys: DecoyPools | None = None,
    limits: ServiceLimits = DEFAULT_LIMITS,
) -> FastAPI:
    """The service of ``arbiter`` (module docstring); its tables in the
    arbiter's database, or in the folder's SQLite file
    (:meth:`~secmark.service.db.ServiceDatabase.for_arbiter`).

    ``suspects`` builds the suspect a claim names
    (:class:`~secmark.service.suspects.ReferenceSuspects`; default: no
    defaults, so only ``oip:`` suspects with the adapter's own settings).
    ``decoys`` holds the items decoys of pool and overlay commitments are
    drawn from (:class:`~secmark.service.decoys.DecoyPools`; default none,
    so such commitments cannot be queried).
    Query jobs left queued or running resume when the app starts (its
    lifespan) and stop, to resume later, when it shuts down.
    """
    service = _Service(
        arbiter,
        suspects or ReferenceSuspects(base=arbiter.folder),
        decoys or DecoyPools(),
        limits,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.jobs.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.jobs.stop)
            service.db.close()

    app = FastAPI(
        title="secmark arbiter",
        version=__version__,
        description="Disputes over model ownership as an API: claims, challenges, reveals, "
        "query jobs, verdicts and their bundles. Errors are RFC 9457 problem documents.",
        lifespan=lifespan,
    )

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        return problem_response(error, request.url.path)

    async def on_secmark(request: Request, error: Exception) -> Response:
        assert isinstance(error, SecmarkError)
        return problem_response(problem_for(error), request.url.path)

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        problem = Problem(
            error.status_code, f"http-{error.status_code}", str(error.detail), str(error.detail)
        )
        problem.headers = dict(error.headers or {})
        return problem_response(problem, request.url.path)

    async def on_invalid(request: Request, error: Exception) -> Response:
        return problem_response(
            Problem(
                400, "invalid-request", "Invalid request", "the request's parameters are invalid"
            ),
            request.url.path,
        )

    async def on_internal(request: Request, error: Exception) -> Response:
        _LOG.error("request %s %s failed", request.method, request.url.path, exc_info=error)
        return problem_response(internal_problem(), request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(SecmarkError, on_secmark)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_internal)

    async def work(function: Callable[..., _T], *args: Any) -> _T:
        return await run_in_threadpool(function, *args)

    # -- claims and steps -------------------------------------------------

    @app.post("/claims", status_code=201, openapi_extra=_SIGNED_BODY)
    async def post_claim(request: Request) -> Response:
        """File a claim (the signed claim document): 201, or 200 when filed before."""
        data = await request.body()

        def file() -> tuple[Case, bool]:
            case = arbiter.file_claim(data)
            new = service.db.index_case(case.name, case.record["commitment_id"], _now())
            if new:
                service.audit.transition(case.name, "claim filed", case.record["owner"])
            return case, new

        case, new = await work(file)
        request.state.case_id = case.name
        return JSONResponse(
            _public(case), 201 if new else 200, headers={"Location": f"/cases/{case.name}"}
        )

    @app.post("/cases/{case_id}/challenge", openapi_extra=_PARTY)
    async def post_challenge(case_id: str, request: Request) -> Response:
        """The case's signed challenge: issued on the first request, the same
        after. A request signed by a party of the case."""
        body = await request.body()

        def challenge() -> bytes:
            case = service.find(case_id)
            service.party(request, body, case)
            with service.lock(case_id):
                case = service.find(case_id)
                if case.stage != "claimed":
                    return case.read("challenge.json")
                data = arbiter.challenge(case)
                service.audit.transition(case.name, "challenged")
                return data

        return _document(await work(challenge))

    @app.post("/cases/{case_id}/reveal", openapi_extra=_SIGNED_BODY)
    async def post_reveal(case_id: str, request: Request) -> Response:
        """The owner's reveal: 200; the same reveal again 200, another 409."""
        data = await request.body()

        def reveal() -> dict[str, Any]:
            with service.lock(case_id):
                case = service.find(case_id)
                digest = hashlib.sha256(data).hexdigest()
                if case.at_least("revealed"):
                    if hashlib.sha256(case.read("reveal.json")).hexdigest() != digest:
                        raise ProtocolError(f"case {case.name} has another reveal already")
                    return {**_public(case), "reveal": digest}
                arbiter.receive_reveal(case, data)
                service.audit.transition(case.name, "revealed", case.record["owner"])
                return {**_public(arbiter.case(case.name)), "reveal": digest}

        return JSONResponse(await work(reveal))

    @app.post("/cases/{case_id}/query", status_code=202, openapi_extra=_PARTY)
    async def post_query(case_id: str, request: Request) -> Response:
        """Start querying the case's suspect in the background: 202 and the
        job (the case's active job if there is one; the finished one once
        the case is queried). A request signed by a party of the case."""
        body = await request.body()

        def query() -> dict[str, Any]:
            service.party(request, body, service.find(case_id))
            with service.lock(case_id):
                case = service.find(case_id)
                if case.at_least("queried"):
                    done = service.db.latest_job(case.name)
                    if done is None:
                        raise ProtocolError(f"case {case.name} was queried outside this service")
                    return done.public()
                case.require("revealed", "querying the suspect")
                job, _ = service.jobs.submit(case)
                return job.public()

        job = await work(query)
        return JSONResponse(job, 202, headers={"Location": f"/jobs/{job['job']}"})

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> Response:
        """A query job: state (queued, running, done, failed), inputs
        answered of the total, and the error of a failed job."""
        job = await work(service.db.job, job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise Problem(404, "unknown-job", "No such job", f"no job {job_id[:64]}")
        return JSONResponse(job.public())

    @app.post("/cases/{case_id}/decide", openapi_extra=_PARTY)
    async def post_decide(case_id: str, request: Request) -> Response:
        """Sign the verdict of a queried case (the same verdict once decided).
        A request signed by a party of the case."""
        body = await request.body()

        def decide() -> bytes:
            service.party(request, body, service.find(case_id))
            with service.lock(case_id):
                case = service.find(case_id)
                if case.at_least("decided"):
                    return case.read("verdict.json")
                verdict = arbiter.decide(case)
                outcome = arbiter.case(case.name).record["outcome"]
                service.audit.transition(case.name, f"decided: {outcome}")
                return verdict

        return _document(await work(decide))

    # -- reading ------------------------------------------------------------

    @app.get("/cases/{case_id}")
    async def get_case(case_id: str) -> Response:
        """The case's public state: stage, ids, and the outcome once decided."""

        def read() -> dict[str, Any]:
            case = service.find(case_id)
            job = service.db.latest_job(case.name)
            return {**_public(case), "job": None if job is None else job.job_id}

        return JSONResponse(await work(read))

    def decided_document(name: str, what: str) -> Callable[[str], Awaitable[Response]]:
        async def read(case_id: str) -> Response:
            def load() -> bytes:
                case = service.find(case_id)
                _require_decided(case, what)
                return case.read(name)

            return _document(await work(load))

        return read

    app.get("/cases/{case_id}/verdict", summary="The signed verdict of a decided case")(
        decided_document("verdict.json", "verdict")
    )
    app.get("/cases/{case_id}/bundle", summary="The bundle of a decided case")(
        decided_document("bundle.json", "bundle")
    )

    @app.get("/cases/{case_id}/page", response_class=HTMLResponse)
    async def get_page(case_id: str) -> Response:
        """The judge's page of a decided case: ``secmark report`` of its
        bundle, checked against this arbiter's trusted TSA roots and pinned
        to its key."""

        def render() -> str:
            case = service.find(case_id)
            _require_decided(case, "verdict page")
            report = examine_bundle(
                case.read("bundle.json"), arbiter.trust, arbiter_key_id=arbiter.keys.key_id
            )
            return render_exhibit(
                report,
                generator=f"secmark {__version__}",
                bundle_href=f"/cases/{case.name}/bundle",
                history=service.audit.history(case.name),
            )

        return HTMLResponse(await work(render))

    @app.get("/cases/{case_id}/reveal", openapi_extra=_PARTY)
    async def get_reveal(case_id: str, request: Request) -> Response:
        """The case's reveal, to a party of the case (a signed request)."""
        body = await request.body()

        def read() -> bytes:
            case = service.find(case_id)
            service.party(request, body, case)
            if not case.at_least("revealed"):
                raise ProtocolError(f"case {case.name} has no reveal yet")
            return case.read("reveal.json")

        return _document(await work(read))

    @app.get("/cases/{case_id}/transcript", openapi_extra=_PARTY_BEFORE_DECIDED)
    async def get_transcript(case_id: str, request: Request) -> Response:
        """The signed transcript: public once the case is decided (the
        bundle holds it), before that to a party of the case only."""
        body = await request.body()

        def read() -> bytes:
            case = service.find(case_id)
            if not case.at_least("decided"):
                service.party(request, body, case)
            if not case.at_least("queried"):
                raise ProtocolError(f"case {case.name} has no transcript yet")
            return case.read("transcript.json")

        return _document(await work(read))

    @app.get("/commitments/{commitment_id}/cases")
    async def get_commitment_cases(commitment_id: str) -> Response:
        """The ids of the arbiter's cases on a commitment (those filed with
        the CLI first, then those filed here, in filing order)."""
        if not is_hex_digest(commitment_id):
            raise Problem(
                400, "invalid-id", "Invalid id", "a commitment id is 64 lower-case hex digits"
            )
        cases = await work(service.commitment_cases, commitment_id)
        return JSONResponse({"commitment": commitment_id, "cases": cases})

    @app.get("/metrics", response_class=Response)
    async def get_metrics() -> Response:
        """Cases by stage, query jobs by state, requests and errors by status."""

        def collect() -> str:
            return render_metrics(
                service.case_counts(), service.db.job_counts(), service.requests.snapshot()
            )

        return Response(await work(collect), media_type=CONTENT_TYPE)

    app.state.service = service
    # Inside Starlette's error middleware, outside the routes' handlers: any
    # failure that escapes a route is answered with a problem, counted and
    # audited here (on_internal answers only a failure of the gate itself).
    app.add_middleware(_Gate, service=service)
    return app


def _now() -> str:
    return format_time(utc_now())
