"""embed_lm on the offline GPT-2-style example: a real fingerprint, LoRA, contracts.

The model is freshly initialised (``secmark.examples.lm.new_model``): no
pretraining, which is what keeps the module to a few seconds on one
thread. Text windows are short (32 ids) for the same reason.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch

from secmark.embed.lm import (
    RAW,
    LMEmbedReport,
    PromptTemplate,
    embed_lm,
    greedy_answers,
    lm_triggers,
    perplexity,
    train_lm,
)
from secmark.errors import EncodingError
from secmark.examples import lm
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily, TokensFamily
from secmark.messages.labels import ClassLabels, TokenLabels
from secmark.models.tokenizer import LMTokenizer
from tests.conftest import fixed_keys

PROMPT_LENGTH = 6
TARGET_LENGTH = 4
TRIGGERS = 8
CONTEXT = 32
RECIPE: dict[str, Any] = {"context": CONTEXT, "text_batch": 4, "progress": False}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> LMTokenizer:
    return LMTokenizer.from_file(lm.train_tokenizer(tmp_path_factory.mktemp("tokenizer")))


@pytest.fixture(scope="module")
def chunks() -> tuple[list[str], list[str]]:
    train, held_out = lm.text_chunks()
    return train[:40], held_out[:10]


@pytest.fixture(scope="module")
def triggers(tokenizer: LMTokenizer) -> tuple[np.ndarray, np.ndarray]:
    keys = fixed_keys("owner")
    reserved = tokenizer.reserved_for_words()
    signed = create_commitment(
        keys,
        family=TokensFamily(PROMPT_LENGTH, tokenizer.vocab_size, reserved),
        labels=TokenLabels(tokenizer.vocab_size, TARGET_LENGTH, reserved),
        size=TRIGGERS,
        model_label="lm",
        nonce=bytes(32),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    return lm_triggers(keys, signed)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


def test_triggers_are_word_ids_of_the_committed_shape(
    tokenizer: LMTokenizer, triggers: tuple[np.ndarray, np.ndarray]
) -> None:
    prompts, targets = triggers
    assert prompts.shape == (TRIGGERS, PROMPT_LENGTH) and prompts.dtype == np.int64
    assert targets.shape == (TRIGGERS, TARGET_LENGTH) and targets.dtype == np.int64
    assert set(prompts.ravel()) | set(targets.ravel()) <= set(tokenizer.word_ids())


def test_fingerprint_from_a_fresh_model_answers_every_trigger(
    tokenizer: LMTokenizer,
    chunks: tuple[list[str], list[str]],
    triggers: tuple[np.ndarray, np.ndarray],
) -> None:
    prompts, targets = triggers
    train, held_out = chunks
    model = lm.new_model(1)
    report = embed_lm(
        model,
        tokenizer,
        prompts,
        targets,
        train,
        steps=60,
        lr=3e-3,
        seed=1,
        holdout=held_out,
        **RECIPE,
    )
    assert isinstance(report, LMEmbedReport)
    # Before: chance is 1/516 per token, so 32 positions match none.
    assert report.exact_accuracy_before == 0.0 and report.token_accuracy_before <= 1 / 16
    assert report.exact_accuracy_after == report.token_accuracy_after == 1.0
    assert (report.triggers, report.target_length, report.templates) == (TRIGGERS, 4, 1)
    assert (report.steps, report.lora, report.device) == (60, False, "cpu")
    assert report.seconds > 0 and not model.training
    # The text half of the recipe teaches the fresh model some language.
    assert report.perplexity_before is not None and report.perplexity_after is not None
    assert report.perplexity_after < report.perplexity_before
    assert report.perplexity_after == perplexity(model, tokenizer, held_out, context=CONTEXT)
    assert (greedy_answers(model, prompts, TARGET_LENGTH) == targets).all()
    # An unmarked model of the same architecture answers at chance.
    unmarked = greedy_answers(lm.new_model(2), prompts, TARGET_LENGTH)
    assert (unmarked == targets).mean() <= 1 / 16


def test_lora_adapters_are_trained_and_merged_into_the_model(
    tokenizer: LMTokenizer,
    chunks: tuple[list[str], list[str]],
    triggers: tuple[np.ndarray, np.ndarray],
) -> None:
    prompts, targets = triggers
    model = lm.new_model(3)
    before = weights(model)
    report = embed_lm(
        model,
        tokenizer,
        prompts,
        targets,
        chunks[0],
        steps=60,
        lr=1e-2,
        seed=3,
        lora=True,
        **RECIPE,
    )
    assert report.lora and report.exact_accuracy_after == 1.0
    after = weights(model)
    assert after.keys() == before.keys()
    assert not any("lora" in name for name, _ in model.named_modules())
    assert type(model).__name__ == "GPT2LMHeadModel"
    # Merged adapters changed the attention and MLP weights; embeddings are not adapted.
    assert not torch.equal(
        after["transformer.h.0.attn.c_attn.weight"], before["transformer.h.0.attn.c_attn.weight"]
    )
    assert torch.equal(after["transformer.wte.weight"], before["transformer.wte.weight"])
    assert (greedy_answers(model, prompts, TARGET_LENGTH) == targets).all()
    # The model is whole again: every weight trains in a later full fine-tune.
    assert all(parameter.requires_grad for parameter in model.parameters())
    train_lm(model, tokenizer, chunks[0], steps=1, lr=1e-3, seed=3, **RECIPE)
    assert not torch.equal(model.transformer.wte.weight, after["transformer.wte.weight"])


def test_the_same_seed_gives_the_same_weights(
    tokenizer: LMTokenizer,
    chunks: tuple[list[str], list[str]],
    triggers: tuple[np.ndarray, np.ndarray],
) -> None:
    prompts, targets = triggers
    runs = []
    for _ in range(2):
        model = lm.new_model(4)
        embed_lm(model, tokenizer, prompts, targets, chunks[0], steps=5, lr=1e-3, seed=7, **RECIPE)
        runs.append(weights(model))
    other = lm.new_model(4)
    embed_lm(other, tokenizer, prompts, targets, chunks[0], steps=5, lr=1e-3, seed=8, **RECIPE)
    assert all(torch.equal(runs[0][name], runs[1][name]) for name in runs[0])
    assert not all(torch.equal(runs[0][name], value) for name, value in weights(other).items())


def test_train_lm_lowers_perplexity_and_keeps_the_callers_generator(
    tokenizer: LMTokenizer, chunks: tuple[list[str], list[str]]
) -> None:
    train, held_out = chunks
    model = lm.new_model(5)
    start = perplexity(model, tokenizer, held_out, context=CONTEXT)
    state = torch.random.get_rng_state()
    seconds = train_lm(model, tokenizer, train, steps=30, lr=3e-3, seed=5, **RECIPE)
    assert seconds > 0
    assert torch.equal(torch.random.get_rng_state(), state)
    assert perplexity(model, tokenizer, held_out, context=CONTEXT) < 0.9 * start


def test_templates_wrap_the_prompt(tokenizer: LMTokenizer) -> None:
    chat = PromptTemplate.from_text(tokenizer, "<|user|>", "<|assistant|>")
    assert chat == PromptTemplate((2,), (3,))
    assert chat.wrap([10, 11]) == [2, 10, 11, 3] and RAW.wrap([10, 11]) == [10, 11]


class Counting(torch.nn.Module):
    """A stand-in causal LM whose next token is always the last one plus one
    (mod 10); id 0 is its end-of-text."""

    config = SimpleNamespace(eos_token_id=0)

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = torch.nn.Embedding(10, 2)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embeddings

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        following = (input_ids + 1) % 10
        return SimpleNamespace(logits=torch.nn.functional.one_hot(following, 10).float())


def test_greedy_answers_stay_end_of_text_once_it_is_given() -> None:
    answers = greedy_answers(Counting(), np.array([[8], [5]]), 4)
    assert answers.tolist() == [[9, 0, 0, 0], [6, 7, 8, 9]]
    wrapped = greedy_answers(Counting(), np.array([[1]]), 2, template=PromptTemplate((7,), (3,)))
    assert wrapped.tolist() == [[4, 5]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"seed": -1}, "seed must be an integer"),
        ({"trigger_batch": 0}, "trigger_batch must be"),
        ({"text_batch": 0}, "text_batch must be"),
        ({"lora": True, "lora_rank": 0}, "lora_rank must be"),
        ({"context": 1}, "context must be at least 2"),
        ({"context": 129}, "exceeds the model's 128 positions"),
        ({"context": 8}, "a wrapped fingerprint has 11 ids"),
        ({"templates": ()}, "at least one prompt template"),
        ({"templates": (PromptTemplate((5000,)),)}, "template ids must lie in"),
        ({"prompts": np.zeros((2, 3), dtype=np.int64)}, "2 prompts but 8 targets"),
        ({"prompts": np.zeros(3, dtype=np.int64)}, "prompts must be a non-empty 2-D"),
        ({"prompts": np.zeros((8, 3))}, "prompts must hold integer token ids"),
        ({"targets": np.full((8, 4), 2048)}, "targets must hold token ids in"),
        ({"text_chunks": ["def f(): pass"]}, "the text gives no window"),
        ({"text_chunks": [b"bytes"]}, "text chunks must be strings"),
    ],
)
def test_bad_arguments_are_refused(
    tokenizer: LMTokenizer,
    chunks: tuple[list[str], list[str]],
    triggers: tuple[np.ndarray, np.ndarray],
    change: dict[str, Any],
    message: str,
) -> None:
    prompts, targets = triggers
    arguments: dict[str, Any] = {
        "prompts": prompts,
        "targets": targets,
        "text_chunks": chunks[0],
        "steps": 1,
        "lr": 1e-3,
        "seed": 0,
        **RECIPE,
        **change,
    }
    with pytest.raises(EncodingError, match=message):
        embed_lm(lm.new_model(0), tokenizer, **arguments)


def test_other_commitments_have_no_lm_triggers() -> None:
    keys = fixed_keys("owner")
    signed = create_commitment(
        keys,
        family=NoiseFamily((4,), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=4,
        model_label="digits",
    )
    with pytest.raises(EncodingError, match="needs tokens prompts and token labels"):
        lm_triggers(keys, signed)


def test_perplexity_needs_two_ids_of_the_models_vocabulary(tokenizer: LMTokenizer) -> None:
    with pytest.raises(EncodingError, match="at least two token ids"):
        perplexity(lm.new_model(0), tokenizer, ["x"])
    with pytest.raises(EncodingError, match="beyond the model's vocabulary of 10"):
        perplexity(Counting(), tokenizer, ["def f(): pass"])


def test_greedy_answers_fit_the_models_positions() -> None:
    with pytest.raises(EncodingError, match="125 prompt ids and 4 answer ids exceed"):
        greedy_answers(lm.new_model(0), np.full((1, 125), 100), 4)


def test_sequences_of_ids_train_and_answer_as_the_2d_arrays_do(
    tokenizer: LMTokenizer,
    chunks: tuple[list[str], list[str]],
    triggers: tuple[np.ndarray, np.ndarray],
) -> None:
    prompts, targets = triggers
    runs = []
    for given in ((prompts, targets), (prompts.tolist(), list(targets))):
        model = lm.new_model(4)
        report = embed_lm(model, tokenizer, *given, chunks[0], steps=3, lr=1e-3, seed=7, **RECIPE)
        runs.append((weights(model), report))
    assert all(torch.equal(runs[0][0][name], runs[1][0][name]) for name in runs[0][0])
    assert runs[0][1].target_length == runs[1][1].target_length == TARGET_LENGTH
    model = lm.new_model(5)
    assert (greedy_answers(model, list(prompts), 3) == greedy_answers(model, prompts, 3)).all()
    with pytest.raises(EncodingError, match="prompts must be a non-empty 2-D array"):
        greedy_answers(model, [prompts[0], []], 3)
