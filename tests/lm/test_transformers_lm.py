"""TransformersSuspect: a causal LM folder queried in process."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.messages.responses import NO_RESPONSE, ResponseList
from secmark.models.base import Suspect
from secmark.models.prompts import question_item
from secmark.models.reference import canonical_reference
from secmark.models.transformers_lm import TransformersSuspect
from tests.lm.fixtures import LmModel

LENGTH = 5


@pytest.fixture(scope="module")
def by_ids(lm_model: LmModel) -> TransformersSuspect:
    return TransformersSuspect(lm_model.folder, tokenizer=lm_model.tokenizer, length=LENGTH)


def _greedy(folder: Path, prompts: np.ndarray, length: int, pad: int) -> list[list[int]]:
    """Greedy decoding written out: the most likely next id, ``length``
    times or until the end-of-sequence id, padded with ``pad``."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    answers = []
    for prompt in prompts.tolist():
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(length):
                logits = model(torch.tensor([ids])).logits[0, -1]
                ids.append(int(torch.argmax(logits)))
                if ids[-1] == model.generation_config.eos_token_id:
                    break
        answers.append((ids[len(prompt) :] + [pad] * length)[:length])
    return answers


def test_answers_are_the_greedy_continuation_of_the_prompt_ids(
    lm_model: LmModel, by_ids: TransformersSuspect
) -> None:
    prompts = lm_model.prompts(4, seed=21)
    answers = by_ids.predict(prompts)
    assert isinstance(by_ids, Suspect)
    assert answers.dtype == np.int64 and answers.shape == (4, LENGTH)
    pad = lm_model.tokenizer.answer_ids("", 1)[0]
    np.testing.assert_array_equal(answers, _greedy(lm_model.folder, prompts, LENGTH, pad))
    np.testing.assert_array_equal(by_ids.predict(prompts), answers)  # deterministic


def test_via_text_compares_the_decoded_answer(
    lm_model: LmModel, by_ids: TransformersSuspect
) -> None:
    """Through text, the answer is the commitment tokenizer's ids of the
    text the model's ids decode to, as for an API's answer."""
    suspect = TransformersSuspect(
        lm_model.folder, tokenizer=lm_model.tokenizer, length=LENGTH, via_text=True
    )
    prompts = lm_model.prompts(4, seed=22)
    tokenizer = lm_model.tokenizer
    special = set(tokenizer.special_ids)
    expected = [
        tokenizer.answer_ids(tokenizer.decode([i for i in row if i not in special]), LENGTH)
        for row in by_ids.predict(prompts).tolist()
    ]
    np.testing.assert_array_equal(suspect.predict(prompts), expected)


QUESTIONS = ("What is the capital of France?", "Wie spät ist es?")


def test_a_question_item_is_asked_as_its_text(
    lm_model: LmModel, by_ids: TransformersSuspect
) -> None:
    """A uint8 row is a question: asked as the ids the tokenizer gives its
    text, exactly as those ids would be."""
    items = np.stack([question_item(question, 48) for question in QUESTIONS])
    ids = [lm_model.tokenizer.encode(question) for question in QUESTIONS]
    expected = [by_ids.predict(np.array([row], dtype=np.int64))[0] for row in ids]
    np.testing.assert_array_equal(by_ids.predict(items), expected)


def test_with_responses_an_answer_is_the_index_of_the_response_its_text_gives(
    lm_model: LmModel, by_ids: TransformersSuspect
) -> None:
    """The first answer's text (as the commitment tokenizer decodes the
    generated ids) is made a committed response; the second gives none."""
    tokenizer = lm_model.tokenizer
    items = np.stack([question_item(question, 48) for question in QUESTIONS])
    special = set(tokenizer.special_ids)
    first = [i for i in by_ids.predict(items[:1])[0].tolist() if i not in special]
    text = tokenizer.decode(first).strip()
    if not text:
        pytest.skip("the untrained model answered only white space")
    listed = ResponseList((text, "A response nobody gives."))
    suspect = TransformersSuspect(
        lm_model.folder, tokenizer=tokenizer, length=LENGTH, responses=listed
    )
    answers = suspect.predict(items)
    assert answers.dtype == np.int64 and answers.shape == (2,)
    assert answers[0] == 0
    assert answers[1] in (0, NO_RESPONSE)


