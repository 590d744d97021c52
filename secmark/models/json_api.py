"""A suspect behind any JSON inference API, by a small request/response mapping.

Many endpoints are not Open Inference Protocol servers: SageMaker's
``/invocations``, Vertex AI's ``:rawPredict``, Hugging Face Inference
Endpoints, a team's own Flask app. Each takes a JSON body holding the inputs
somewhere and answers a JSON body holding one answer per input somewhere.
:class:`JsonApiSuspect` is told where, and nothing else about the API::

    request template  {"instances": "{{inputs}}"}
    answers pointer   /predictions        (RFC 6901 JSON Pointer)
    answer pointer    /scores             (optional, inside each answer)

    POST {url}   {"instances": [[0.1, 0.7, ...], [0.3, 0.2, ...]]}
    -> 200       {"predictions": [{"scores": [0.9, 0.1]}, {"scores": [0.2, 0.8]}]}

The template is any JSON value holding the string :data:`PLACEHOLDER`
exactly once, as a whole value (not a key, not inside a longer string); it
is replaced by the batch as nested lists, one list per input (C order,
integers for integer inputs, floats otherwise). Without a batch dimension
(``batch_dimension=False``) each request carries one input, the placeholder
is replaced by that input alone, and the answers pointer names its one
answer.

Like :mod:`secmark.models.remote`, the suspect is a party to the dispute and
everything it sends is untrusted. A response is accepted only if:

1. the HTTP status is 200, after the retries, waits and halts of
   :mod:`secmark.models.http`, the body within ``max_response_bytes`` and
   ``timeout`` seconds in all;
2. the Content-Type is JSON (``application/json`` or ``*/*+json``) and the
   body is strict JSON (UTF-8, complete, no ``NaN``/``Infinity``, no
   duplicate keys);
3. the answers pointer names a value: a list of exactly one answer per
   input (or, without a batch dimension, the one answer);
4. the answer pointer, if any, names a value inside each answer;
5. each answer is a JSON number or a regular nested list of numbers
   (``true``, ``null`` and strings are refused, integers must fit in 64
   bits), of at most 32 dimensions, all answers of one shape;
6. :func:`~secmark.models.base.check_answers`: finite, of the output kind
   asked for.

A failure of the response's form, whatever the inputs, halts the adapter
(:mod:`secmark.models.http`): no JSON, a pointer naming nothing, answers
that are no list, strings or objects where numbers are, answers of another
kind than ``output`` asks for.

Every failure is a :class:`~secmark.errors.SuspectError` prefixed with the
reference; server text is quoted at most 200 characters long, credentials
redacted.

The reference (``describe()``) is ``json:`` and the canonical URL the
requests are posted to (:func:`~secmark.models.reference.canonical_endpoint_url`).
The template and the pointers say *how* to ask, not *which* model: an API
that picks the model from a member of the body (``"model": ...``) or from a
header serves several models under one reference, and cannot be bound to
one of them (``specs/suspects.md``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
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
    MAX_RESPONSE_BYTES,
    HttpSuspect,
    ResponseFormError,
    TlsFiles,
    check_answer_kind,
    check_media_type,
    hide_userinfo,
    load_json,
)
from secmark.models.reference import canonical_endpoint_url

__all__ = [
    "MAX_TEMPLATE_BYTES",
    "PLACEHOLDER",
    "JsonApiSuspect",
    "JsonPointer",
    "check_sent_as_named",
    "check_template",
    "json_endpoint_url",
]

PLACEHOLDER: Final = "{{inputs}}"
"""The string a request template holds where the inputs go."""

MAX_TEMPLATE_BYTES = 64 * 1024
"""Largest request template, as compact JSON: a template describes a body,
it is not one."""

_MAX_DEPTH = 32  # of a template, and of one answer
_MAX_POINTER_LENGTH = 1024
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def json_endpoint_url(url: str) -> str:
    """The canonical form of an endpoint URL, as in a ``json:`` reference.

    Raises:
        SuspectError: the URL has no canonical form (credentials, a query,
            IPv4 shorthand, dot segments, encoded slashes, ...).
    """
    try:
        return canonical_endpoint_url(url)
    except EncodingError as error:
        message = f"invalid endpoint URL: {error}"
        raise SuspectError(
            hide_userinfo(url, message) if isinstance(url, str) else message
        ) from None


def check_sent_as_named(endpoint: str) -> None:
    """Check that httpx sends the canonical ``endpoint`` byte for byte (the
    root with or without its slash): the reference is bound to what is queried.

    Raises:
        SuspectError: httpx would send another spelling of the URL.
    """
    sent = str(httpx.URL(endpoint))
    if sent not in (endpoint, endpoint + "/"):
        raise SuspectError(
            f"json:{endpoint}: this URL would be sent as {sent!r}; "
            "name the endpoint by its canonical URL"
        )


class JsonPointer:
    """An RFC 6901 JSON Pointer: ``""`` (the whole document) or ``/`` and
    reference tokens separated by ``/``, with ``~1`` for ``/`` and ``~0``
    for ``~`` in a token. An array element is named by its decimal index
    without leading zeros; ``-`` (past the end) names nothing.
    """

    __slots__ = ("_text", "_tokens")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or len(text) > _MAX_POINTER_LENGTH:
            raise SuspectError(
                f"a JSON pointer is a string of at most {_MAX_POINTER_LENGTH} characters"
            )
        if text and not text.startswith("/"):
            raise SuspectError(
                f"JSON pointer {text!r:.80} must be empty (the whole document) or begin with '/'"
            )
        if re.search(r"~(?![01])", text):
            raise SuspectError(
                f"JSON pointer {text!r:.80}: '~' must be written ~0, and '/' in a name ~1"
            )
        self._text = text
        self._tokens = tuple(
            token.replace("~1", "/").replace("~0", "~") for token in text.split("/")[1:]
        )

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"JsonPointer({self._text!r})"

    def resolve(self, document: Any) -> Any:
        """The value the pointer names in ``document``.

        Raises:
            SuspectError: no such value; the message names the first token
                that named nothing.
        """
        node = document
        walked = ""
        for token in self._tokens:
            walked += "/" + token.replace("~", "~0").replace("/", "~1")
            if isinstance(node, dict):
                if token not in node:
                    raise ResponseFormError(f"the response has no value at {walked!r:.120}")
                node = node[token]
            elif isinstance(node, list):
                if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(node):
                    raise ResponseFormError(
                        f"the response has no value at {walked!r:.120} (a list of {len(node)})"
                    )
                node = node[int(token)]
            else:
                raise ResponseFormError(
                    f"the response has no value at {walked!r:.120} "
                    f"(a {_json_type(node)} has no members)"
                )
        return node


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def check_template(template: Any) -> None:
    """Check a request template: JSON values only (string keys, finite
    numbers), nested at most 32 deep, at most :data:`MAX_TEMPLATE_BYTES` as
    compact JSON, holding :data:`PLACEHOLDER` exactly once as a whole value.

    Raises:
        SuspectError: a rule is broken.
    """
    found = 0

    def walk(node: Any, depth: int) -> None:
        nonlocal found
        if depth > _MAX_DEPTH:
            raise SuspectError(f"the request template is nested deeper than {_MAX_DEPTH}")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise SuspectError("the request template has a key that is not a string")
                if PLACEHOLDER in key:
                    raise SuspectError(f"the request template has {PLACEHOLDER} in a key")
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)
        elif isinstance(node, str):
            if node == PLACEHOLDER:
                found += 1
            elif PLACEHOLDER in node:
                raise SuspectError(
                    f"the request template has {PLACEHOLDER} inside a longer string; it "
                    "stands alone, as the whole value the inputs replace"
                )
        elif node is not None and not isinstance(node, (bool, int, float)):
            raise SuspectError(
                f"the request template holds a {type(node).__name__}, which is no JSON value"
            )

    walk(template, 0)
    if found != 1:
        raise SuspectError(
            f"the request template must hold the string {PLACEHOLDER!r} exactly once "
            f"(where the inputs go), not {found} times"
        )
    try:
        size = len(json.dumps(template, allow_nan=False, separators=(",", ":")))
    except ValueError:
        raise SuspectError("the request template holds NaN or an infinity") from None
    if size > MAX_TEMPLATE_BYTES:
        raise SuspectError(f"the request template is larger than {MAX_TEMPLATE_BYTES} bytes")


def _fill(template: Any, inputs: Any) -> Any:
    """A copy of ``template`` with PLACEHOLDER replaced by ``inputs``."""
    if isinstance(template, str):
        return inputs if template == PLACEHOLDER else template
    if isinstance(template, dict):
        return {key: _fill(value, inputs) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, inputs) for value in template]
    return template


def _numeric(value: Any, what: str) -> np.ndarray:
    """Step 5 of the module docstring: one answer as an array."""
    if value is None:  # what some serialisers write for NaN: one input's value
        raise SuspectError(f"{what} is null (NaN?)")
    if not isinstance(value, list) and type(value) not in (int, float):
        raise ResponseFormError(
            f"{what} is a {_json_type(value)}, not a number or a list of numbers"
        )
    # A scalar is walked as an array of no dimensions.
    shape: list[int] = []
    node: Any = value
    while isinstance(node, list):
        if len(shape) == _MAX_DEPTH:
            raise SuspectError(f"{what} is nested deeper than {_MAX_DEPTH} lists")
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if node is None:
                raise SuspectError(f"{what} holds a null (NaN?) where a number is expected")
            if type(node) not in (int, float):
                raise ResponseFormError(
                    f"{what} holds a {_json_type(node)} where a number is expected"
                )
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise SuspectError(f"{what} is not a regular array (its lists differ in length)")
        for item in node:
            walk(item, depth + 1)

    walk(value, 0)
    if any(type(x) is int and not _INT64_MIN <= x <= _INT64_MAX for x in flat):
        raise SuspectError(f"{what} holds an integer that does not fit in 64 bits")
    dtype = np.int64 if all(type(x) is int for x in flat) else np.float64
    return np.array(flat, dtype=dtype).reshape(shape)


class JsonApiSuspect(HttpSuspect):
    """A model behind a JSON API, queried through a request template and
    JSON pointers to the answers (module docstring).

    ``url`` is the endpoint requests are posted to; ``request`` the template
    of their body (holding :data:`PLACEHOLDER` once); ``answers`` the JSON
    pointer to the list of answers in a response (``""``: the whole body);
    ``answer`` the pointer to the answer inside each element of that list
    (``""``: the element itself). ``output`` says how answers are reduced
    (:mod:`secmark.models.base`). ``input_shape``, ``batch_size``,
    ``batch_dimension``, ``timeout``, ``retries``, ``backoff``, ``headers``,
    ``tls``, ``client``, ``max_response_bytes`` and ``egress`` are as for
    :class:`~secmark.models.OipSuspect`; :attr:`requests_sent` counts the
    requests that may have reached the server.

    ``describe()`` is ``json:`` and the canonical URL requests are posted to.

    Raises:
        SuspectError: at construction, a URL without a canonical form, a
            template or pointer that breaks the rules above, or another
            invalid setting; at :meth:`predict`, every failure of the module
            docstring.
    """

    __slots__ = ("_answer", "_answers", "_output", "_template")

    def __init__(
        self,
        url: str,
        *,
        request: Any,
        answers: str,
        answer: str = "",
        output: Output = "argmax",
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_dimension: bool = True,
        input_shape: Sequence[int] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        client: httpx.Client | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        egress: EgressPolicy | None = None,
    ) -> None:
        endpoint = json_endpoint_url(url)
        check_sent_as_named(endpoint)
        check_template(request)
        self._template = copy.deepcopy(request)
        self._answers = JsonPointer(answers)
        self._answer = JsonPointer(answer)
        self._output = check_output(output)
        self._connect(
            endpoint,
            reference=f"json:{endpoint}",
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

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        """One request: post ``chunk``, retrying transient failures, and decode."""
        inputs = chunk.tolist() if self._batch_dimension else chunk[0].tolist()
        body = json.dumps(
            _fill(self._template, inputs), allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
        content_type, content = self._transport.post(body)
        return self._decode(content_type, content, rows=chunk.shape[0])

    def _decode(self, content_type: str, content: bytes, *, rows: int) -> np.ndarray:
        """Steps 2 to 6 of the module docstring."""
        try:
            check_media_type(content_type, content, self._transport)
            try:
                document = load_json(content, "the response")
            except ValueError as exc:
                raise SuspectError(str(exc)) from None
            found = self._answers.resolve(document)
            if self._batch_dimension:
                if not isinstance(found, list):
                    raise ResponseFormError(
                        f"the answers at {str(self._answers)!r:.120} are a {_json_type(found)}, "
                        f"not a list of one answer per input"
                    )
                if len(found) != rows:
                    raise SuspectError(f"expected {rows} answers (one per input), got {len(found)}")
                elements = found
            else:
                elements = [found]
            answers = [
                _numeric(self._answer.resolve(element), f"the answer to input {index}")
                for index, element in enumerate(elements)
            ]
            if len({a.shape for a in answers}) > 1:
                raise SuspectError("the answers differ in shape")
            kinds = {a.dtype for a in answers}
            array = np.stack([a.astype(np.float64) if len(kinds) > 1 else a for a in answers])
            check_answer_kind(array, self._output)
        except SuspectError as exc:
            message = f"{self._reference}: {exc}"
            if isinstance(exc, ResponseFormError):
                self._transport.halt(message)
            raise SuspectError(message) from None
        return check_answers(array, rows=rows, output=self._output, source=self._reference)
