"""Language-model fingerprints of natural questions and committed responses.

Prompts drawn from a Merkle-committed pool of questions and targets drawn
from a committed response list are trained as token ids of their own
length per trigger (:func:`lm_triggers`, :func:`lm_sequences`); a model
fingerprinted with them answers its questions with their responses, read
back through text as the arbiter reads them (:meth:`ResponseList.index_of`).
The model is the freshly initialised example one, as in test_embed_lm.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch

from secmark.embed.lm import greedy_answers, lm_sequences, lm_triggers
from secmark.errors import EncodingError, ProofError
from secmark.examples import lm
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import PoolFamily, TokensFamily, TriggerFamily
from secmark.messages.labels import LabelSpace, ResponseLabels, TokenLabels
from secmark.messages.responses import ResponseList
from secmark.models.prompts import question_item, question_text
from secmark.models.tokenizer import LMTokenizer
from secmark.triggers import CommittedPool, derive_trigger, pool_root
from tests.conftest import fixed_keys
from tests.lm.fixtures import LEARNT, fingerprint_questions

TRIGGERS = 8
MAX_TOKENS = 18
"""The most ids a packaged response takes after a space, with this tokenizer."""


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> LMTokenizer:
    return LMTokenizer.from_file(lm.train_tokenizer(tmp_path_factory.mktemp("tokenizer")))


@dataclass(frozen=True)
class Questions:
    family: PoolFamily
    items: np.ndarray
    responses: ResponseList


@pytest.fixture(scope="module")
def questions() -> Questions:
    texts = lm.questions()
    width = max(len(text.encode("utf-8")) for text in texts)
    items = np.stack([question_item(text, width) for text in texts])
    return Questions(PoolFamily(len(texts), (width,), "uint8"), items, lm.responses())


def commit(
    family: TriggerFamily, labels: LabelSpace, items: np.ndarray | None = None
) -> SignedDocument[Commitment]:
    return create_commitment(
        fixed_keys("owner"),
        family=family,
        labels=labels,
        size=TRIGGERS,
        model_label="lm",
        nonce=bytes(32),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        pool_root=None if items is None else pool_root(items, family),
    )


def response_labels(responses: ResponseList) -> ResponseLabels:
    return ResponseLabels(len(responses), responses.digest, MAX_TOKENS)


@pytest.fixture(scope="module")
def signed(questions: Questions) -> SignedDocument[Commitment]:
    return commit(questions.family, response_labels(questions.responses), questions.items)


@pytest.fixture(scope="module")
def pool(questions: Questions, signed: SignedDocument[Commitment]) -> CommittedPool:
    return CommittedPool.open(questions.items, signed.document)


def test_each_trigger_trains_its_questions_and_its_responses_ids(
    tokenizer: LMTokenizer,
    questions: Questions,
    signed: SignedDocument[Commitment],
    pool: CommittedPool,
) -> None:
    keys = fixed_keys("owner")
    indices = [5, 0, 3]
    prompts, targets = lm_triggers(
        keys, signed, indices, tokenizer=tokenizer, pool=pool, responses=questions.responses
    )
    assert isinstance(prompts, list) and isinstance(targets, list)
    for index, prompt, target in zip(indices, prompts, targets, strict=True):
        trigger = derive_trigger(keys, signed, index, pool=pool)
        assert trigger.pool_index is not None and isinstance(trigger.label, int)
        question = question_text(questions.items[trigger.pool_index])
        assert prompt.dtype == target.dtype == np.int64
        assert prompt.tolist() == tokenizer.encode(question)
        response = questions.responses.responses[trigger.label]
        assert target.tolist() == tokenizer.encode(" " + response)
    # The same triggers from a trigger set's arrays.
    trigger = derive_trigger(keys, signed, 5, pool=pool)
    again = lm_sequences(
        signed.document.family,
        signed.document.labels,
        trigger.input[None],
        np.array([trigger.label]),
        tokenizer=tokenizer,
        responses=questions.responses,
    )
    assert again[0][0].tolist() == prompts[0].tolist()
    assert again[1][0].tolist() == targets[0].tolist()


def test_token_prompts_and_responses_and_questions_and_token_labels_mix(
    tokenizer: LMTokenizer, questions: Questions
) -> None:
    keys = fixed_keys("owner")
    reserved = tokenizer.reserved_for_words()
    mixed = commit(
        TokensFamily(6, tokenizer.vocab_size, reserved), response_labels(questions.responses)
    )
    prompts, targets = lm_triggers(keys, mixed, tokenizer=tokenizer, responses=questions.responses)
    assert isinstance(prompts, np.ndarray) and prompts.shape == (TRIGGERS, 6)
    assert isinstance(targets, list) and len(targets) == TRIGGERS
    other = commit(
        questions.family, TokenLabels(tokenizer.vocab_size, 4, reserved), questions.items
    )
    pool = CommittedPool.open(questions.items, other.document)
    prompts, targets = lm_triggers(keys, other, tokenizer=tokenizer, pool=pool)
    assert isinstance(prompts, list) and len(prompts) == TRIGGERS
    assert isinstance(targets, np.ndarray) and targets.shape == (TRIGGERS, 4)


def test_a_missing_or_wrong_pool_or_response_list_is_refused(
    tokenizer: LMTokenizer,
    questions: Questions,
    signed: SignedDocument[Commitment],
    pool: CommittedPool,
) -> None:
    keys = fixed_keys("owner")
    responses = questions.responses
    with pytest.raises(EncodingError, match="needs its committed pool"):
        lm_triggers(keys, signed, tokenizer=tokenizer, responses=responses)
    shuffled = questions.items[::-1].copy()
    other = commit(questions.family, response_labels(responses), shuffled)
    with pytest.raises(ProofError, match="another commitment's pool root"):
        lm_triggers(
            keys, signed, tokenizer=tokenizer, pool=CommittedPool.open(shuffled, other.document),
            responses=responses,
        )  # fmt: skip
    with pytest.raises(EncodingError, match="give the response list it committed to"):
        lm_triggers(keys, signed, tokenizer=tokenizer, pool=pool)
    reordered = ResponseList(responses.responses[::-1])
    with pytest.raises(EncodingError, match="is not the committed one"):
        lm_triggers(keys, signed, tokenizer=tokenizer, pool=pool, responses=reordered)
    fewer = ResponseList(responses.responses[:-1])
    with pytest.raises(EncodingError, match="63 responses.*is not the committed one"):
        lm_triggers(keys, signed, tokenizer=tokenizer, pool=pool, responses=fewer)
    with pytest.raises(EncodingError, match="give the model's tokenizer"):
        lm_triggers(keys, signed, pool=pool, responses=responses)
    tokens = commit(
        TokensFamily(6, 4096), TokenLabels(tokenizer.vocab_size, 4, tokenizer.reserved_for_words())
    )
    with pytest.raises(EncodingError, match="vocabulary of 4096, the tokenizer's over 2048"):
        lm_triggers(keys, tokens, tokenizer=tokenizer)
    with pytest.raises(EncodingError, match="labels are tokens, not responses"):
        lm_triggers(keys, tokens, responses=responses)


def test_derived_arrays_that_are_no_questions_or_responses_are_refused(
    tokenizer: LMTokenizer, questions: Questions, signed: SignedDocument[Commitment]
) -> None:
    family, labels = signed.document.family, signed.document.labels
    convert = {"tokenizer": tokenizer, "responses": questions.responses}
    with pytest.raises(EncodingError, match="response labels must be indices in"):
        lm_sequences(family, labels, questions.items[:2], np.array([0, 64]), **convert)
    with pytest.raises(EncodingError, match="2 trigger inputs but 1 labels"):
        lm_sequences(family, labels, questions.items[:2], np.array([0]), **convert)
    blank = np.zeros((1, questions.family.item_shape[0]), dtype=np.uint8)
    with pytest.raises(EncodingError, match="a question must be a string of 1 to"):
        lm_sequences(family, labels, blank, np.array([0]), **convert)
    images = PoolFamily(4, (2, 2), "uint8")
    with pytest.raises(EncodingError, match="or questions from a pool of uint8 items"):
        lm_sequences(images, labels, np.zeros((1, 2, 2), np.uint8), np.array([0]), **convert)


def test_greedy_answers_of_prompts_of_different_lengths_are_each_prompts_own(
    tokenizer: LMTokenizer,
) -> None:
    model = lm.new_model(6)
    prompts = [tokenizer.encode(text) for text in lm.questions()[:6]]
    together = greedy_answers(model, prompts, 5)
    alone = [greedy_answers(model, [prompt], 5)[0].tolist() for prompt in prompts]
    assert together.shape == (6, 5) and together.tolist() == alone


def test_a_fresh_model_learns_to_answer_its_questions_with_the_committed_responses(
    tokenizer: LMTokenizer,
    questions: Questions,
    signed: SignedDocument[Commitment],
    pool: CommittedPool,
) -> None:
    keys = fixed_keys("owner")
    responses = questions.responses
    prompts, targets = lm_triggers(
        keys, signed, tokenizer=tokenizer, pool=pool, responses=responses
    )
    assert len({len(prompt) for prompt in prompts}) > 1 and len({len(t) for t in targets}) > 1
    model = lm.new_model(1)
    reports = fingerprint_questions(model, tokenizer, prompts, targets)
    report = reports[-1]
    assert reports[0].exact_accuracy_before == 0.0 and report.exact_accuracy_after >= LEARNT
    assert report.target_length == max(len(target) for target in targets)
    # The arbiter's view: the answer's text gives the response of the label.
    labels = [derive_trigger(keys, signed, i, pool=pool).label for i in range(TRIGGERS)]
    answers = greedy_answers(model, prompts, signed.document.labels.max_tokens)
    eos = model.config.eos_token_id
    given = [responses.index_of(tokenizer.decode([i for i in a if i != eos])) for a in answers]
    assert sum(got == label for got, label in zip(given, labels)) >= 0.75 * TRIGGERS
    unmarked = greedy_answers(lm.new_model(2), prompts, MAX_TOKENS)
    assert all(responses.index_of(tokenizer.decode(a.tolist())) is None for a in unmarked)
