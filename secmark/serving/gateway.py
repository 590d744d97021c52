"""The marking gateway: an ASGI application in front of an Open Inference Protocol server.

It serves one model of an OIP v2 REST server (MLServer, KServe, Triton) and
marks its answers under a serving policy:

``POST /v2/models/{model}/infer``
    1. The client is its API key (``Authorization: Bearer KEY``); without
       one: 401. The log keeps the key's account digest, never the key.
    2. The body (at most ``max_body_bytes``: else 413) is strict JSON with
       exactly one input tensor of the policy's datatype (FP32, FP64, INT64,
       UINT8) and shape ``[N, *input shape]``, 1 <= N <= ``max_batch``, its
       ``data`` flat or nested, numbers only. Each input is canonicalised
       (:func:`~secmark.serving.marking.canonical_input`); any refusal is a
       400 naming the input, and nothing reaches the model.
    3. The request goes upstream with the *canonical* values in place of
       the client's (its other fields kept), so the model answers exactly
       the input that is logged. If it names ``outputs``, they may only be
       the gateway's answer output.
    4. The model's answer to each input is read from the configured output:
       class indices (``[N]`` or ``[N, 1]``) or scores (``[N, K]``, the first
       maximum). Every input is marked, the logged ones are appended to the
       log in one append (in a worker thread), and only once it returned is
       the response sent: the answer output rewritten (served classes, or
       scores whose first place is the served class), every other output
       dropped, since any of them could reveal the model's own answer.
    5. An upstream failure (unreachable, past the deadline, non-2xx, not
       JSON, wrong shapes or types, a NaN) is a 502, a log failure a 503:
       the client never gets an unmarked answer to an input to be marked.

``GET /v2/health/live``, ``/v2/health/ready``, ``/v2/models/{model}`` and
``/v2/models/{model}/ready`` are passed through; anything else is a 404.
Every error is RFC 9457 ``application/problem+json`` and never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from secmark.crypto.keys import IdentityKeys
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.models.http import MAX_RESPONSE_BYTES, load_json
from secmark.serving.marking import Marker, Marking, decode_inputs
from secmark.serving.wrapper import (
    DEFAULT_MAX_BATCH,
    BatchMarker,
    EntrySink,
    ModelAnswerError,
    canonical_rows,
    class_answers,
    score_answers,
    served_scores,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TIMEOUT",
    "GatewayConfig",
    "create_gateway",
]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body read: a batch of a few hundred images fits; more
would let one client hold the gateway's memory."""

DEFAULT_TIMEOUT = 10.0
"""Seconds the upstream exchange of one request may take, all included."""

_DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "uint8": "UINT8"}
_CLASS_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
_SCORE_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
_PROBLEM = "application/problem+json"
_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
# RFC 6750 2.1: "Bearer" and a b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")
_MODEL_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
_MAX_PASSTHROUGH_BYTES = 1024 * 1024
# Batches up to this size are marked on the event loop (about 0.2 ms of VRF
# work per input): handing them to a worker thread costs more, in wake-ups,
# on a busy machine. Only a database commit always goes to a thread.
_INLINE_ROWS = 4

logger = logging.getLogger("secmark.gateway")


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway reaches its model and reads its answers.

    ``upstream``: the OIP server's base URL (``http://host:port``, with any
    path prefix); ``model``: the one model name served; ``output``: the
    output holding the answers, read as ``answer`` (``classes``: class
    indices; ``scores``: one score per class). ``timeout``: seconds for the
    whole upstream exchange of one request. ``checkpoint_seconds``: if set,
    the log signs a checkpoint that often, and once more at shutdown.
    """

    upstream: str
    model: str
    output: str
    answer: Literal["classes", "scores"]
    timeout: float = DEFAULT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_batch: int = DEFAULT_MAX_BATCH
    checkpoint_seconds: float | None = None
    timestamp_authorities: tuple[str, ...] = ()
    """TSA URLs that timestamp each scheduled checkpoint (none: the operator
    timestamps checkpoints himself, ``secmark timestamp``)."""

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise EncodingError("the upstream must be an http:// or https:// URL")
        if not self.model or not set(self.model) <= _MODEL_NAME_CHARS:
            raise EncodingError("a model name is letters, digits, '-', '.' and '_'")
        if not self.output:
            raise EncodingError("the answer output needs a name")
        if self.answer not in ("classes", "scores"):
            raise EncodingError(f"answers are 'classes' or 'scores', not {self.answer!r}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise EncodingError("the upstream timeout must be a positive number of seconds")
        if min(self.max_body_bytes, self.max_response_bytes, self.max_batch) < 1:
            raise EncodingError("the size and batch limits must be positive")
        if self.checkpoint_seconds is not None and not (
            math.isfinite(self.checkpoint_seconds) and self.checkpoint_seconds > 0
        ):
            raise EncodingError("the checkpoint interval must be a positive number of seconds")


class _Refusal(Exception):
    """Ends a request with a problem response."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _problem(status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": _PHRASES[status], "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(body), status_code=status, media_type=_PROBLEM, headers=headers)


