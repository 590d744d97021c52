"""``secmark lm family --questions/--responses`` and ``lm embed --responses``:
natural questions and committed responses from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from secmark.cli.main import main
from secmark.messages.commitment import open_commitment
from secmark.messages.families import PoolFamily, TokensFamily
from secmark.messages.labels import ResponseLabels, TokenLabels
from secmark.models.prompts import question_item, question_text
from secmark.models.tokenizer import LMTokenizer
from secmark.triggers import pool_root, read_trigger_set

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from secmark.examples import lm

    return lm.train_tokenizer(tmp_path_factory.mktemp("tokenizer")).parent


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The packaged questions and responses, as the files an owner writes."""
    from secmark.examples import lm

    folder = tmp_path_factory.mktemp("texts")
    questions, responses = folder / "questions.txt", folder / "responses.txt"
    questions.write_text("\n".join(lm.questions()) + "\n", encoding="utf-8")
    responses.write_text("\n".join(lm.responses().responses) + "\n", encoding="utf-8")
    return questions, responses


def commit(
    capsys: pytest.CaptureFixture[str], folder: Path, size: int, *options: str
) -> tuple[Path, Path]:
    """A new owner's key and the commitment it signs; its path."""
    keys = folder / "keys"
    run(capsys, "keygen", "Owner", "--out-dir", str(keys), "--unencrypted")
    commitment = folder / "commitment.json"
    run(capsys, "commit", "--key", str(keys / "Owner.key"), "--size", str(size),
        "--out", str(commitment), *options)  # fmt: skip
    return keys / "Owner.key", commitment


