"""A suspect behind an Open Inference Protocol endpoint (KServe v2 REST).

The Open Inference Protocol is what KServe, MLServer and Triton serve::

    POST {base}/v2/models/{name}[/versions/{version}]/infer
    {"inputs": [{"name": ..., "shape": [N, ...], "datatype": "FP32", "data": [...]}],
     "outputs": [{"name": ...}]}            (only when outputs are requested)
    -> 200 {"outputs": [{"name": ..., "shape": [N, ...], "datatype": ..., "data": [...]}]}

The suspect is a party to the dispute, so everything it sends is untrusted.
A response is accepted only if every step below holds; otherwise the query
fails with a SuspectError saying which step failed, quoting at most
:data:`~secmark.models.http.MAX_ERROR_TEXT` characters of the server's own
error text, credentials redacted:

1. the HTTP status is 200, after the retries, waits and halts of
   :mod:`secmark.models.http` (5xx, 408, 429, timeouts and connection
   failures are retried ``retries`` times, honouring ``Retry-After``; any
   other status is final, a 3xx is not followed, and a failure that does not
   depend on the inputs, such as a 401 or 404, stops the adapter from
   sending anything more),
2. the body fits in ``max_response_bytes`` and arrives within ``timeout``
   seconds in all (a server trickling bytes cannot hold the arbiter),
3. the Content-Type is JSON and the body is strict JSON: UTF-8, complete,
   no ``NaN``/``Infinity`` literals, no duplicate keys, an object at the top,
4. ``outputs`` is a non-empty list holding the output asked for (the first
   one if ``output_name`` is None) exactly once (this and the form checks
   of steps 3, 5 and 6 and of the answers' kind fail alike for every input:
   such a failure halts the adapter, :mod:`secmark.models.http`),
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import httpx
import numpy as np

from secmark.errors import EncodingError, SuspectError
from secmark.models.base import (
    Output,
    check_answers,
    check_output,
)
from secmark.models.egress import EgressPolicy
from secmark.models.http import (
    DEFAULT_BACKOFF,
    DEFAULT_BATCH_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_BACKOFF,
    MAX_RESPONSE_BYTES,
    HttpSuspect,
    ResponseFormError,
    TlsFiles,
    check_answer_kind,
    check_media_type,
    hide_userinfo,
    load_json,
)
from secmark.models.reference import canonical_base_url, canonical_reference, model_path

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_BACKOFF",
    "MAX_REQUESTED_OUTPUTS",
    "MAX_RESPONSE_BYTES",
    "OIP_DATATYPES",
    "OipSuspect",
    "oip_model_url",
]

MAX_REQUESTED_OUTPUTS = 16
"""Most outputs one request may name: an answer is read from one of them."""

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
_MAX_NAME_LENGTH = 256
_READY_POLL_INTERVAL = 0.1

_Summarise = Callable[[str], str]


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
        raise SuspectError(hide_userinfo(base_url, f"invalid base URL: {error}")) from None


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


def _decode_tensor(tensor: Any, summarise: _Summarise) -> np.ndarray:
    """Steps 5 and 6 of the module docstring for one output tensor."""
    if not isinstance(tensor, dict):
        raise ResponseFormError("an output is not a JSON object")
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if not isinstance(datatype, str):
        raise ResponseFormError("the output has no datatype")
    if datatype in _NON_NUMERIC_DATATYPES:
        raise ResponseFormError(f"the output datatype {datatype} cannot carry answers")
    if datatype not in OIP_DATATYPES:
        raise ResponseFormError(f"unknown output datatype {summarise(datatype)!r}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= _MAX_RANK
        or not all(type(dim) is int and dim >= 0 for dim in shape)
    ):
        raise ResponseFormError(
            f"the output shape must be a list of 1 to {_MAX_RANK} non-negative integers, "
            f"got {summarise(repr(shape))}"
        )
    if not isinstance(data, list):
        raise ResponseFormError("the output has no data list")
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


def _check_name(value: object, what: str) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_NAME_LENGTH
        or not value.isprintable()
        or value.strip() != value
    ):
        raise SuspectError(
            f"{what} must be 1 to {_MAX_NAME_LENGTH} printable characters without surrounding "
            f"white space, got {value!r:.80}"
        )
    return value


def _check_requested_outputs(names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return ()
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise SuspectError("requested_outputs must be a list of output names")
    checked = tuple(_check_name(name, "a requested output name") for name in names)
    if not 0 < len(checked) <= MAX_REQUESTED_OUTPUTS or len(set(checked)) != len(checked):
        raise SuspectError(
            f"requested_outputs must name 1 to {MAX_REQUESTED_OUTPUTS} distinct outputs"
        )
    return checked


class OipSuspect(HttpSuspect):
    """A model served over the Open Inference Protocol REST API.

    ``base_url`` is the server root (``http://host:8080``), ``model_name``
    and the optional ``model_version`` name the model. Inputs are sent as one
    tensor called ``input_name`` of ``datatype`` (one of
    :data:`OIP_DATATYPES`) and shape ``[rows, *row_shape]``, at most
    ``batch_size`` rows per request. ``input_shape``, when given, is the
    shape each input is sent in (its values in C order: ``[64]`` sends an
    8x8 image as 64 features). A model without a batch dimension
    (``batch_dimension=False``) is sent one input per request, of shape
    ``row_shape``, and answers with one answer, without a leading axis.

    ``requested_outputs`` are named in the request (``"outputs": [{"name":
    ...}]``): servers such as MLServer's scikit-learn runtime answer
    ``predict`` unless asked for ``predict_proba``. The answers are read
    from the output ``output_name`` (the first output when None) and reduced
    as ``output`` says (see :mod:`secmark.models.base`).

    ``headers`` are sent with every request (for example ``{"Authorization":
    "Bearer ..."}``), are never quoted, and are not part of ``describe()``;
    ``tls`` names a CA file and a client certificate
    (:class:`~secmark.models.http.TlsFiles`). One ``httpx.Client`` is reused
    for every request (a new connection per request costs tens of
    milliseconds). Pass ``client`` to bring your own, for example one with a
    proxy; it is then yours to close. Otherwise the adapter's own client
    ignores proxy and ``.netrc`` settings from the environment, so a suspect
    is always reached directly and receives nothing but ``headers``; close
    it with :meth:`close` or use the adapter as a context manager.
    ``egress`` (:class:`~secmark.models.egress.EgressPolicy`; not with
    ``client``) limits the addresses requests are sent to: a service
    querying the URLs claimants name passes one.
    :attr:`requests_sent` counts the requests that may have reached the
    server (:mod:`secmark.models.http`).

    ``describe()`` is ``oip:{base}/v2/models/{name}[/versions/{version}]``,
    the canonical reference (:mod:`secmark.models.reference`) of the very URL
    requests are posted to (plus ``/infer``); the base URL is canonicalised
    (scheme and host lower case, default port and trailing slashes dropped,
    ...), and one that has no canonical form (credentials, IPv4 shorthand,
    dot segments, ...) is refused with a SuspectError. Everything else says
    *how* that model is asked, not *which* model it is.

    Failures are described in the module docstring. A query either returns
    every answer or raises SuspectError; the requests already answered are
    discarded.
    """

    __slots__ = (
        "_datatype",
        "_input_name",
        "_model_url",
        "_output",
        "_output_name",
        "_ready_urls",
        "_requested_outputs",
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
        egress: EgressPolicy | None = None,
        requested_outputs: Sequence[str] | None = None,
        batch_dimension: bool = True,
        input_shape: Sequence[int] | None = None,
        tls: TlsFiles | None = None,
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
        self._model_url = oip_model_url(base, model_name, model_version)
        reference = f"oip:{self._model_url}"
        # The reference is bound to what is queried: the URL httpx sends
        # requests to must be the reference's, byte for byte.
        infer_url = f"{self._model_url}/infer"
        if str(httpx.URL(infer_url)) != infer_url or canonical_reference(reference) != reference:
            raise SuspectError(
                f"{reference}: this URL would be sent as {str(httpx.URL(infer_url))!r}; "
                "name the endpoint by its canonical URL"
            )
        self._ready_urls = (f"{base}/v2/health/ready", f"{self._model_url}/ready")
        self._input_name = _check_name(input_name, "input_name")
        self._datatype = datatype
        self._output_name = None if output_name is None else _check_name(output_name, "output_name")
        self._requested_outputs = _check_requested_outputs(requested_outputs)
        if (
            self._output_name is not None
            and self._requested_outputs
            and self._output_name not in self._requested_outputs
        ):
            raise SuspectError(
                f"output_name {self._output_name!r} is not among the requested outputs"
            )
        self._output = check_output(output)
        self._connect(
            infer_url,
            reference=reference,
            batch_size=batch_size,
            batch_dimension=batch_dimension,
            input_shape=input_shape,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            client=client,
            tls=tls,
            max_response_bytes=max_response_bytes,
            egress=egress,
        )

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        return _encode_input(batch, self._datatype)

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
                    status = self._transport.get_status(
                        url, min(self._transport.timeout, remaining)
                    )
                    if status != 200:
                        last = f"GET {url} answered HTTP {status}"
                        break
                else:
                    return
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {self._transport.summarise(str(exc))}"
            time.sleep(min(_READY_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        """One request: post ``chunk``, retrying transient failures, and decode."""
        sent = chunk if self._batch_dimension else chunk[0]
        request: dict[str, Any] = {
            "inputs": [
                {
                    "name": self._input_name,
                    "shape": list(sent.shape),
                    "datatype": self._datatype,
                    "data": sent.reshape(-1).tolist(),
                }
            ]
        }
        if self._requested_outputs:
            request["outputs"] = [{"name": name} for name in self._requested_outputs]
        body = json.dumps(request, allow_nan=False, separators=(",", ":")).encode("utf-8")
        content_type, content = self._transport.post(body)
        return self._decode(content_type, content, rows=chunk.shape[0])

    def _decode(self, content_type: str, content: bytes, *, rows: int) -> np.ndarray:
        """Steps 3 to 7 of the module docstring."""
        try:
            check_media_type(content_type, content, self._transport)
            try:
                document = load_json(content, "the response")
            except ValueError as exc:
                raise SuspectError(str(exc)) from None
            if not isinstance(document, dict):
                raise ResponseFormError("the response is not a JSON object")
            outputs = document.get("outputs")
            if not isinstance(outputs, list) or not outputs:
                raise ResponseFormError("the response has no outputs")
            if self._output_name is None:
                tensor = outputs[0]
            else:
                named = [
                    t for t in outputs if isinstance(t, dict) and t.get("name") == self._output_name
                ]
                if len(named) != 1:
                    names = [t.get("name") for t in outputs if isinstance(t, dict)]
                    found = (
                        "twice"
                        if named
                        else f"absent (outputs: {self._transport.summarise(repr(names))})"
                    )
                    raise ResponseFormError(f"the output {self._output_name!r} is {found}")
                tensor = named[0]
            array = _decode_tensor(tensor, self._transport.summarise)
            if not self._batch_dimension:
                array = array[np.newaxis, ...]
            check_answer_kind(array, self._output)
        except SuspectError as exc:
            message = f"{self._reference}: {exc}"
            if isinstance(exc, ResponseFormError):
                self._transport.halt(message)
            raise SuspectError(message) from None
        return check_answers(array, rows=rows, output=self._output, source=self._reference)
