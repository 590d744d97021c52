"""A suspect behind an Open Inference Protocol endpoint (KServe v2 REST).

The Open Inference Protocol is what KServe, MLServer and Triton serve::

    POST {base}/v2/models/{name}[/versions/{version}]/infer
    {"inputs": [{"name": ..., "shape": [N, ...], "datatype": "FP32", "data": [...]}]}
    -> 200 {"outputs": [{"name": ..., "shape": [N, ...], "datatype": ..., "data": [...]}]}

The suspect is a party to the dispute, so everything it sends is untrusted.
A response is accepted only if every step below holds; otherwise the query
fails with a SuspectError saying which step failed, quoting at most
``_MAX_ERROR_TEXT`` characters of the server's own error text:

1. the HTTP status is 200 (5xx, timeouts and connection failures are retried
   ``retries`` times with exponential backoff; any other status is final:
   a 4xx will not change by asking again, and a 3xx is not followed),
2. the body fits in ``max_response_bytes`` and arrives within ``timeout``
   seconds in all (a server trickling bytes cannot hold the arbiter),
3. the Content-Type is JSON and the body is strict JSON: UTF-8, complete,
   no ``NaN``/``Infinity`` literals, no duplicate keys, an object at the top,
4. ``outputs`` is a non-empty list holding the output asked for (the first
   one if ``output_name`` is None) exactly once,
5. its datatype is a numeric Open Inference Protocol datatype,
6. its shape is a list of non-negative integers whose product is the number
   of data elements, given flat in row-major order or nested exactly along
   the shape, every element a JSON number of the datatype (integers for
   integer types, in the type's range; ``null``, which servers use for NaN,
   is refused),
7. :func:`~secmark.models.base.check_answers`: one answer per input, finite,
   of the output kind asked for.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import httpx
import numpy as np

from secmark.errors import EncodingError, SuspectError
from secmark.models.base import (
    Output,
    check_answers,
    check_batch,
    check_batch_size,
    check_output,
)
from secmark.models.reference import canonical_base_url, canonical_reference, model_path

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_BACKOFF",
    "MAX_RESPONSE_BYTES",
    "OIP_DATATYPES",
    "OipSuspect",
    "oip_model_url",
]

DEFAULT_BATCH_SIZE = 64
"""Rows per request: keeps one request well under servers' body limits."""

DEFAULT_TIMEOUT = 10.0
"""Seconds one attempt (connect, send, wait, read the whole body) may take."""

DEFAULT_RETRIES = 2
"""Extra attempts after a timeout, a connection failure or a 5xx status."""

DEFAULT_BACKOFF = 0.25
"""Seconds before the first retry; each further retry waits twice as long,
up to ``MAX_BACKOFF``."""

MAX_BACKOFF = 30.0
"""Longest wait between two attempts, however many retries are allowed."""

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Largest response body read (after content decoding): a hostile server must
not exhaust the arbiter's memory. 64 logit rows need a few kilobytes."""

OIP_DATATYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
"""The numeric Open Inference Protocol datatypes and their numpy dtypes.
``BOOL`` and ``BYTES`` exist in the protocol but cannot carry triggers or
answers, and are refused."""

_NON_NUMERIC_DATATYPES = frozenset({"BOOL", "BYTES"})
# numpy allows 64 dimensions; an answer needs a few. Bounds the nested-data walk.
_MAX_RANK = 32
_MAX_ERROR_TEXT = 200
_READY_POLL_INTERVAL = 0.1


class _Transient(Exception):
    """A failure worth retrying: timeout, connection failure, 5xx."""


def _summarise(text: str) -> str:
    """One printable line of at most _MAX_ERROR_TEXT characters of server text."""
    text = text[: 4 * _MAX_ERROR_TEXT]
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(line) > _MAX_ERROR_TEXT:
        return line[:_MAX_ERROR_TEXT] + "..."
    return line or "(empty body)"