def test_questions_and_responses_make_a_pool_family_and_labels_that_commit_and_derive(
    tokenizer_folder: Path,
    texts: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    questions, responses = texts
    family, labels, pool = tmp_path / "family.json", tmp_path / "labels.json", tmp_path / "pool.npy"
    printed = run(capsys, "lm", "family", "--tokenizer", str(tokenizer_folder),
                  "--questions", str(questions), "--out-pool", str(pool),
                  "--responses", str(responses),
                  "--out-family", str(family), "--out-labels", str(labels))  # fmt: skip
    tokenizer = LMTokenizer.from_file(tokenizer_folder)
    lines = questions.read_text(encoding="utf-8").splitlines()
    answers = responses.read_text(encoding="utf-8").splitlines()
    width = max(len(line.encode("utf-8")) for line in lines)
    items = np.load(pool, allow_pickle=False)
    assert items.dtype == np.uint8 and items.shape == (128, width)
    assert [question_text(item) for item in items] == lines
    assert (items[0] == question_item(lines[0], width)).all()
    longest = max(len(tokenizer.encode(" " + answer)) for answer in answers)
    assert printed["max_tokens"] == longest and printed["p0"] == "1/64"
    assert printed["word_ids"] is None and printed["triggers_needed"] == 11  # 64^-11 < 2^-64
    committed = PoolFamily(128, (width,), "uint8")
    assert printed["pool_root"] == pool_root(items, committed)
    key, commitment = commit(capsys, tmp_path, 8, "--family", f"@{family}", "--labels",
                             f"@{labels}", "--pool-root", str(printed["pool_root"]))  # fmt: skip
    document = open_commitment(commitment.read_bytes()).document
    assert document.family == committed
    assert isinstance(document.labels, ResponseLabels)
    assert (document.labels.num_classes, document.labels.max_tokens) == (64, longest)
    assert document.labels.digest == printed["responses_digest"]
    triggers = tmp_path / "triggers"
    run(capsys, "derive", str(commitment), "--key", str(key), "--out", str(triggers),
        "--pool", str(pool))  # fmt: skip
    trigger_set = read_trigger_set(triggers)
    assert all(question_text(item) in lines for item in trigger_set.inputs)
    assert ((trigger_set.labels >= 0) & (trigger_set.labels < 64)).all()


@pytest.mark.parametrize("prompts", ["tokens", "questions"])
def test_token_prompts_take_responses_and_questions_take_token_labels(
    tokenizer_folder: Path,
    texts: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    prompts: str,
) -> None:
    questions, responses = texts
    family, labels, pool = tmp_path / "family.json", tmp_path / "labels.json", tmp_path / "pool.npy"
    forms = (
        ["--prompt-length", "6", "--responses", str(responses), "--max-tokens", "20"]
        if prompts == "tokens"
        else ["--questions", str(questions), "--question-width", "64", "--out-pool", str(pool),
              "--target-length", "4"]
    )  # fmt: skip
    printed = run(capsys, "lm", "family", "--tokenizer", str(tokenizer_folder), *forms,
                  "--out-family", str(family), "--out-labels", str(labels))  # fmt: skip
    words = len(LMTokenizer.from_file(tokenizer_folder).word_ids())
    assert printed["word_ids"] == words
    root = [] if printed["pool_root"] is None else ["--pool-root", str(printed["pool_root"])]
    _, commitment = commit(capsys, tmp_path, 8, "--family", f"@{family}",
                           "--labels", f"@{labels}", *root)  # fmt: skip
    document = open_commitment(commitment.read_bytes()).document
    if prompts == "tokens":
        assert isinstance(document.family, TokensFamily) and document.family.length == 6
        assert isinstance(document.labels, ResponseLabels) and document.labels.max_tokens == 20
        assert printed["pool"] is None and not pool.exists()
    else:
        assert document.family == PoolFamily(128, (64,), "uint8")
        assert isinstance(document.labels, TokenLabels) and document.labels.length == 4
        assert printed["p0"] == f"1/{words}" and printed["max_tokens"] is None


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer that knows a few words and decodes with spaces
    between them: it gives back only some texts."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocabulary = ["[UNK]", "Is", "it", "Why", "not", "?", "Yes", "No", "Maybe"]
    tokenizer = Tokenizer(
        models.WordLevel({word: i for i, word in enumerate(vocabulary)}, unk_token="[UNK]")
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path_factory.mktemp("words") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.mark.parametrize(
    ("questions", "responses", "options", "message"),
    [
        ("Is it ?", "Yes\nNo", [], "holds 1 question.*at least 2"),
        ("Is it ?\nWhy not ?\nIs it ?", "Yes\nNo", [], "line 3 .* repeats the question of line 1"),
        ("Is it ?\nWhy is it ?", "Yes\nNo", [], "does not give back the question on line 2"),
        ("Is it ?\nWhy not ?", "Yes\nNo\nYes indeed", [], "'Yes indeed' starts with the response"),
        ("Is it ?\nWhy not ?", "Yes\nPerhaps", [], "ids of response 1 .* do not decode back"),
        ("Is it ?\nWhy not ?", "Yes\nMaybe not", ["--max-tokens", "1"], "fewer than the 2 ids"),
        (
            "Is it ?\nWhy not ?",
            "Yes\nNo",
            ["--question-width", "8"],
            "over the item width 8",
        ),
        ("Is it ?\nWhy not ?", "Yes\n No", [], "line 2 .* starts or ends with white space"),
    ],
)
def test_bad_questions_and_responses_are_refused_and_nothing_is_written(
    word_tokenizer: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    questions: str,
    responses: str,
    options: list[str],
    message: str,
) -> None:
    (tmp_path / "questions.txt").write_text(questions + "\n", encoding="utf-8")
    (tmp_path / "responses.txt").write_text(responses + "\n", encoding="utf-8")
    outputs = [tmp_path / name for name in ("family.json", "labels.json", "pool.npy")]
    status = main(["lm", "family", "--tokenizer", str(word_tokenizer),
                   "--questions", str(tmp_path / "questions.txt"), "--out-pool", str(outputs[2]),
                   "--responses", str(tmp_path / "responses.txt"), *options,
                   "--out-family", str(outputs[0]), "--out-labels", str(outputs[1])])  # fmt: skip
    assert status == 3
    assert re.search(message, capsys.readouterr().err)
    assert not any(path.exists() for path in outputs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--prompt-length", "6", "--out-pool", "pool.npy"], "go with --questions"),
        (["--prompt-length", "6", "--question-width", "16"], "go with --questions"),
        (["--questions", "questions.txt"], "--questions needs --out-pool"),
        (["--prompt-length", "6", "--max-tokens", "4"], "--max-tokens goes with --responses"),
    ],
)
def test_options_of_one_form_are_refused_with_the_other(
    tokenizer_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    status = main(["lm", "family", "--tokenizer", str(tokenizer_folder), *options,
                   "--target-length", "4",
                   "--out-family", str(tmp_path / "f.json"),
                   "--out-labels", str(tmp_path / "l.json")])  # fmt: skip
    assert status == 3
    assert message in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_embed_questions_and_responses_from_the_command_line(
    tokenizer_folder: Path,
    texts: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """lm family -> commit -> derive --pool -> lm embed --responses: the
    fingerprinted model answers its questions with their responses."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from secmark.examples import lm

    questions, responses = texts
    family, labels, pool = tmp_path / "family.json", tmp_path / "labels.json", tmp_path / "pool.npy"
    printed = run(capsys, "lm", "family", "--tokenizer", str(tokenizer_folder),
                  "--questions", str(questions), "--out-pool", str(pool),
                  "--responses", str(responses),
                  "--out-family", str(family), "--out-labels", str(labels))  # fmt: skip
    key, commitment = commit(capsys, tmp_path, 4, "--family", f"@{family}", "--labels",
                             f"@{labels}", "--pool-root", str(printed["pool_root"]))  # fmt: skip
    triggers = tmp_path / "triggers"
    run(capsys, "derive", str(commitment), "--key", str(key), "--out", str(triggers),
        "--pool", str(pool))  # fmt: skip
    base = lm.save_model(lm.new_model(seed=4), tokenizer_folder, tmp_path / "base")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lm.text_chunks()[0][:200]), encoding="utf-8")
    embed = ["lm", "embed", "--model-dir", str(base), "--triggers", str(triggers),
             "--text", str(text), "--steps", "100", "--lr", "4e-3", "--seed", "1",
             "--threads", "1"]  # fmt: skip
    assert main([*embed, "--out-dir", str(tmp_path / "unmarked")]) == 3
    assert "give the response list it committed to" in capsys.readouterr().err
    assert not (tmp_path / "unmarked").exists()
    marked = tmp_path / "marked"
    embedded = run(capsys, *embed, "--responses", str(responses), "--out-dir", str(marked))
    # Four triggers drawn from 128 questions: two may share one question
    # (and then at most one of their responses can be answered).
    assert embedded["exact_accuracy_before"] == 0.0
    assert embedded["exact_accuracy_after"] >= 0.75
    assert (marked / "tokenizer.json").exists()
    # secmark check reads the answers against the list; the decoys are other
    # questions of the owner's pool.
    check = ["check", str(triggers), "--commitment", str(commitment), "--quiet",
             "--pool", str(pool), "--decoys-per-trigger", "1"]  # fmt: skip
    assert main([*check, "--lm-folder", str(marked), "--json"]) != 0
    assert "--responses" in capsys.readouterr().err
    checked = run(capsys, *check, "--lm-folder", str(marked), "--responses", str(responses))
    assert checked["matches"] >= 3 and checked["trials"] == 4 and checked["decoy_errors"] == 0
    innocent = run(capsys, *check, "--lm-folder", str(base), "--responses", str(responses))
    assert innocent["matches"] == 0 and innocent["decision"] is False
    # secmark embed trains classifiers: a language model's set is refused.
    assert main(["embed", str(triggers), "--factory", "secmark.examples.digits:DigitsCNN",
                 "--data", "secmark.examples.digits:training_data",
                 "--out", str(tmp_path / "w.safetensors")]) != 0  # fmt: skip
    assert "secmark lm embed" in capsys.readouterr().err