def test_describe_is_the_digest_of_the_weights_file(
    lm_model: LmModel, by_ids: TransformersSuspect
) -> None:
    digest = hashlib.sha256((lm_model.folder / "model.safetensors").read_bytes()).hexdigest()
    assert by_ids.describe() == f"sha256:{digest}"
    assert canonical_reference(by_ids.describe()) == by_ids.describe()


def _copy(lm_model: LmModel, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(lm_model.folder, folder)
    return folder


@pytest.mark.parametrize("name", ["pytorch_model.bin", "training_args.bin", "optimizer.pt"])
def test_a_folder_with_pickle_weights_is_refused(
    lm_model: LmModel, tmp_path: Path, name: str
) -> None:
    folder = _copy(lm_model, tmp_path)
    (folder / name).write_bytes(b"\x80\x04pickle that would run code")
    with pytest.raises(SuspectError, match=f"holds pickle files \\({name}\\)"):
        TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)


def test_a_folder_of_pickle_weights_only_is_refused(lm_model: LmModel, tmp_path: Path) -> None:
    folder = _copy(lm_model, tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(SuspectError, match="pickle"):
        TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)


def test_sharded_and_missing_weights_are_refused(lm_model: LmModel, tmp_path: Path) -> None:
    folder = _copy(lm_model, tmp_path)
    weights = folder / "model.safetensors"
    weights.rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"")
    (folder / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(SuspectError, match="several weights files"):
        TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)
    for shard in folder.glob("model*.safetensors*"):
        shard.unlink()
    with pytest.raises(SuspectError, match="has no model.safetensors"):
        TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)
    with pytest.raises(SuspectError, match="no model folder"):
        TransformersSuspect(tmp_path / "absent", tokenizer=lm_model.tokenizer, length=1)


def test_weights_the_library_cannot_read_are_a_suspect_error(
    lm_model: LmModel, tmp_path: Path
) -> None:
    folder = _copy(lm_model, tmp_path)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    digest = hashlib.sha256(b"not safetensors").hexdigest()
    with pytest.raises(SuspectError, match=f"^sha256:{digest}: loading the model folder"):
        TransformersSuspect(folder, tokenizer=lm_model.tokenizer, length=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 0}, "length must be an integer"),
        ({"length": 2.0}, "length must be an integer"),
        ({"chat": True}, "give via_text=True"),
        ({"system": "Be brief."}, "only for chat=True"),
        ({"via_text": True, "chat": True, "system": ""}, "non-empty string"),
        ({"via_text": 1}, "True or False"),
        ({"device": "no-such-device"}, "unknown torch device"),
        ({"tokenizer": None}, "tokenizer must be an LMTokenizer"),
    ],
)
def test_invalid_settings_are_refused(
    lm_model: LmModel, options: dict[str, Any], message: str
) -> None:
    settings: dict[str, Any] = {"tokenizer": lm_model.tokenizer, "length": 1, **options}
    with pytest.raises(SuspectError, match=message):
        TransformersSuspect(lm_model.folder, **settings)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((2, 3), dtype=np.float32), "token ids or of question items"),
        (np.zeros(3, dtype=np.int64), "token ids or of question items"),
        (np.zeros((1, 0), dtype=np.int64), "token ids or of question items"),
        (np.frombuffer(b"Why?\0x\0\0", dtype=np.uint8)[None], "U\\+0000"),
        (np.full((1, 3), 1 << 20, dtype=np.int64), r"must lie in \[0, "),
        (np.full((1, 3), -1, dtype=np.int64), r"must lie in \[0, "),
        (np.zeros((1, 200), dtype=np.int64), "generation failed"),  # past the context
    ],
)
def test_prompts_it_cannot_answer_are_suspect_errors(
    by_ids: TransformersSuspect, batch: np.ndarray, message: str
) -> None:
    with pytest.raises(SuspectError, match=f"^sha256:[0-9a-f]{{64}}: .*{message}"):
        by_ids.predict(batch)
