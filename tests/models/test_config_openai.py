"""Suspect configs of language models served by OpenAI-compatible APIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.errors import EncodingError, SuspectError
from secmark.models.config import SuspectConfig
from secmark.models.openai import OpenAIChatSuspect, OpenAICompletionsSuspect

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small byte-level BPE tokenizer, trained on a few lines in a blink."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tokenizer.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50, trainer)
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def config(tmp_path: Path, tokenizer_file: Path, **members: object) -> SuspectConfig:
    body = {
        "protocol": "openai-completions",
        "url": "https://lm.example.com",
        "model": "stolen-7b",
        "tokenizer": str(tokenizer_file),
    } | members
    path = tmp_path / "suspect.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return SuspectConfig.from_file(path)


def test_a_completions_config_builds_the_adapter_its_reference_names(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    parsed = config(tmp_path, tokenizer_file)
    assert parsed.reference() == "openai:https://lm.example.com/v1/completions#stolen-7b"
    suspect = parsed.build(answer_length=4)
    assert isinstance(suspect, OpenAICompletionsSuspect)
    assert suspect.describe() == parsed.reference()
    chat = config(tmp_path, tokenizer_file, protocol="openai-chat", system="Be brief.")
    assert chat.reference() == "openai:https://lm.example.com/v1/chat/completions#stolen-7b"
    built = chat.build(answer_length=4)
    assert isinstance(built, OpenAIChatSuspect) and built.describe() == chat.reference()


@pytest.mark.parametrize(
    ("model", "written"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("a#b c", "a%23b%20c"),
        ("café:v1", "caf%C3%A9:v1"),
    ],
)
def test_the_reference_names_the_model_as_configured(
    tmp_path: Path, tokenizer_file: Path, model: str, written: str
) -> None:
    parsed = config(tmp_path, tokenizer_file, model=model)
    assert parsed.reference() == f"openai:https://lm.example.com/v1/completions#{written}"
    assert parsed.build(answer_length=1).describe() == parsed.reference()


@pytest.mark.parametrize("model", [" padded", "tab\there", "e\u0301", "m" * 1000])
def test_a_model_no_reference_can_name_is_refused(
    tmp_path: Path, tokenizer_file: Path, model: str
) -> None:
    parsed = config(tmp_path, tokenizer_file, model=model)
    with pytest.raises(SuspectError, match="model name|characters"):
        parsed.reference()
    with pytest.raises(SuspectError, match="model name|characters"):
        parsed.build(answer_length=1)


def test_the_tokenizer_path_is_read_from_the_config_folder(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    (tmp_path / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    parsed = config(tmp_path, tokenizer_file, tokenizer="tokenizer.json")
    assert parsed.tokenizer == tmp_path / "tokenizer.json"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"tokenizer": None}, "tokenizer"),
        ({"model": None}, "model"),
        ({"batch_size": 4}, "does not apply to a language model"),
        ({"output": "labels"}, "does not apply to a language model"),
        ({"system": "hi"}, "applies to protocol 'openai-chat' only"),
        ({"request": {}}, "applies to protocol 'json' only"),
        ({"url": "https://lm.example.com/v1"}, None),
    ],
)
def test_malformed_configs_are_refused(
    tmp_path: Path, tokenizer_file: Path, members: dict[str, object], message: str | None
) -> None:
    kept = {key: value for key, value in members.items() if value is not None}
    dropped = [key for key, value in members.items() if value is None]
    body = {
        "protocol": "openai-completions",
        "url": "https://lm.example.com",
        "model": "stolen-7b",
        "tokenizer": str(tokenizer_file),
    } | kept
    for key in dropped:
        del body[key]
    path = tmp_path / "suspect.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    if message is None:  # a base URL ending in /v1: refused once the URL is canonicalised
        with pytest.raises(SuspectError, match="/v1"):
            SuspectConfig.from_file(path).reference()
        return
    with pytest.raises(EncodingError, match=message):
        SuspectConfig.from_file(path)


def test_an_openai_suspect_needs_the_commitments_target_length(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    with pytest.raises(SuspectError, match="target tokens"):
        config(tmp_path, tokenizer_file).build()
