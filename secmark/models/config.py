"""A suspect config: every setting of a remote suspect, in one JSON file.

An arbiter keeps the description of an endpoint it has tested with the case
(``secmark check --suspect-config FILE``, ``secmark arbiter query
--suspect-config FILE``), so that the suspect is queried the same way every
time. ``specs/suspects.md`` is the normative description of the file; in
short, an object with these members (all optional but ``url``, and ``model``
for ``oip``, ``request`` and ``answers`` for ``json``)::

    protocol            "oip" (default), "json", "openai-completions" or
                        "openai-chat"
    url                 oip and openai: the server root; json: the URL posted to
    model, model_version, input_name, datatype, output_name,
    requested_outputs   oip only
    request, answers, answer
                        json only: template and JSON pointers (json_api)
    model, tokenizer    openai only: the model name (the model member sent,
                        named by the reference), and the tokenizer.json
                        answers are re-encoded with (secmark.models.openai)
    system              openai-chat only: a system message before the prompt
    output              "argmax" (default), "labels" or "values"
    batch_size, batch_dimension, input_shape,
    timeout, retries, backoff, max_response_bytes
    tls                 {"ca_file", "cert_file", "key_file"}
    headers             {name: value}: headers that are no credential
    headers_from_env    {name: environment variable holding the value}
    headers_file        a JSON file {name: value}, readable by its owner only
    description         free text for people, ignored

Parsing is strict: UTF-8, no duplicate keys, no ``NaN``, no unknown member,
no member of the other protocol, every value of its JSON type (``true`` is
not a number, ``1`` is not a boolean), in its range. Every failure is an
:class:`~secmark.errors.EncodingError` naming the member (a missing or
exposed credential: :class:`~secmark.errors.KeyMaterialError`; an invalid
suspect setting found when the adapter is built:
:class:`~secmark.errors.SuspectError`). A credential's value is never quoted.

What is queried is named by ``url`` (with ``model`` and ``model_version``
for ``oip``, ``model`` for openai): the adapter's reference (:meth:`SuspectConfig.reference`),
which the arbiter binds to the claim's. Every other member says *how* it is
asked, and changes no reference.

Paths in the file are read relative to the file's folder, so a case folder
can hold the config, its CA file and its headers file together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from secmark.errors import EncodingError, KeyMaterialError, SecmarkError, SuspectError
from secmark.files import read_regular_file
from secmark.messages.responses import ResponseList
from secmark.models.base import OUTPUTS, Output
from secmark.models.egress import EgressPolicy
from secmark.models.http import (
    DEFAULT_BACKOFF,
    DEFAULT_BATCH_SIZE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_BACKOFF,
    MAX_INPUT_RANK,
    MAX_RESPONSE_BYTES,
    TlsFiles,
    check_headers,
    load_json,
)
from secmark.models.json_api import JsonApiSuspect, JsonPointer, check_template, json_endpoint_url
from secmark.models.openai import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    OpenAIChatSuspect,
    OpenAICompletionsSuspect,
    openai_model_reference,
)
from secmark.models.remote import MAX_REQUESTED_OUTPUTS, OIP_DATATYPES, OipSuspect, oip_model_url
from secmark.models.tokenizer import LMTokenizer

__all__ = [
    "CREDENTIAL_HEADERS",
    "MAX_CONFIG_SIZE",
    "MAX_RETRIES",
    "MAX_TIMEOUT",
    "OPENAI_PROTOCOLS",
    "PROTOCOLS",
    "SuspectConfig",
]

PROTOCOLS: Final = ("oip", "json", "openai-completions", "openai-chat")
"""``oip``: :class:`~secmark.models.OipSuspect`; ``json``:
:class:`~secmark.models.JsonApiSuspect`; ``openai-completions`` and
``openai-chat``: the language-model adapters of :mod:`secmark.models.openai`."""
OPENAI_PROTOCOLS: Final = ("openai-completions", "openai-chat")

MAX_CONFIG_SIZE = 1024 * 1024
"""Largest config file (and headers file): a description, not data."""

MAX_TIMEOUT = 3600.0
"""Longest timeout of one attempt, in seconds."""

MAX_RETRIES = 10
"""Most retries of one request: each may be billed."""

MAX_BATCH_SIZE = 65536
"""Most inputs in one request."""

CREDENTIAL_HEADERS: Final = frozenset(
    {
        "api-key",
        "authorization",
        "cookie",
        "ocp-apim-subscription-key",
        "proxy-authorization",
        "x-api-key",
        "x-goog-api-key",
    }
)
"""Headers that carry credentials, refused in ``headers``: a config is kept
with a case and shown to others, so they come from ``headers_from_env`` or
``headers_file``."""

_COMMON: Final = frozenset(
    {
        "protocol",
        "url",
        "output",
        "batch_size",
        "batch_dimension",
        "input_shape",
        "timeout",
        "retries",
        "backoff",
        "max_response_bytes",
        "tls",
        "headers",
        "headers_from_env",
        "headers_file",
        "description",
    }
)
_ONLY: Final = {
    "oip": frozenset(
        {
            "model",
            "model_version",
            "input_name",
            "datatype",
            "output_name",
            "requested_outputs",
        }
    ),
    "json": frozenset({"request", "answers", "answer"}),
    "openai-completions": frozenset({"model", "tokenizer"}),
    "openai-chat": frozenset({"model", "tokenizer", "system"}),
}
_NOT_OPENAI: Final = ("output", "batch_size", "batch_dimension", "input_shape")
"""Settings of a model that answers arrays, which a language model does not:
it answers one prompt per request with text, re-encoded to token ids."""
_MAX_SYSTEM = 64 * 1024
_TLS_KEYS: Final = ("ca_file", "cert_file", "key_file")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_MAX_TEXT = 1024
_MAX_DESCRIPTION = 4096


def _type_name(value: Any) -> str:
    """The JSON type of ``value``, as an error names it (never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


class _Reader:
    """Typed reads of one config's members, each error naming the member."""

    def __init__(self, value: Mapping[str, Any], name: Callable[[str], str]) -> None:
        self.value = value
        self.name = name

    def fail(self, key: str, rule: str) -> EncodingError:
        return EncodingError(f"{self.name(key)} {rule}")

    def text(self, key: str, limit: int = _MAX_TEXT) -> str | None:
        value = self.value.get(key)
        if value is None and key not in self.value:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise self.fail(
                key, f"must be a string of 1 to {limit} characters, not {_type_name(value)}"
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(key)
        if value is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, not {value!r:.40}")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        if key not in self.value:
            return None
        value = self.value[key]
        # true is no integer here, though Python's bool is an int.
        if type(value) is not int or not low <= value <= high:
            shown = repr(value) if type(value) is int else _type_name(value)
            raise self.fail(key, f"must be an integer from {low} to {high}, not {shown}")
        return value

    def number(self, key: str, low: float, high: float, *, positive: bool) -> float | None:
        if key not in self.value:
            return None
        value = self.value[key]
        if type(value) not in (int, float) or not low <= value <= high or (positive and value <= 0):
            shown = repr(value) if type(value) in (int, float) else _type_name(value)
            bound = f"above {low:g}" if positive else f"from {low:g}"
            raise self.fail(key, f"must be a number of seconds {bound} to {high:g}, not {shown}")
        return float(value)

    def boolean(self, key: str) -> bool | None:
        if key not in self.value:
            return None
        value = self.value[key]
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_type_name(value)}")
        return value

    def texts(self, key: str, limit: int) -> tuple[str, ...] | None:
        if key not in self.value:
            return None
        value = self.value[key]
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= limit
            or not all(isinstance(item, str) and 0 < len(item) <= _MAX_TEXT for item in value)
        ):
            raise self.fail(key, f"must be a list of 1 to {limit} non-empty strings")
        return tuple(value)

    def shape(self, key: str) -> tuple[int, ...] | None:
        if key not in self.value:
            return None
        value = self.value[key]
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= MAX_INPUT_RANK
            or not all(type(dim) is int and dim > 0 for dim in value)
        ):
            raise self.fail(
                key, f"must be a list of 1 to {MAX_INPUT_RANK} positive integers (a shape)"
            )
        return tuple(value)

    def mapping(self, key: str, *, secret: bool) -> dict[str, str]:
        if key not in self.value:
            return {}
        value = self.value[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object of names to strings, not {_type_name(value)}")
        for name, item in value.items():
            if not isinstance(item, str):
                # The name of a header is no secret; its value may be.
                shown = "" if secret else f", not {_type_name(item)}"
                raise self.fail(key, f"member {name!r:.80} must be a string{shown}")
        return dict(value)

    def path(self, key: str, base: Path) -> Path | None:
        text = self.text(key)
        return None if text is None else base / text


@dataclass(frozen=True)
class SuspectConfig:
    """The settings of one remote suspect (module docstring).

    Build it with :meth:`from_file`, :meth:`from_json` or
    :meth:`from_mapping` (which check every member), then :meth:`build`
    the adapter. Fields hold the defaults of the adapters where the config
    is silent.
    """

    url: str
    protocol: str = "oip"
    model: str | None = None
    model_version: str | None = None
    input_name: str = "input-0"
    datatype: str = "FP32"
    output: Output = "argmax"
    output_name: str | None = None
    requested_outputs: tuple[str, ...] = ()
    request: Any = None
    answers: str | None = None
    answer: str = ""
    tokenizer: Path | None = None
    system: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_dimension: bool = True
    input_shape: tuple[int, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_response_bytes: int = MAX_RESPONSE_BYTES
    tls: TlsFiles | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers that are no credential (``CREDENTIAL_HEADERS`` are refused)."""
    headers_from_env: Mapping[str, str] = field(default_factory=dict)
    """Header name to the environment variable holding its value."""
    headers_file: Path | None = None
    """A JSON object of header names to values, readable by its owner only."""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SuspectConfig:
        """The config in the file ``path``; relative paths in it are read
        from the file's folder.

        Raises:
            SecmarkError: the file cannot be read.
            EncodingError: it is no valid config (module docstring).
        """
        data = read_regular_file(path, max_size=MAX_CONFIG_SIZE, what="suspect config")
        return cls.from_json(data, base=Path(path).parent, source=f"suspect config {path}")

    @classmethod
    def from_json(cls, data: bytes, *, base: Path, source: str = "suspect config") -> SuspectConfig:
        """The config in ``data`` (strict JSON, module docstring).

        Raises:
            EncodingError: invalid JSON, or no valid config.
        """
        if len(data) > MAX_CONFIG_SIZE:
            raise EncodingError(f"{source} is larger than {MAX_CONFIG_SIZE} bytes")
        try:
            value = load_json(data, source, finite=True)
        except ValueError as error:
            raise EncodingError(str(error)) from None
        if not isinstance(value, dict):
            raise EncodingError(f"{source} must be a JSON object, not {_type_name(value)}")
        return cls.from_mapping(value, base=base, name=lambda key: f"{source}: {key!r}")

    @classmethod
    def from_mapping(
        cls,
        value: Mapping[str, Any],
        *,
        base: Path,
        name: Callable[[str], str] = lambda key: repr(key),
    ) -> SuspectConfig:
        """The config of the members in ``value`` (as parsed from JSON);
        ``name(key)`` is how an error names a member (``--retries`` for a
        command-line flag); relative paths are read from ``base``.

        Raises:
            EncodingError: an unknown member, one of the other protocol, or
                a member of the wrong type or out of range.
        """
        read = _Reader(value, name)
        protocol = read.choice("protocol", PROTOCOLS) or "oip"
        allowed = _COMMON | _ONLY[protocol]
        for key in value:
            if key not in allowed:
                other = next((p for p in PROTOCOLS if key in _ONLY[p]), None)
                rule = (
                    f"applies to protocol {other!r} only, and this suspect's is {protocol!r}"
                    if other
                    else "is not a setting of a suspect (see specs/suspects.md)"
                )
                raise EncodingError(f"{name(key)} {rule}")
        url = read.text("url")
        if url is None:
            raise read.fail("url", "is missing: name the endpoint")
        read.text("description", _MAX_DESCRIPTION)
        fields: dict[str, Any] = {"url": url, "protocol": protocol}
        if protocol in OPENAI_PROTOCOLS:
            for key in _NOT_OPENAI:
                if key in value:
                    raise read.fail(
                        key,
                        "does not apply to a language model: it answers text, one prompt a request",
                    )
            model = read.text("model")
            if model is None:
                raise read.fail("model", "is missing: an openai suspect names its model")
            tokenizer = read.path("tokenizer", base)
            if tokenizer is None:
                raise read.fail(
                    "tokenizer", "is missing: the tokenizer.json answers are re-encoded with"
                )
            fields |= {"model": model, "tokenizer": tokenizer}
            fields["system"] = read.text("system", _MAX_SYSTEM)
        elif protocol == "oip":
            model = read.text("model")
            if model is None:
                raise read.fail("model", "is missing: an oip suspect names its model")
            fields["model"] = model
            fields["model_version"] = read.text("model_version")
            fields["input_name"] = read.text("input_name")
            fields["datatype"] = read.choice("datatype", tuple(OIP_DATATYPES))
            fields["output_name"] = read.text("output_name")
            fields["requested_outputs"] = read.texts("requested_outputs", MAX_REQUESTED_OUTPUTS)
        else:
            if "request" not in value:
                raise read.fail("request", "is missing: the template of a request's body")
            if "answers" not in value:
                raise read.fail("answers", "is missing: the JSON pointer to the answers")
            try:
                check_template(value["request"])
            except SuspectError as error:
                raise read.fail("request", f"is no request template: {error}") from None
            fields["request"] = value["request"]
            for key in ("answers", "answer"):
                if key not in value:
                    continue
                if not isinstance(value[key], str):
                    raise read.fail(key, f"must be a string, not {_type_name(value[key])}")
                try:
                    JsonPointer(value[key])
                except SuspectError as error:
                    raise read.fail(key, f"is no JSON pointer: {error}") from None
                fields[key] = value[key]
        fields["output"] = read.choice("output", OUTPUTS)
        fields["batch_size"] = read.integer("batch_size", 1, MAX_BATCH_SIZE)
        fields["batch_dimension"] = read.boolean("batch_dimension")
        if fields["batch_dimension"] is False and fields["batch_size"] not in (None, 1):
            raise read.fail(
                "batch_size",
                "must be 1 or absent for a model without a batch dimension (one input per request)",
            )
        fields["input_shape"] = read.shape("input_shape")
        fields["timeout"] = read.number("timeout", 0, MAX_TIMEOUT, positive=True)
        fields["retries"] = read.integer("retries", 0, MAX_RETRIES)
        fields["backoff"] = read.number("backoff", 0, MAX_BACKOFF, positive=False)
        fields["max_response_bytes"] = read.integer("max_response_bytes", 1, MAX_RESPONSE_BYTES)
        fields["tls"] = _tls(read, base)
        fields["headers"] = read.mapping("headers", secret=False)
        for header in fields["headers"]:
            if header.lower() in CREDENTIAL_HEADERS:
                raise read.fail(
                    "headers",
                    f"must not hold {header!r}: a credential comes from headers_from_env or "
                    "headers_file, never from the config itself",
                )
        fields["headers_from_env"] = read.mapping("headers_from_env", secret=False)
        for header, variable in fields["headers_from_env"].items():
            if not _ENV_NAME.fullmatch(variable):
                raise read.fail(
                    "headers_from_env",
                    f"member {header!r:.80} must name an environment variable "
                    "(letters, digits and '_', not starting with a digit)",
                )
        fields["headers_file"] = read.path("headers_file", base)
        return cls(**{key: item for key, item in fields.items() if item is not None})

    def reference(self) -> str:
        """The reference of what the adapter will query, computed without
        sending anything: ``oip:`` or ``json:`` and the canonical URL, or for
        an openai protocol ``openai:``, the canonical URL posted to, ``#`` and
        ``model``.

        Raises:
            SuspectError: the URL, model name or version has no canonical form.
        """
        if self.protocol == "oip":
            return "oip:" + oip_model_url(self.url, self.model or "", self.model_version)
        if self.protocol == "openai-completions":
            return openai_model_reference(self.url, COMPLETIONS_PATH, self.model or "")
        if self.protocol == "openai-chat":
            return openai_model_reference(self.url, CHAT_PATH, self.model or "")
        return "json:" + json_endpoint_url(self.url)

    def resolve_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every header sent: ``headers``, then those from the environment
        and from the headers file.

        Raises:
            KeyMaterialError: a variable unset or empty, a headers file
                readable by group or others.
            EncodingError: a headers file that is no JSON object of strings.
            SecmarkError: the headers file cannot be read.
            SuspectError: a header given twice or not sendable.
        """
        environ = os.environ if environ is None else environ
        sources: list[Mapping[str, str]] = [self.headers]
        from_env = {}
        for header, variable in self.headers_from_env.items():
            if not environ.get(variable):
                raise KeyMaterialError(
                    f"the environment variable {variable} (for header {header!r}) is not set "
                    "or empty"
                )
            from_env[header] = environ[variable]
        sources.append(from_env)
        if self.headers_file is not None:
            sources.append(read_headers_file(self.headers_file))
        merged: dict[str, str] = {}
        seen: set[str] = set()
        for source in sources:
            for header, text in source.items():
                if header.lower() in seen:
                    raise SuspectError(f"header {header!r} is given twice")
                seen.add(header.lower())
                merged[header] = text
        return check_headers(merged)

    def build(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        answer_length: int | None = None,
        responses: ResponseList | None = None,
        egress: EgressPolicy | None = None,
    ) -> OipSuspect | JsonApiSuspect | OpenAICompletionsSuspect | OpenAIChatSuspect:
        """The adapter, with the headers of :meth:`resolve_headers` (reading
        ``environ``, default ``os.environ``) and ``credentials`` (headers
        the caller holds). Nothing is sent. An openai suspect is asked for
        ``answer_length`` tokens (:func:`~secmark.models.prompts.answer_length`
        of the commitment's labels) and answers that many token ids, or with
        ``responses`` (a commitment's revealed response list) the index of
        the response each answer gives. With ``egress``, requests go only to
        the addresses it permits (:mod:`secmark.models.egress`).

        Raises:
            SuspectError: an invalid setting (as the adapters say), a header
                given twice, or an openai suspect without ``answer_length``
                or whose tokenizer cannot be read.
            KeyMaterialError, EncodingError, SecmarkError: as
                :meth:`resolve_headers`.
        """
        headers = self.resolve_headers(environ)
        for header, text in (credentials or {}).items():
            if header.lower() in {h.lower() for h in headers}:
                raise SuspectError(f"header {header!r} is given twice")
            headers[header] = text
        if self.protocol in OPENAI_PROTOCOLS:
            return self._build_openai(headers, answer_length, responses, egress)
        common: dict[str, Any] = {
            "output": self.output,
            "batch_size": self.batch_size,
            "batch_dimension": self.batch_dimension,
            "input_shape": self.input_shape,
            "timeout": self.timeout,
            "retries": self.retries,
            "backoff": self.backoff,
            "max_response_bytes": self.max_response_bytes,
            "headers": headers,
            "tls": self.tls,
            "egress": egress,
        }
        if self.protocol == "oip":
            return OipSuspect(
                self.url,
                self.model or "",
                model_version=self.model_version,
                input_name=self.input_name,
                datatype=self.datatype,
                output_name=self.output_name,
                requested_outputs=self.requested_outputs or None,
                **common,
            )
        return JsonApiSuspect(
            self.url, request=self.request, answers=self.answers or "", answer=self.answer, **common
        )

    def _build_openai(
        self,
        headers: dict[str, str],
        answer_length: int | None,
        responses: ResponseList | None,
        egress: EgressPolicy | None,
    ) -> OpenAICompletionsSuspect | OpenAIChatSuspect:
        if answer_length is None:
            raise SuspectError(
                "a language-model suspect answers the commitment's target tokens or responses: "
                "it is queried for a commitment with token or response labels"
            )
        if self.tokenizer is None or self.model is None:
            raise SuspectError("a language-model suspect names its model and tokenizer")
        common: dict[str, Any] = {
            "model": self.model,
            "tokenizer": LMTokenizer.from_file(self.tokenizer),
            "length": answer_length,
            "responses": responses,
            "timeout": self.timeout,
            "retries": self.retries,
            "backoff": self.backoff,
            "max_response_bytes": self.max_response_bytes,
            "headers": headers,
            "tls": self.tls,
            "egress": egress,
        }
        if self.protocol == "openai-chat":
            return OpenAIChatSuspect(self.url, system=self.system, **common)
        return OpenAICompletionsSuspect(self.url, **common)


def _tls(read: _Reader, base: Path) -> TlsFiles | None:
    if "tls" not in read.value:
        return None
    value = read.value["tls"]
    if not isinstance(value, dict):
        raise read.fail("tls", f"must be an object, not {_type_name(value)}")
    inner = _Reader(value, lambda key: f"{read.name('tls')}[{key!r}]")
    for key in value:
        if key not in _TLS_KEYS:
            raise inner.fail(key, f"is not a TLS setting ({', '.join(_TLS_KEYS)})")
    files = {key: inner.path(key, base) for key in _TLS_KEYS}
    if files["key_file"] is not None and files["cert_file"] is None:
        raise inner.fail("key_file", "needs its certificate, cert_file")
    return TlsFiles(**files)


def read_headers_file(path: Path) -> dict[str, str]:
    """The headers in ``path``: a JSON object of names to string values,
    in a file that group and others cannot read.

    Raises:
        KeyMaterialError: the file is readable by group or others.
        EncodingError: no such object (values are never quoted).
        SecmarkError: the file cannot be read.
    """
    data = read_regular_file(path, max_size=MAX_CONFIG_SIZE, what="headers file")
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise SecmarkError(f"cannot read headers file {path}: {error.strerror}") from None
    if mode & 0o077:
        raise KeyMaterialError(
            f"headers file {path} holds credentials and is readable by others; chmod 600 it"
        )
    try:
        value = load_json(data, f"headers file {path}", finite=True)
    except ValueError:
        # The parser's message may quote the text: a credential.
        raise EncodingError(f"headers file {path} is not strict JSON") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise EncodingError(f"headers file {path} must be a JSON object of names to strings")
    return value