def _api_key(request: Request) -> str:
    match = _BEARER.fullmatch(request.headers.get("authorization", ""))
    if match is None:
        raise _Refusal(401, "every query needs an API key: send 'Authorization: Bearer KEY'")
    return match.group(1)


def _numbers(data: Any, shape: Sequence[int], what: str) -> list[int | float]:
    """The values of ``data`` (flat, or nested as ``shape``), all JSON numbers."""
    total = math.prod(shape)
    if not isinstance(data, list):
        raise EncodingError(f"{what} data must be a JSON array")
    level: list[Any] = data
    if len(data) != total or any(isinstance(value, list) for value in data):
        level = [data]
        for size in shape:
            nested: list[Any] = []
            for value in level:
                if not isinstance(value, list) or len(value) != size:
                    raise EncodingError(
                        f"{what} data is neither {total} numbers nor nested as {list(shape)}"
                    )
                nested.extend(value)
            level = nested
    # type(): JSON true is a Python bool, which is an int.
    if not all(type(value) is int or type(value) is float for value in level):
        raise EncodingError(f"{what} data must hold numbers only")
    return level


def _shape(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise EncodingError(f"{what} shape must be a list of non-negative integers")
    return value


def _array(values: list[int | float], shape: Sequence[int], what: str) -> np.ndarray[Any, Any]:
    try:
        return np.asarray(values).reshape(shape)
    except (ValueError, TypeError, OverflowError):
        raise EncodingError(f"{what} holds numbers out of range") from None


class _Gateway:
    def __init__(
        self,
        marking: BatchMarker,
        config: GatewayConfig,
        operator_keys: IdentityKeys | None,
    ) -> None:
        self._marking = marking
        self._config = config
        self._operator_keys = operator_keys
        self._client: httpx.AsyncClient | None = None
        policy = marking.marker.policy
        self._encoding = policy.input
        self._datatype = _DATATYPES[policy.input.dtype]
        self._num_classes = policy.labels.num_classes
        # Parsed once: httpx parses a path against its base URL at every request.
        self._infer_url = httpx.URL(f"{config.upstream.rstrip('/')}/v2/models/{config.model}/infer")

    # --- lifespan ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        config = self._config
        async with httpx.AsyncClient(
            base_url=config.upstream,
            # The upstream is reached directly, with nothing but the query.
            trust_env=False,
            timeout=config.timeout,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        ) as client:
            self._client = client
            checkpoints = None
            if config.checkpoint_seconds is not None and self._operator_keys is not None:
                checkpoints = asyncio.create_task(self._checkpoints(config.checkpoint_seconds))
            try:
                yield
            finally:
                self._client = None
                if checkpoints is not None:
                    checkpoints.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await checkpoints
                    # Entries logged since the last one are covered too.
                    await self._checkpoint()

    async def _checkpoints(self, seconds: float) -> None:
        while True:
            await anyio.sleep(seconds)
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        assert self._operator_keys is not None
        try:
            await run_in_threadpool(
                self._marking.checkpoint,
                self._operator_keys,
                self._config.timestamp_authorities,
            )
        except Exception as error:  # noqa: BLE001 - the next interval tries again
            logger.error("cannot sign or timestamp a log checkpoint: %s", error)

    # --- inference -----------------------------------------------------------

    async def infer(self, request: Request) -> Response:
        try:
            self._check_model(request)
            client = self._account(request)
            body = await self._read_body(request)
            document, rows = self._parse_request(body)
            answered = await self._upstream_json(self._infer_url, document)
            read = self._read_answers(answered, len(rows))
            if len(rows) > _INLINE_ROWS:
                content = await run_in_threadpool(self._serve, client, rows, answered, read)
            else:
                markings, content = self._served(rows, answered, read)
                if any(marking.logged for marking in markings):
                    await run_in_threadpool(self._log, client, rows, markings)
        except _Refusal as refusal:
            return _problem(refusal.status, refusal.detail)
        return Response(content, media_type="application/json")

    def _check_model(self, request: Request) -> None:
        if request.path_params["name"] != self._config.model:
            raise _Refusal(404, "no such model behind this gateway")

    def _account(self, request: Request) -> str:
        try:
            return self._marking.account(_api_key(request))
        except (EncodingError, ProtocolError):
            raise _Refusal(401, "the API key is not valid") from None

    async def _read_body(self, request: Request) -> bytes:
        limit = self._config.max_body_bytes
        media_type = request.headers.get("content-type", "application/json")
        if media_type.partition(";")[0].strip().lower() != "application/json":
            raise _Refusal(415, "the request body must be application/json")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Refusal(413, f"the request body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refusal(413, f"the request body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _parse_request(self, body: bytes) -> tuple[dict[str, Any], list[bytes]]:
        """The request to forward (canonical values in place of the client's)
        and the canonical bytes of each input."""
        try:
            document = load_json(body, "the request", finite=True)
            if not isinstance(document, dict):
                raise EncodingError("the request must be a JSON object")
            inputs = document.get("inputs")
            if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
                raise EncodingError("the request must have exactly one input tensor")
            tensor = inputs[0]
            if not isinstance(tensor.get("name"), str):
                raise EncodingError("the input tensor needs a name")
            if tensor.get("datatype") != self._datatype:
                raise EncodingError(
                    f"the input datatype must be {self._datatype}, not {tensor.get('datatype')!r}"
                )
            shape = _shape(tensor.get("shape"), "the input")
            expected = list(self._encoding.shape)
            if len(shape) != len(expected) + 1 or shape[1:] != expected:
                raise EncodingError(
                    f"the input shape must be [N, {', '.join(map(str, expected))}], not {shape}"
                )
            if not 1 <= shape[0] <= self._config.max_batch:
                raise EncodingError(
                    f"a request holds 1 to {self._config.max_batch} inputs, not {shape[0]}"
                )
            self._check_outputs(document.get("outputs"))
            values = _numbers(tensor.get("data"), shape, "the input")
            marker = self._marking.marker
            rows = canonical_rows(
                _array(values, shape, "the input"), marker, max_batch=self._config.max_batch
            )
        except (ValueError, RecursionError) as error:  # EncodingError is a ValueError
            raise _Refusal(400, str(error)) from None
        forwarded = decode_inputs(rows, marker.policy.input).reshape(-1).tolist()
        document["inputs"] = [{**tensor, "data": forwarded}]
        return document, rows

    def _check_outputs(self, outputs: Any) -> None:
        if outputs is None:
            return
        if (
            not isinstance(outputs, list)
            or len(outputs) > 1
            or not all(
                isinstance(o, dict) and o.get("name") == self._config.output for o in outputs
            )
        ):
            raise EncodingError(f"this gateway answers the output {self._config.output!r} only")

    async def _upstream_json(self, url: httpx.URL, document: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = await self._exchange("POST", url, json.dumps(document).encode())
        if not 200 <= status < 300:
            raise _Refusal(502, f"the model server answered HTTP {status}")
        try:
            answered = load_json(body, "the model server's response", finite=True)
        except ValueError as error:
            raise _Refusal(502, str(error)) from None
        if not isinstance(answered, dict):
            raise _Refusal(502, "the model server's response is not a JSON object")
        return answered

    async def _exchange(
        self,
        method: str,
        url: httpx.URL | str,
        content: bytes | None = None,
        *,
        limit: int | None = None,
    ) -> tuple[int, bytes, str]:
        """Status, body and media type of the upstream's answer, within the
        deadline and the size limit; a failure is a 502."""
        client = self._client
        if client is None:
            raise _Refusal(503, "the gateway is not running")
        limit = self._config.max_response_bytes if limit is None else limit
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            with anyio.fail_after(self._config.timeout):
                async with client.stream(method, url, content=content, headers=headers) as reply:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in reply.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise _Refusal(502, "the model server's response is too large")
                        chunks.append(chunk)
                    media_type = reply.headers.get("content-type", "application/json")
                    return reply.status_code, b"".join(chunks), media_type
        except TimeoutError:
            raise _Refusal(502, "the model server did not answer in time") from None
        except httpx.HTTPError as error:
            logger.warning("upstream %s request failed: %s", method, type(error).__name__)
            raise _Refusal(502, "the model server cannot be reached") from None

    def _read_answers(
        self, answered: dict[str, Any], rows: int
    ) -> tuple[int, np.ndarray[Any, Any], list[int]]:
        """The index of the answer output in the response, its values, and
        the model's answer to each input."""
        try:
            outputs = answered.get("outputs")
            if not isinstance(outputs, list):
                raise ModelAnswerError("the response has no outputs")
            found = [
                index
                for index, output in enumerate(outputs)
                if isinstance(output, dict) and output.get("name") == self._config.output
            ]
            if len(found) != 1:
                raise ModelAnswerError(f"the response has no single output {self._config.output!r}")
            output = outputs[found[0]]
            datatype = output.get("datatype")
            what = "the answer output"
            shape = _shape(output.get("shape"), what)
            values = _array(_numbers(output.get("data"), shape, what), shape, what)
            if self._config.answer == "classes":
                if datatype not in _CLASS_DATATYPES:
                    raise ModelAnswerError(f"class answers of datatype {datatype!r}")
                answers = class_answers(values, rows, self._num_classes)
            else:
                if datatype not in _SCORE_DATATYPES:
                    raise ModelAnswerError(f"score answers of datatype {datatype!r}")
                answers = score_answers(values, rows, self._num_classes)
        except (SecmarkError, ValueError) as error:
            raise _Refusal(502, f"the model server's answer is unusable: {error}") from None
        return found[0], values, answers

    def _served(
        self,
        rows: list[bytes],
        answered: dict[str, Any],
        read: tuple[int, np.ndarray[Any, Any], list[int]],
    ) -> tuple[list[Marking], bytes]:
        """Mark the rows and return the markings and the response body (the
        answer output rewritten, every other output dropped). Blocking: one
        VRF evaluation per row."""
        index, values, answers = read
        try:
            markings = self._marking.mark(rows, answers)
            if self._config.answer == "classes":
                served: list[Any] = [marking.served_answer for marking in markings]
            else:
                served = served_scores(values, markings).reshape(-1).tolist()
        except SecmarkError as error:
            raise _Refusal(502, f"the model server's answer is unusable: {error}") from None
        response = {key: value for key, value in answered.items() if key != "outputs"}
        response["outputs"] = [{**answered["outputs"][index], "data": served}]
        return markings, json.dumps(response).encode()

    def _log(self, client: str, rows: list[bytes], markings: list[Marking]) -> None:
        """Log the logged rows. Blocking: a database commit."""
        try:
            self._marking.log(client, rows, markings)
        except Exception as error:  # noqa: BLE001 - whatever the database raises, serve nothing
            logger.error("cannot log %d queries: %s", len(rows), error)
            raise _Refusal(503, "the query log cannot record this query; try again") from None

    def _serve(
        self,
        client: str,
        rows: list[bytes],
        answered: dict[str, Any],
        read: tuple[int, np.ndarray[Any, Any], list[int]],
    ) -> bytes:
        """Mark, log and return the response body, in a worker thread."""
        markings, content = self._served(rows, answered, read)
        self._log(client, rows, markings)
        return content

    # --- passthrough -----------------------------------------------------------

    async def passthrough(self, request: Request) -> Response:
        try:
            if "name" in request.path_params:
                self._check_model(request)
            status, body, media_type = await self._exchange(
                "GET", request.url.path, limit=_MAX_PASSTHROUGH_BYTES
            )
        except _Refusal as refusal:
            return _problem(refusal.status, refusal.detail)
        return Response(body, status_code=status, media_type=media_type)


async def _http_error(_request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    if status not in _PHRASES:
        status = 500
    details = {404: "no such resource", 405: "method not allowed here"}
    return _problem(status, details.get(status, "the gateway failed; see its log"))


async def _internal_error(_request: Request, error: Exception) -> Response:
    logger.error("internal error: %s: %s", type(error).__name__, error)
    return _problem(500, "the gateway failed; see its log")


def create_gateway(
    marker: Marker,
    sink: EntrySink,
    config: GatewayConfig,
    *,
    operator_keys: IdentityKeys | None = None,
) -> Starlette:
    """The gateway as an ASGI application (module docstring).

    ``sink`` receives the logged queries (``QueryLog``); with
    ``config.checkpoint_seconds`` and ``operator_keys`` (the operator's keys,
    whose VRF key is the marker's), a sink that signs checkpoints
    (:class:`~secmark.serving.wrapper.CheckpointSink`) signs one that often.
    Its lifespan opens and closes the one HTTP client to the upstream: run
    it under a server that runs lifespans (uvicorn does).
    """
    gateway = _Gateway(BatchMarker(marker, sink), config, operator_keys)
    return Starlette(
        routes=[
            Route("/v2/models/{name}/infer", gateway.infer, methods=["POST"]),
            Route("/v2/health/live", gateway.passthrough, methods=["GET"]),
            Route("/v2/health/ready", gateway.passthrough, methods=["GET"]),
            Route("/v2/models/{name}", gateway.passthrough, methods=["GET"]),
            Route("/v2/models/{name}/ready", gateway.passthrough, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=gateway.lifespan,
    )