def _error_text(body: bytes) -> str:
    """The server's error message: the ``error`` member of a JSON body (the
    protocol's error object), the last line of a Python traceback (what
    Python servers send for an unhandled exception), or the start of the body."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return _summarise(document["error"])
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        return _summarise(lines[-1])
    return _summarise(text)


def _normalise_base_url(base_url: str) -> str:
    """``scheme://host[:port][/path]``, canonical as in a suspect reference
    (:mod:`secmark.models.reference`), without a trailing slash.

    Credentials, queries and fragments are refused: the base URL is part of
    the suspect's canonical reference, and credentials belong in ``headers``.
    So is every spelling that clients or servers read as another endpoint's
    (IPv4 shorthand, dot segments, encoded slashes, ...).
    """
    try:
        return canonical_base_url(base_url)
    except EncodingError as error:
        raise SuspectError(f"invalid base URL: {error}") from None


def oip_model_url(base_url: str, model_name: str, model_version: str | None = None) -> str:
    """The canonical URL of a model endpoint: normalised base, then
    ``/v2/models/{name}[/versions/{version}]``, each part one path segment
    (:func:`~secmark.models.reference.model_path`: quoted with
    ``quote(part, safe="")``).

    Raises:
        SuspectError: an invalid base URL, or a name or version that is no
            single path segment (empty, ``.`` or ``..``, holding ``/``, ``\\``
            or ``;``, control characters, surrounding white space, not NFC,
            a decimal version with leading zeros).
    """
    try:
        path = model_path(model_name, model_version)
    except EncodingError as error:
        raise SuspectError(str(error)) from None
    return _normalise_base_url(base_url) + path


def _encode_input(batch: np.ndarray, datatype: str) -> np.ndarray:
    """``batch`` in the numpy dtype of ``datatype``, refusing lossy conversions
    other than the rounding of floats to a narrower float type."""
    dtype = OIP_DATATYPES[datatype]
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            encoded = batch.astype(dtype)
        if not np.isfinite(encoded).all():
            raise SuspectError(f"the batch has values too large for {datatype}")
        return encoded
    if batch.dtype.kind == "f" and not (batch == np.floor(batch)).all():
        raise SuspectError(f"the batch has non-integral values, which {datatype} cannot carry")
    info = np.iinfo(dtype)
    # Compare as Python ints: a float or int64 bound would round or overflow.
    low, high = batch.min().item(), batch.max().item()
    if low < info.min or high > info.max:
        raise SuspectError(f"the batch has values outside the range of {datatype}")
    return batch.astype(dtype)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _flatten(data: list[Any], shape: list[int]) -> list[Any]:
    """The elements of ``data`` in row-major order, flat or nested along ``shape``."""
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise SuspectError("the nested output data is deeper than its shape")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise SuspectError(f"the nested output data does not follow its shape {shape}")
        for item in node:
            walk(item, depth + 1)

    walk(data, 0)
    return flat


def _decode_tensor(tensor: Any) -> np.ndarray:
    """Steps 5 and 6 of the module docstring for one output tensor."""
    if not isinstance(tensor, dict):
        raise SuspectError("an output is not a JSON object")
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if not isinstance(datatype, str):
        raise SuspectError("the output has no datatype")
    if datatype in _NON_NUMERIC_DATATYPES:
        raise SuspectError(f"the output datatype {datatype} cannot carry answers")
    if datatype not in OIP_DATATYPES:
        raise SuspectError(f"unknown output datatype {_summarise(datatype)!r}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= _MAX_RANK
        or not all(type(dim) is int and dim >= 0 for dim in shape)
    ):
        raise SuspectError(
            f"the output shape must be a list of 1 to {_MAX_RANK} non-negative integers, "
            f"got {_summarise(repr(shape))}"
        )
    if not isinstance(data, list):
        raise SuspectError("the output has no data list")
    elements = _flatten(data, shape)
    if len(elements) != math.prod(shape):
        raise SuspectError(
            f"the output shape {shape} needs {math.prod(shape)} values, "
            f"the data holds {len(elements)}"
        )
    dtype = OIP_DATATYPES[datatype]
    # bool is an int subclass in Python but true/false are not JSON numbers.
    allowed: tuple[type, ...] = (int,) if dtype.kind in "iu" else (int, float)
    for index, element in enumerate(elements):
        if type(element) not in allowed:
            found = "null (NaN?)" if element is None else type(element).__name__
            raise SuspectError(
                f"output element {index} is {found}, not a number of type {datatype}"
            )
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if elements and (min(elements) < info.min or max(elements) > info.max):
            raise SuspectError(f"an output value is outside the range of {datatype}")
        array = np.array(elements, dtype=dtype)
    else:
        # JSON numbers are read as doubles; the declared width adds nothing to check.
        array = np.array(elements, dtype=np.float64)
    return array.reshape(shape)


class OipSuspect:
    """A model served over the Open Inference Protocol REST API.

    ``base_url`` is the server root (``http://host:8080``), ``model_name``
    and the optional ``model_version`` name the model. Inputs are sent as one
    tensor called ``input_name`` of ``datatype`` (one of
    :data:`OIP_DATATYPES`) and shape ``[rows, *row_shape]``, at most
    ``batch_size`` rows per request; the answers are read from the output
    ``output_name`` (the first output when None) and reduced as ``output``
    says (see :mod:`secmark.models.base`). ``headers`` are sent with every
    request (for example ``{"Authorization": "Bearer ..."}``) and are not
    part of ``describe()``.

    One ``httpx.Client`` is reused for every request (a new connection per
    request costs tens of milliseconds). Pass ``client`` to bring your own,
    for example one with a proxy, client certificates or custom TLS roots;
    it is then yours to close. Otherwise the adapter's own client ignores
    proxy and ``.netrc`` settings from the environment, so a suspect is
    always reached directly and receives nothing but ``headers``; close it
    with :meth:`close` or use the adapter as a context manager.

    ``describe()`` is ``oip:{base}/v2/models/{name}[/versions/{version}]``,
    the canonical reference (:mod:`secmark.models.reference`) of the very URL
    requests are posted to (plus ``/infer``); the base URL is canonicalised
    (scheme and host lower case, default port and trailing slashes dropped,
    ...), and one that has no canonical form (credentials, IPv4 shorthand,
    dot segments, ...) is refused with a SuspectError.

    Failures are described in the module docstring. A query either returns
    every answer or raises SuspectError; the requests already answered are
    discarded.
    """

    __slots__ = (
        "_backoff",
        "_batch_size",
        "_client",
        "_datatype",
        "_headers",
        "_input_name",
        "_max_response_bytes",
        "_model_url",
        "_output",
        "_output_name",
        "_owns_client",
        "_ready_urls",
        "_reference",
        "_retries",
        "_timeout",
    )

    def __init__(
        self,
        base_url: str,
        model_name: str,
        *,
        input_name: str = "input-0",
        datatype: str = "FP32",
        output_name: str | None = None,
        output: Output = "argmax",
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        batch_size: int = DEFAULT_BATCH_SIZE,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        model_version: str | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        base = _normalise_base_url(base_url)
        if not isinstance(model_name, str) or not model_name:
            raise SuspectError("model_name must be a non-empty string")
        if model_version is not None and (not isinstance(model_version, str) or not model_version):
            raise SuspectError("model_version must be None or a non-empty string")
        if datatype not in OIP_DATATYPES:
            raise SuspectError(
                f"unsupported input datatype {datatype!r}; "
                f"expected one of {', '.join(OIP_DATATYPES)}"
            )
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise SuspectError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise SuspectError(f"retries must be a non-negative integer, got {retries!r}")
        if not (isinstance(backoff, (int, float)) and math.isfinite(backoff) and backoff >= 0):
            raise SuspectError(f"backoff must be a non-negative number of seconds, got {backoff!r}")
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise SuspectError(
                f"max_response_bytes must be a positive integer, got {max_response_bytes!r}"
            )

        self._model_url = oip_model_url(base, model_name, model_version)
        self._reference = f"oip:{self._model_url}"
        # The reference is bound to what is queried: the URL httpx sends
        # requests to must be the reference's, byte for byte.
        infer_url = f"{self._model_url}/infer"
        if (
            str(httpx.URL(infer_url)) != infer_url
            or canonical_reference(self._reference) != self._reference
        ):
            raise SuspectError(
                f"{self._reference}: this URL would be sent as {str(httpx.URL(infer_url))!r}; "
                "name the endpoint by its canonical URL"
            )
        self._ready_urls = (f"{base}/v2/health/ready", f"{self._model_url}/ready")
        self._input_name = input_name
        self._datatype = datatype
        self._output_name = output_name
        self._output = check_output(output)
        self._timeout = float(timeout)
        self._retries = retries
        self._backoff = float(backoff)
        self._batch_size = check_batch_size(batch_size)
        self._max_response_bytes = max_response_bytes
        self._headers = {"Accept": "application/json", **dict(headers or {})}
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(trust_env=False)

    def __enter__(self) -> OipSuspect:  # noqa: PYI034 (not meant to be subclassed)
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
        if self._owns_client:
            self._client.close()

    def describe(self) -> str:
        return self._reference

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The endpoint's answers to every row of ``batch``; SuspectError on failure."""
        encoded = _encode_input(check_batch(batch), self._datatype)
        parts = [
            self._infer(encoded[start : start + self._batch_size])
            for start in range(0, encoded.shape[0], self._batch_size)
        ]
        return np.concatenate(parts)

    def wait_until_ready(self, timeout: float) -> None:
        """Wait until the server and the model report ready, for at most ``timeout`` s.

        Polls ``GET /v2/health/ready`` and then ``GET .../{model}/ready`` until
        both answer 200. Raises SuspectError with the last status or
        connection error seen when ``timeout`` runs out.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SuspectError(f"{self._reference}: not ready after {timeout} s ({last})")
            try:
                for url in self._ready_urls:
                    response = self._client.get(
                        url, headers=self._headers, timeout=min(self._timeout, remaining)
                    )
                    if response.status_code != 200:
                        last = f"GET {url} answered HTTP {response.status_code}"
                        break
                else:
                    return
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {_summarise(str(exc))}"
            time.sleep(min(_READY_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        """One request: post ``chunk``, retrying transient failures, and decode."""
        request = {
            "inputs": [
                {
                    "name": self._input_name,
                    "shape": list(chunk.shape),
                    "datatype": self._datatype,
                    "data": chunk.reshape(-1).tolist(),
                }
            ]
        }
        body = json.dumps(request, allow_nan=False, separators=(",", ":")).encode("utf-8")
        content_type, content = self._post_with_retries(body)
        return self._decode(content_type, content, rows=chunk.shape[0])

    def _post_with_retries(self, body: bytes) -> tuple[str, bytes]:
        failures = 0
        while True:
            try:
                return self._post(body)
            except _Transient as exc:
                failures += 1
                if failures > self._retries:
                    raise SuspectError(
                        f"{self._reference}: {exc} (gave up after {failures} attempts)"
                    ) from None
            time.sleep(min(self._backoff * 2 ** (failures - 1), MAX_BACKOFF))

    def _post(self, body: bytes) -> tuple[str, bytes]:
        """One attempt: (Content-Type, body) of a 200 answer, _Transient or SuspectError."""
        deadline = time.monotonic() + self._timeout
        url = f"{self._model_url}/infer"
        headers = {**self._headers, "Content-Type": "application/json"}
        try:
            with self._client.stream(
                "POST", url, content=body, headers=headers, timeout=self._timeout
            ) as response:
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
        except httpx.TimeoutException:
            raise _Transient(f"timed out after {self._timeout} s") from None
        except httpx.TransportError as exc:
            raise _Transient(
                f"connection failed ({type(exc).__name__}: {_summarise(str(exc))})"
            ) from None
        except httpx.HTTPError as exc:
            raise SuspectError(
                f"{self._reference}: request failed ({type(exc).__name__}: {_summarise(str(exc))})"
            ) from exc
        if status >= 500:
            raise _Transient(f"HTTP {status}: {_error_text(bytes(content))}")
        if status != 200:
            raise SuspectError(f"{self._reference}: HTTP {status}: {_error_text(bytes(content))}")
        return content_type, bytes(content)

    def _decode(self, content_type: str, content: bytes, *, rows: int) -> np.ndarray:
        """Steps 3 to 7 of the module docstring."""
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise SuspectError(
                f"{self._reference}: the response is not JSON "
                f"(Content-Type {_summarise(content_type)!r}): {_error_text(content)}"
            )
        try:
            document = json.loads(
                content.decode("utf-8"),
                object_pairs_hook=_reject_duplicate_keys,
                parse_constant=_reject_constant,
            )
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise SuspectError(f"{self._reference}: invalid JSON in the response ({exc})") from None
        if not isinstance(document, dict):
            raise SuspectError(f"{self._reference}: the response is not a JSON object")
        outputs = document.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise SuspectError(f"{self._reference}: the response has no outputs")
        try:
            if self._output_name is None:
                tensor = outputs[0]
            else:
                named = [
                    t for t in outputs if isinstance(t, dict) and t.get("name") == self._output_name
                ]
                if len(named) != 1:
                    names = [t.get("name") for t in outputs if isinstance(t, dict)]
                    found = "twice" if named else f"absent (outputs: {_summarise(repr(names))})"
                    raise SuspectError(f"the output {self._output_name!r} is {found}")
                tensor = named[0]
            array = _decode_tensor(tensor)
        except SuspectError as exc:
            raise SuspectError(f"{self._reference}: {exc}") from None
        return check_answers(array, rows=rows, output=self._output, source=self._reference)
