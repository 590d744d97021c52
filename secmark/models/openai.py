"""Language-model suspects behind OpenAI-compatible completion and chat APIs.

Most served language models (vLLM, TGI, llama.cpp, ``transformers serve``,
hosted APIs) answer the OpenAI ``/v1/completions`` and
``/v1/chat/completions`` requests. A language-model commitment's prompts
are token ids (``TokensFamily``) or natural questions from a committed pool
(``uint8`` question items, :mod:`secmark.models.prompts`), and its target
responses token ids (``TokenLabels``) or committed strings
(``ResponseLabels``). An API takes and answers text, so both adapters go
through text both ways, one prompt per request::

    prompt ids --decode--> text --POST--> answer text --answer_ids--> L ids
    question item --UTF-8--> text --POST--> answer text --index_of--> response index

    POST {base}/v1/completions
         {"model": M, "prompt": TEXT, "max_tokens": L, "temperature": 0, "seed": 0}
    -> 200 {"choices": [{"text": ANSWER, ...}], ...}

    POST {base}/v1/chat/completions
         {"model": M, "messages": [{"role": "system", "content": SYSTEM},
                                   {"role": "user", "content": TEXT}],
          "max_tokens": L, "temperature": 0, "seed": 0}
    -> 200 {"choices": [{"message": {"content": ANSWER, ...}, ...}], ...}

Decoding is greedy (temperature 0; the seed for servers that sample
anyway). The answer counts as
:meth:`~secmark.models.tokenizer.LMTokenizer.answer_ids` of its text (the
commitment's tokenizer), or for committed responses as the index of the
response it gives (-1 for none; ``max_tokens`` is then the label space's):
:class:`~secmark.models.prompts.AnswerReading`, a function of the text
alone, so the null bound of the label space holds whatever the suspect
answers.

The suspect is a party to the dispute and everything it sends is
untrusted. An answer is accepted only if:

1. the HTTP status is 200, after the retries, waits and halts of
   :mod:`secmark.models.http`, the body within ``max_response_bytes`` and
   ``timeout`` seconds in all;
2. the Content-Type is JSON and the body strict JSON (UTF-8, complete, no
   ``NaN``, no duplicate keys);
3. the body is an object whose ``choices`` is a list of exactly one object
   (one answer was asked for: several would leave the choice to the
   arbiter);
4. that choice's ``text`` (completions) or ``message.content`` (chat) is a
   string of valid Unicode, at most :data:`MAX_CHARS_PER_TOKEN` characters
   per token asked for.

A response of the wrong form whatever the prompt (another Content-Type
than JSON, no object, no list of one choice, no text member) halts the
adapter (:mod:`secmark.models.http`): asking again would be billed and fail
the same way. An answer that may concern one prompt only (a body that is no
strict JSON, an ``error`` object instead of choices, a chat answer without
text, as a refusal or a tool call gives, a text too long or not Unicode)
fails that prompt alone. Every failure is a
:class:`~secmark.errors.SuspectError` prefixed with the reference; no
answer is ever made up for a prompt that failed.

The reference (``describe()``) is ``openai:``, the canonical URL requests
are posted to, ``#`` and the model (:func:`openai_model_reference`,
``specs/dispute.md`` 8.3): one endpoint serves many models, told apart by
the ``model`` member of the body, so the reference names both, and the
``model`` member of every request is exactly the reference's model text.
The tokenizer, the system prompt and the headers say *how* to ask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import numpy as np

from secmark.errors import EncodingError, SuspectError
from secmark.messages.responses import ResponseList
from secmark.models.base import check_answers
from secmark.models.egress import EgressPolicy
from secmark.models.http import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    MAX_RESPONSE_BYTES,
    HttpSuspect,
    ResponseFormError,
    TlsFiles,
    check_media_type,
    load_json,
)
from secmark.models.json_api import check_sent_as_named, json_endpoint_url
from secmark.models.prompts import AnswerReading, prompt_texts
from secmark.models.reference import CHAT_PATH, COMPLETIONS_PATH, MAX_MODEL_NAME, openai_reference
from secmark.models.tokenizer import LMTokenizer

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "DEFAULT_GENERATION_TIMEOUT",
    "MAX_ANSWER_TOKENS",
    "MAX_CHARS_PER_TOKEN",
    "MAX_MODEL_NAME",
    "MAX_SYSTEM_PROMPT",
    "OpenAIChatSuspect",
    "OpenAICompletionsSuspect",
    "openai_endpoint_url",
    "openai_model_reference",
]

DEFAULT_GENERATION_TIMEOUT = 60.0
"""Seconds one request may take: a large model queued behind others takes
far longer to generate a few tokens than a classifier takes to answer."""

MAX_ANSWER_TOKENS = 4096
"""Most target tokens asked for (``max_tokens``): labels of a few dozen
tokens decide, and each generated token may be billed."""

MAX_CHARS_PER_TOKEN = 1024
"""Longest answer text per token asked for. Far above any vocabulary's
longest token (runs of white space in code tokenizers reach a few hundred
characters); a longer text ignored ``max_tokens``, and encoding it would
cost the arbiter time for nothing."""

MAX_SYSTEM_PROMPT = 64 * 1024
"""Longest system prompt sent, in characters."""


def openai_endpoint_url(base_url: str, path: str) -> str:
    """The canonical URL of ``path`` (:data:`COMPLETIONS_PATH` or
    :data:`CHAT_PATH`) on the server whose root is ``base_url``, as in a
    ``json:`` reference.

    ``base_url`` is the server root (``https://api.example.com``), without
    the ``/v1`` OpenAI's own clients put in theirs: the adapters add it.

    Raises:
        SuspectError: ``base_url`` has no canonical form (credentials, a
            query, dot segments, ...), or it ends in ``/v1``.
    """
    base = json_endpoint_url(base_url).rstrip("/")
    if base.endswith("/v1"):
        raise SuspectError(
            f"base URL {base!r} ends in /v1: give the server root, the adapter posts to "
            f"<root>{path}"
        )
    return json_endpoint_url(base + path)


def openai_model_reference(base_url: str, path: str, model: str) -> str:
    """``openai:`` and the canonical URL of ``path`` (:data:`COMPLETIONS_PATH`
    or :data:`CHAT_PATH`) on the server whose root is ``base_url``
    (:func:`openai_endpoint_url`), ``#`` and ``model``: the reference of the
    adapter that sends ``model`` there.

    Raises:
        SuspectError: as :func:`openai_endpoint_url`, or a model name that
            breaks the rules of :func:`~secmark.models.reference.openai_reference`
            (1 to :data:`MAX_MODEL_NAME` printable characters in NFC, no
            surrounding white space), or a reference longer than a claim holds.
    """
    endpoint = openai_endpoint_url(base_url, path)
    try:
        return openai_reference(endpoint, model)
    except EncodingError as error:
        raise SuspectError(str(error)) from None


def _check_text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise SuspectError(f"{name} must be a string of 1 to {limit} characters")
    return value


class _OpenAISuspect(HttpSuspect):
    """What both OpenAI adapters share: settings, the prompt sent, the
    checks of the answer (module docstring). A subclass names its
    :attr:`_PATH`, builds its request body and finds the answer text in a
    choice."""

    __slots__ = ("_length", "_model", "_reading", "_tokenizer")

    _PATH: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        tokenizer: LMTokenizer,
        length: int,
        responses: ResponseList | None = None,
        timeout: float = DEFAULT_GENERATION_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        client: httpx.Client | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        egress: EgressPolicy | None = None,
    ) -> None:
        endpoint = openai_endpoint_url(base_url, self._PATH)
        check_sent_as_named(endpoint)
        self._reading = AnswerReading(
            tokenizer, length, limit=MAX_ANSWER_TOKENS, responses=responses
        )
        self._model = _check_text(model, "model", MAX_MODEL_NAME)
        reference = openai_model_reference(base_url, self._PATH, self._model)
        self._tokenizer = tokenizer
        self._length = length
        self._connect(
            endpoint,
            reference=reference,
            batch_size=1,
            batch_dimension=False,
            input_shape=None,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            client=client,
            tls=tls,
            max_response_bytes=max_response_bytes,
            egress=egress,
        )

    @property
    def responses(self) -> ResponseList | None:
        """The committed list answers are read against; None for token ids."""
        return self._reading.responses

    @property
    def length(self) -> int:
        """Target tokens per answer: ``max_tokens``, and the ids per answer."""
        return self._length

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        """Refuse anything but a 2-D batch of token ids of the tokenizer or of
        question items (each row is checked again when it is sent)."""
        if batch.dtype == np.uint8:
            prompt_texts(batch, self._tokenizer, self._reference)
            return batch
        if batch.ndim != 2 or batch.dtype.kind not in "iu":
            raise SuspectError(
                f"{self._reference}: prompts must be a 2-D array of integer token ids, "
                f"got shape {batch.shape} of dtype {batch.dtype}"
            )
        if batch.shape[1] == 0:
            raise SuspectError(f"{self._reference}: a prompt must hold at least one token id")
        vocab = self._tokenizer.vocab_size
        if (batch < 0).any() or (batch >= vocab).any():
            raise SuspectError(f"{self._reference}: prompt token ids must lie in [0, {vocab})")
        return batch

    def _infer(self, chunk: np.ndarray) -> np.ndarray:
        """One request for the one prompt of ``chunk``: its ``length`` answer ids."""
        (prompt,) = prompt_texts(chunk, self._tokenizer, self._reference)
        body = json.dumps(
            {
                "model": self._model,
                **self._prompt(prompt),
                "max_tokens": self._length,
                "temperature": 0,
                "seed": 0,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        content_type, content = self._transport.post(body)
        try:
            text = self._answer_text(content_type, content)
        except SuspectError as exc:
            message = f"{self._reference}: {exc}"
            if isinstance(exc, ResponseFormError):
                self._transport.halt(message)
            raise SuspectError(message) from None
        return check_answers(
            np.array([self._reading.read(text)], dtype=np.int64),
            rows=1,
            output="labels",
            row_shape=self._reading.row_shape,
            source=self._reference,
        )

    def _answer_text(self, content_type: str, content: bytes) -> str:
        """Steps 2 to 4 of the module docstring: the one answer text."""
        check_media_type(content_type, content, self._transport)
        try:
            document = load_json(content, "the response")
        except ValueError as exc:  # a body cut short, perhaps: this prompt's failure
            raise SuspectError(str(exc)) from None
        if not isinstance(document, dict):
            raise ResponseFormError("the response is not a JSON object")
        if "choices" not in document and "error" in document:
            # An error object in a 200: about this prompt, perhaps.
            raise SuspectError(
                f"the server answered an error: {self._transport.error_text(content)}"
            )
        choices = document.get("choices")
        if not isinstance(choices, list):
            raise ResponseFormError("the response has no list 'choices'")
        if len(choices) != 1:
            raise ResponseFormError(
                f"the response holds {len(choices)} choices; one answer was asked for"
            )
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ResponseFormError("the choice of the response is not an object")
        text = self._choice_text(choice)
        limit = self._length * MAX_CHARS_PER_TOKEN
        if len(text) > limit:
            raise SuspectError(
                f"the answer has {len(text)} characters, more than {limit} for "
                f"{self._length} tokens (max_tokens was ignored)"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SuspectError("the answer is not valid Unicode (a lone surrogate)") from None
        return text

    def _prompt(self, prompt: str) -> dict[str, Any]:
        """The members of the request body that carry ``prompt``."""
        raise NotImplementedError

    def _choice_text(self, choice: dict[str, Any]) -> str:
        """The answer text of the response's one choice (ResponseFormError if none)."""
        raise NotImplementedError


class OpenAICompletionsSuspect(_OpenAISuspect):
    """A language model behind an OpenAI-compatible ``/v1/completions`` API
    (module docstring): the prompt as text, the answer ``choices[0].text``.

    ``base_url`` is the server root; ``model`` the ``model`` member sent;
    ``tokenizer`` the commitment's, which decodes the prompt ids and encodes
    the answer text; ``length`` the target tokens L (``max_tokens``, and the
    ids of each answer). ``timeout``, ``retries``, ``backoff``, ``headers``,
    ``tls``, ``client``, ``max_response_bytes`` and ``egress`` are as for
    :class:`~secmark.models.JsonApiSuspect`; :attr:`requests_sent` counts
    the requests that may have reached the server.

    :meth:`predict` takes an ``(N, prompt_length)`` integer array of token
    ids, or an ``(N, B)`` ``uint8`` array of question items, and returns
    ``(N, length)`` int64 answer ids, one request per prompt (servers differ
    in whether, and how, they take a list of prompts). With ``responses``
    (the commitment's revealed list) ``length`` is its ``max_tokens`` and
    the answers are ``(N,)`` response indices, -1 for none. ``describe()`` is ``openai:``, the canonical URL of
    ``{base_url}/v1/completions``, ``#`` and ``model``
    (:func:`openai_model_reference`).

    Raises:
        SuspectError: at construction, a base URL without a canonical form or
            ending in ``/v1``, a model name no reference can hold, or another
            invalid setting; at
            :meth:`predict`, a batch that is not 2-D integer ids of the
            tokenizer, and every failure of the module docstring.
    """

    __slots__ = ()

    _PATH: ClassVar[str] = COMPLETIONS_PATH

    def _prompt(self, prompt: str) -> dict[str, Any]:
        return {"prompt": prompt}

    def _choice_text(self, choice: dict[str, Any]) -> str:
        text = choice.get("text")
        if not isinstance(text, str):
            raise ResponseFormError("the choice of the response has no string 'text'")
        return text


class OpenAIChatSuspect(_OpenAISuspect):
    """A language model behind an OpenAI-compatible ``/v1/chat/completions``
    API (module docstring): the prompt as the text of one user message, after
    ``system`` as a system message when given; the answer
    ``choices[0].message.content``.

    The settings, :meth:`predict` and ``describe()`` are those of
    :class:`OpenAICompletionsSuspect`, with ``{base_url}/v1/chat/completions``;
    ``system`` is at most :data:`MAX_SYSTEM_PROMPT` characters. A message
    whose content is not a string (``null`` for a refusal or a tool call)
    fails its prompt alone; a choice without a message halts the adapter.

    Raises:
        SuspectError: as :class:`OpenAICompletionsSuspect`, and a ``system``
            that is not a non-empty string within the bound.
    """

    __slots__ = ("_system",)

    _PATH: ClassVar[str] = CHAT_PATH

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        tokenizer: LMTokenizer,
        length: int,
        responses: ResponseList | None = None,
        system: str | None = None,
        timeout: float = DEFAULT_GENERATION_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        client: httpx.Client | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._system = None if system is None else _check_text(system, "system", MAX_SYSTEM_PROMPT)
        super().__init__(
            base_url,
            model=model,
            tokenizer=tokenizer,
            length=length,
            responses=responses,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
            tls=tls,
            client=client,
            max_response_bytes=max_response_bytes,
            egress=egress,
        )

    def _prompt(self, prompt: str) -> dict[str, Any]:
        messages = [] if self._system is None else [{"role": "system", "content": self._system}]
        return {"messages": [*messages, {"role": "user", "content": prompt}]}

    def _choice_text(self, choice: dict[str, Any]) -> str:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise ResponseFormError("the choice of the response has no object 'message'")
        content = message.get("content")
        if not isinstance(content, str):
            refusal = message.get("refusal")
            why = (
                f"; it refused: {self._transport.summarise(refusal)}"
                if isinstance(refusal, str)
                else ""
            )
            raise SuspectError(f"the message of the response has no text content{why}")
        return content
