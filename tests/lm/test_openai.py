"""OpenAI-compatible suspects: against a real ``transformers serve``, and a
stub transport for what no honest server answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.messages.responses import NO_RESPONSE, ResponseList
from secmark.models.openai import (
    MAX_CHARS_PER_TOKEN,
    OpenAIChatSuspect,
    OpenAICompletionsSuspect,
    openai_endpoint_url,
)
from secmark.models.prompts import question_item
from secmark.models.reference import (
    canonical_reference,
    openai_reference,
    split_openai_reference,
)
from secmark.models.tokenizer import LMTokenizer
from secmark.models.transformers_lm import TransformersSuspect
from tests.lm.fixtures import LmModel, LmServer

LENGTH = 4
MODEL_SAFE = "!$&'()*+,=:@/"
"""What a model name is written with plain in its reference (specs/dispute.md 8.3)."""
SYSTEM = " def"
"""A system prompt after which the untrained test model answers words, not
only special tokens (which a server drops): the comparison then means something."""


def _in_process(lm_model: LmModel, **options: Any) -> TransformersSuspect:
    return TransformersSuspect(
        lm_model.folder, tokenizer=lm_model.tokenizer, length=LENGTH, via_text=True, **options
    )


def _reference(lm_server: LmServer, path: str) -> str:
    """The reference of the served model through ``path``: its folder is the model name."""
    return f"openai:{lm_server.base_url}{path}#{quote(lm_server.model, safe=MODEL_SAFE)}"


def _not_all_padding(answers: np.ndarray, tokenizer: LMTokenizer) -> bool:
    return bool((answers != tokenizer.answer_ids("", 1)[0]).sum() >= answers.size // 4)


# -- against transformers serve ---------------------------------------------------


def test_completions_answer_as_the_model_does_in_process(
    lm_server: LmServer, lm_model: LmModel
) -> None:
    prompts = lm_model.prompts(10, seed=1)
    expected = _in_process(lm_model).predict(prompts)  # while the server starts
    with OpenAICompletionsSuspect(
        lm_server.base_url, model=lm_server.model, tokenizer=lm_model.tokenizer, length=LENGTH
    ) as suspect:
        answers = suspect.predict(prompts)
        assert suspect.requests_sent == len(prompts)  # one request per prompt
        assert suspect.describe() == _reference(lm_server, "/v1/completions")
    assert answers.dtype == np.int64 and answers.shape == (len(prompts), LENGTH)
    assert _not_all_padding(answers, lm_model.tokenizer)
    np.testing.assert_array_equal(answers, expected)


@pytest.mark.parametrize("system", [None, SYSTEM])
def test_chat_answers_as_the_model_does_in_process(
    lm_server: LmServer, lm_model: LmModel, system: str | None
) -> None:
    prompts = lm_model.prompts(10, seed=2)
    expected = _in_process(lm_model, chat=True, system=system).predict(prompts)
    with OpenAIChatSuspect(
        lm_server.base_url,
        model=lm_server.model,
        tokenizer=lm_model.tokenizer,
        length=LENGTH,
        system=system,
    ) as suspect:
        answers = suspect.predict(prompts)
        assert suspect.requests_sent == len(prompts)
        assert suspect.describe() == _reference(lm_server, "/v1/chat/completions")
    assert _not_all_padding(answers, lm_model.tokenizer)
    np.testing.assert_array_equal(answers, expected)


def test_a_model_the_server_does_not_serve_is_an_error(
    lm_server: LmServer, lm_model: LmModel
) -> None:
    with (
        OpenAICompletionsSuspect(
            lm_server.base_url, model="no/such-model", tokenizer=lm_model.tokenizer, length=1
        ) as suspect,
        pytest.raises(
            SuspectError,
            match=r"^openai:http://127\.0\.0\.1:\d+/v1/completions#no/such-model: HTTP",
        ),
    ):
        suspect.predict(lm_model.prompts(1, seed=3))


# -- what is sent ----------------------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _json(document: Any) -> bytes:
    """``document`` as JSON with every non-ASCII character escaped (lone
    surrogates included, which strict JSON readers must refuse)."""
    return json.dumps(document).encode()


def _completion(text: Any) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text}]}


def _chat(content: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def test_requests_are_greedy_and_carry_the_decoded_prompt(lm_model: LmModel) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=_chat(" hello world"))
        return httpx.Response(200, json=_completion(" hello world"))

    prompts = lm_model.prompts(2, seed=4)
    headers = {"Authorization": "Bearer sk-test-0123456789"}
    with _client(handler) as client:
        completions = OpenAICompletionsSuspect(
            "https://api.example.com/",
            model="m-1",
            tokenizer=lm_model.tokenizer,
            length=3,
            headers=headers,
            client=client,
        )
        chat = OpenAIChatSuspect(
            "https://api.example.com",
            model="m-1",
            tokenizer=lm_model.tokenizer,
            length=3,
            system="Be brief.",
            client=client,
        )
        expected = np.array([lm_model.tokenizer.answer_ids("hello world", 3)] * 2)
        np.testing.assert_array_equal(completions.predict(prompts), expected)
        np.testing.assert_array_equal(chat.predict(prompts), expected)
    assert [str(r.url) for r in seen] == ["https://api.example.com/v1/completions"] * 2 + [
        "https://api.example.com/v1/chat/completions"
    ] * 2
    assert seen[0].headers["authorization"] == headers["Authorization"]
    texts = [lm_model.tokenizer.decode(row.tolist()) for row in prompts]
    greedy = {"model": "m-1", "max_tokens": 3, "temperature": 0, "seed": 0}
    assert [json.loads(r.content) for r in seen[:2]] == [
        {**greedy, "prompt": text} for text in texts
    ]
    assert [json.loads(r.content) for r in seen[2:]] == [
        {
            **greedy,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": text},
            ],
        }
        for text in texts
    ]


QUESTIONS = ("What is the capital of France?", "Où est la gare ?")
RESPONSES = ResponseList(("Paris, of course.", "Near the river.", "I cannot say."))


def test_questions_are_sent_as_their_text_and_answers_read_as_responses(
    lm_model: LmModel,
) -> None:
    """A question item is sent as its text, byte for byte; with a committed
    list, the answer is the index of the response its text gives (after
    leading white space, in NFC, with anything after it), or -1."""
    replies = iter(["\n Paris, of course. And more words", "Near the river", ""])
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=_chat(next(replies)))

    items = np.stack([question_item(q, 40) for q in (*QUESTIONS, QUESTIONS[0])])
    with _client(handler) as client:
        suspect = OpenAIChatSuspect(
            "https://api.example.com",
            model="m",
            tokenizer=lm_model.tokenizer,
            length=12,
            responses=RESPONSES,
            client=client,
        )
        answers = suspect.predict(items)
    assert answers.dtype == np.int64 and answers.tolist() == [0, NO_RESPONSE, NO_RESPONSE]
    assert [body["messages"][-1]["content"] for body in seen] == [*QUESTIONS, QUESTIONS[0]]
    assert {body["max_tokens"] for body in seen} == {12}


def test_an_item_that_is_no_question_is_refused_before_sending(lm_model: LmModel) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    bad = np.frombuffer(b"Why?\0x\0\0", dtype=np.uint8)[None]
    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "https://api.example.com",
            model="m",
            tokenizer=lm_model.tokenizer,
            length=2,
            client=client,
        )
        with pytest.raises(SuspectError, match="U\\+0000"):
            suspect.predict(bad)


def test_questions_and_responses_through_a_real_server_as_in_process(
    lm_server: LmServer, lm_model: LmModel
) -> None:
    """The served model and the same folder in process read a question and
    give the same response index (whatever it is, for an untrained model)."""
    items = np.stack([question_item(q, 40) for q in QUESTIONS])
    texts = _in_process(lm_model, chat=True).predict(items)  # token answers, to make a list
    words = [lm_model.tokenizer.decode([int(i) for i in row]).strip() for row in texts]
    listed = ResponseList(tuple(dict.fromkeys([w for w in words if w] + ["zz unlikely zz"])))
    expected = _in_process(lm_model, chat=True, responses=listed).predict(items)
    with OpenAIChatSuspect(
        lm_server.base_url,
        model=lm_server.model,
        tokenizer=lm_model.tokenizer,
        length=LENGTH,
        responses=listed,
    ) as suspect:
        answers = suspect.predict(items)
    np.testing.assert_array_equal(answers, expected)
    assert (answers != NO_RESPONSE).any()  # the comparison means something


@pytest.mark.parametrize("model", ["meta-llama/Llama-3.1-8B", "a#b c", "caf\u00e9%41", "m"])
@pytest.mark.parametrize("adapter", [OpenAICompletionsSuspect, OpenAIChatSuspect])
def test_the_model_sent_is_the_model_the_reference_names(
    lm_model: LmModel, adapter: type[OpenAICompletionsSuspect], model: str
) -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=_chat(" a"))
        return httpx.Response(200, json=_completion(" a"))

    with _client(handler) as client:
        suspect = adapter(
            "http://127.0.0.1:9", model=model, tokenizer=lm_model.tokenizer, length=1, client=client
        )
        suspect.predict(lm_model.prompts(2, seed=12))
        reference = suspect.describe()
    assert canonical_reference(reference) == reference
    named = split_openai_reference(reference)[2]
    assert [body["model"] for body in sent] == [named, named] == [model, model]


@pytest.mark.parametrize("model", [" m", "m\n", "e\u0301", "\u200bm", "m" * 1001])
def test_a_model_no_claim_could_name_is_refused_before_sending(
    lm_model: LmModel, model: str
) -> None:
    with pytest.raises(SuspectError, match="model name|characters"):
        OpenAICompletionsSuspect(
            "http://127.0.0.1:9", model=model, tokenizer=lm_model.tokenizer, length=1
        )


def test_describe_is_a_canonical_claimable_reference(lm_model: LmModel) -> None:
    suspect = OpenAIChatSuspect(
        "HTTPS://API.Example.COM:443/serving/",
        model="m",
        tokenizer=lm_model.tokenizer,
        length=1,
    )
    reference = suspect.describe()
    assert reference == "openai:https://api.example.com/serving/v1/chat/completions#m"
    assert canonical_reference(reference) == reference
    assert reference == openai_reference(
        openai_endpoint_url("https://api.example.com/serving", "/v1/chat/completions"), "m"
    )
    suspect.close()


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("https://api.openai.com/v1", "ends in /v1: give the server root"),
        ("https://user:secret@api.example.com", "credentials"),
        ("https://api.example.com/?key=1", "query"),
        ("ftp://api.example.com", r"must be http\(s\)://"),
    ],
)
def test_base_urls_without_one_reference_are_refused(
    lm_model: LmModel, base_url: str, message: str
) -> None:
    with pytest.raises(SuspectError, match=message) as caught:
        OpenAICompletionsSuspect(base_url, model="m", tokenizer=lm_model.tokenizer, length=1)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 0}, "length must be an integer"),
        ({"length": True}, "length must be an integer"),
        ({"model": ""}, "model must be a string"),
        ({"system": ""}, "system must be a string"),
        ({"tokenizer": "gpt2"}, "tokenizer must be an LMTokenizer"),
    ],
)
def test_invalid_settings_are_refused(
    lm_model: LmModel, options: dict[str, Any], message: str
) -> None:
    settings: dict[str, Any] = {"model": "m", "tokenizer": lm_model.tokenizer, "length": 2}
    with pytest.raises(SuspectError, match=message):
        OpenAIChatSuspect("https://api.example.com", **{**settings, **options})


@pytest.mark.parametrize(
    "batch",
    [
        np.zeros((2, 3), dtype=np.float32),  # not ids
        np.zeros(3, dtype=np.int64),  # not a batch of prompts
        np.zeros((2, 0), dtype=np.int64),  # empty prompts
        np.full((1, 3), 1 << 20, dtype=np.int64),  # outside the vocabulary
        np.full((1, 3), -1, dtype=np.int64),
    ],
)
def test_batches_that_are_no_prompts_are_refused_before_sending(
    lm_model: LmModel, batch: np.ndarray
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=_completion(" a"))

    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "http://127.0.0.1:9", model="m", tokenizer=lm_model.tokenizer, length=1, client=client
        )
        with pytest.raises(SuspectError):
            suspect.predict(batch)
    assert sent == []


# -- hostile answers -------------------------------------------------------------


def _text_of_length(characters: int) -> str:
    return " " + "a" * (characters - 1)


HALTING = [
    ("not-json", b"<html>", "text/html"),
    ("a-list", _json([_completion(" a")]), "application/json"),
    ("no-choices", _json({"object": "text_completion"}), "application/json"),
    ("choices-not-a-list", _json({"choices": {"text": " a"}}), "application/json"),
    ("no-choice", _json({"choices": []}), "application/json"),
    ("two-choices", _json({"choices": [{"text": " a"}, {"text": " b"}]}), "application/json"),
    ("choice-not-an-object", _json({"choices": [" a"]}), "application/json"),
    ("text-missing", _json({"choices": [{"message": {"content": " a"}}]}), "application/json"),
    ("text-a-number", _json(_completion(7)), "application/json"),
    ("text-a-list", _json(_completion([" a"])), "application/json"),
    ("text-null", _json(_completion(None)), "application/json"),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(body, content_type) for _, body, content_type in HALTING],
    ids=[name for name, _, _ in HALTING],
)
def test_answers_of_the_wrong_form_halt_the_suspect(
    lm_model: LmModel, body: bytes, content_type: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "http://127.0.0.1:9", model="m", tokenizer=lm_model.tokenizer, length=2, client=client
        )
        with pytest.raises(SuspectError, match=r"^openai:http://127\.0\.0\.1:9/v1/completions#m: "):
            suspect.predict(lm_model.prompts(3, seed=5))
        assert suspect.requests_sent == 1  # the first prompt only
        with pytest.raises(SuspectError, match="not sent"):
            suspect.predict(lm_model.prompts(1, seed=6))
        assert suspect.requests_sent == 1


PER_PROMPT = [
    ("broken-json", b'{"choices": [', "invalid JSON"),
    ("duplicate-keys", b'{"choices": [], "choices": []}', "invalid JSON"),
    ("error-object", _json({"error": {"message": "prompt flagged"}}), "answered an error"),
    ("too-long", _json(_completion(_text_of_length(2 * MAX_CHARS_PER_TOKEN + 1))), "max_tokens"),
    ("lone-surrogate", _json(_completion(" a\ud800")), "not valid Unicode"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [(body, message) for _, body, message in PER_PROMPT],
    ids=[name for name, _, _ in PER_PROMPT],
)
def test_answers_that_may_concern_one_prompt_fail_it_alone(
    lm_model: LmModel, body: bytes, message: str
) -> None:
    answers = iter([body, _json(_completion(" hello"))])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=next(answers), headers={"content-type": "application/json"}
        )

    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "http://127.0.0.1:9", model="m", tokenizer=lm_model.tokenizer, length=2, client=client
        )
        with pytest.raises(SuspectError, match=message):
            suspect.predict(lm_model.prompts(1, seed=7))
        expected = [lm_model.tokenizer.answer_ids(" hello", 2)]
        np.testing.assert_array_equal(suspect.predict(lm_model.prompts(1, seed=8)), expected)
        assert suspect.requests_sent == 2


def test_a_long_answer_within_the_bound_is_cut_to_the_target_length(lm_model: LmModel) -> None:
    text = _text_of_length(2 * MAX_CHARS_PER_TOKEN)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_completion(text))

    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "http://127.0.0.1:9", model="m", tokenizer=lm_model.tokenizer, length=2, client=client
        )
        answers = suspect.predict(lm_model.prompts(1, seed=9))
    assert answers.tolist() == [lm_model.tokenizer.answer_ids(text, 2)]


@pytest.mark.parametrize(
    ("message", "error", "halts"),
    [
        ({"content": None, "refusal": "I cannot help"}, "refused: I cannot help", False),
        ({"content": None, "tool_calls": []}, "no text content", False),
        ({"content": [{"type": "text", "text": " a"}]}, "no text content", False),
        (None, "no object 'message'", True),
        ("a", "no object 'message'", True),
    ],
)
def test_chat_answers_without_text(
    lm_model: LmModel, message: Any, error: str, halts: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})

    with _client(handler) as client:
        suspect = OpenAIChatSuspect(
            "http://127.0.0.1:9", model="m", tokenizer=lm_model.tokenizer, length=2, client=client
        )
        with pytest.raises(SuspectError, match=error):
            suspect.predict(lm_model.prompts(1, seed=10))
        with pytest.raises(SuspectError, match="not sent" if halts else error):
            suspect.predict(lm_model.prompts(1, seed=10))
        assert suspect.requests_sent == (1 if halts else 2)


def test_server_errors_are_retried_then_reported(lm_model: LmModel) -> None:
    statuses = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        if status != 200:
            return httpx.Response(status, json={"error": "overloaded"})
        return httpx.Response(200, json=_completion(" hello"))

    with _client(handler) as client:
        suspect = OpenAICompletionsSuspect(
            "http://127.0.0.1:9",
            model="m",
            tokenizer=lm_model.tokenizer,
            length=2,
            client=client,
            backoff=0,
        )
        answers = suspect.predict(lm_model.prompts(1, seed=11))
        assert suspect.requests_sent == 2
    assert answers.tolist() == [lm_model.tokenizer.answer_ids(" hello", 2)]
