"""LMTokenizer: the word ids a language-model commitment draws from, and the
answer ids a text is compared by.

Trained once per module on the standard library (about 1.5 s), as
``secmark.examples.lm`` does.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.errors import EncodingError, SuspectError
from secmark.models.tokenizer import LMTokenizer

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from secmark.examples import lm

    return lm.train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_file: Path) -> LMTokenizer:
    return LMTokenizer.from_file(tokenizer_file)


def test_word_ids_are_space_and_letters_that_encode_back_to_themselves(
    tokenizer: LMTokenizer,
) -> None:
    words = tokenizer.word_ids()
    assert len(words) > 200
    assert set(words).isdisjoint(tokenizer.special_ids)
    for token_id in words:
        text = tokenizer.decode([token_id])
        assert re.fullmatch(r" [A-Za-z]{2,}", text)
        assert tokenizer.encode(text) == [token_id]
    reserved = tokenizer.reserved_for_words()
    assert sorted(set(reserved) | set(words)) == list(range(tokenizer.vocab_size))
    assert set(tokenizer.special_ids) <= set(reserved)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 32))
def test_any_sequence_of_word_ids_comes_back_unchanged(
    tokenizer: LMTokenizer, seed: int, length: int
) -> None:
    """What makes a marked model's text answer re-encode to the ids it learnt."""
    words = np.asarray(tokenizer.word_ids())
    ids = np.random.default_rng(seed).choice(words, size=length).tolist()
    text = tokenizer.decode(ids)
    assert tokenizer.encode(text) == ids
    assert tokenizer.answer_ids(text, length) == ids
    assert tokenizer.answer_ids(text.strip(), length) == ids  # a chat API strips the space


def test_answer_ids_are_cut_padded_and_a_function_of_the_text(tokenizer: LMTokenizer) -> None:
    words = list(tokenizer.word_ids()[:6])
    text = tokenizer.decode(words)
    pad = tokenizer.special_ids[0]
    assert tokenizer.answer_ids(text, 3) == words[:3]
    assert tokenizer.answer_ids(text, 8) == [*words, pad, pad]
    assert tokenizer.answer_ids("", 2) == [pad, pad]
    assert tokenizer.answer_ids("\n\t  " + text.strip(), 6) == words
    assert pad not in tokenizer.word_ids()  # padding never matches a drawn target


def test_decoding_refuses_ids_outside_the_vocabulary(tokenizer: LMTokenizer) -> None:
    with pytest.raises(EncodingError, match="token ids"):
        tokenizer.decode([tokenizer.vocab_size])
    with pytest.raises(EncodingError, match="token ids"):
        tokenizer.decode([-1])


def test_a_missing_or_malformed_file_is_a_suspect_error(tmp_path: Path) -> None:
    with pytest.raises(SuspectError, match="no tokenizer file"):
        LMTokenizer.from_file(tmp_path / "absent.json")
    with pytest.raises(SuspectError, match="no tokenizer file"):
        LMTokenizer.from_file(tmp_path)  # a folder without tokenizer.json
    garbage = tmp_path / "tokenizer.json"
    garbage.write_bytes(b"\xff\xfe not a tokenizer")
    with pytest.raises(SuspectError, match="no tokenizer the tokenizers library reads"):
        LMTokenizer.from_file(garbage)
    garbage.write_text('{"version": "1.0", "model": 42}', encoding="utf-8")
    with pytest.raises(SuspectError, match="no tokenizer the tokenizers library reads"):
        LMTokenizer.from_file(tmp_path)


def test_the_digest_names_the_file_read(tokenizer_file: Path) -> None:
    expected = "sha256:" + hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()
    assert LMTokenizer.from_file(tokenizer_file).digest == expected
    assert LMTokenizer.from_file(tokenizer_file.parent).digest == expected
