"""``secmark lm family``: a language-model commitment's family and labels for a tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmark.cli.main import main
from secmark.messages.commitment import open_commitment
from secmark.messages.families import TokensFamily
from secmark.messages.labels import TokenLabels
from secmark.models.tokenizer import LMTokenizer

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


def test_the_family_and_labels_draw_only_words_and_commit(
    tokenizer_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    family, labels = tmp_path / "family.json", tmp_path / "labels.json"
    printed = run(capsys, "lm", "family", "--tokenizer", str(tokenizer_folder),
                  "--prompt-length", "8", "--target-length", "4",
                  "--out-family", str(family), "--out-labels", str(labels))  # fmt: skip
    tokenizer = LMTokenizer.from_file(tokenizer_folder)
    words = len(tokenizer.word_ids())
    assert printed["p0"] == f"1/{words}" and printed["word_ids"] == words
    assert printed["triggers_needed"] == 2  # 8 tokens at 1/516: 2^-72
    keys = tmp_path / "keys"
    run(capsys, "keygen", "Owner", "--out-dir", str(keys), "--unencrypted")
    commitment = tmp_path / "commitment.json"
    run(capsys, "commit", "--key", str(keys / "Owner.key"), "--family", f"@{family}",
        "--labels", f"@{labels}", "--size", "64", "--out", str(commitment))  # fmt: skip
    document = open_commitment(commitment.read_bytes()).document
    assert isinstance(document.family, TokensFamily) and document.family.length == 8
    assert isinstance(document.labels, TokenLabels) and document.labels.length == 4
    assert document.labels.reserved == tokenizer.reserved_for_words()
    assert document.family.reserved == tokenizer.reserved_for_words()


def test_lengths_out_of_range_and_existing_files_are_refused(
    tokenizer_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    family, labels = tmp_path / "family.json", tmp_path / "labels.json"
    base = ["lm", "family", "--tokenizer", str(tokenizer_folder),
            "--out-family", str(family), "--out-labels", str(labels)]  # fmt: skip
    assert main([*base, "--prompt-length", "0", "--target-length", "4"]) == 3
    assert not family.exists() and not labels.exists()
    labels.write_text("{}", encoding="utf-8")
    assert main([*base, "--prompt-length", "8", "--target-length", "4"]) == 3
    assert not family.exists()
    capsys.readouterr()


def test_derive_embed_and_check_a_language_model_from_the_command_line(
    tokenizer_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lm family -> commit -> derive -> lm embed -> check --lm-folder: the
    fingerprinted model shows the watermark, the model it started from does not."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from secmark.examples import lm

    family, labels = tmp_path / "family.json", tmp_path / "labels.json"
    run(capsys, "lm", "family", "--tokenizer", str(tokenizer_folder),
        "--prompt-length", "6", "--target-length", "4",
        "--out-family", str(family), "--out-labels", str(labels))  # fmt: skip
    keys = tmp_path / "keys"
    run(capsys, "keygen", "Owner", "--out-dir", str(keys), "--unencrypted")
    commitment = tmp_path / "commitment.json"
    run(capsys, "commit", "--key", str(keys / "Owner.key"), "--family", f"@{family}",
        "--labels", f"@{labels}", "--size", "4", "--out", str(commitment))  # fmt: skip
    triggers = tmp_path / "triggers"
    run(capsys, "derive", str(commitment), "--key", str(keys / "Owner.key"), "--out", str(triggers))
    base = lm.save_model(lm.new_model(seed=4), tokenizer_folder, tmp_path / "base")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lm.text_chunks()[0][:200]), encoding="utf-8")
    marked = tmp_path / "marked"
    embedded = run(capsys, "lm", "embed", "--model-dir", str(base), "--triggers", str(triggers),
                   "--text", str(text), "--out-dir", str(marked), "--steps", "40",
                   "--lr", "3e-3", "--seed", "1", "--threads", "1")  # fmt: skip
    assert embedded["exact_accuracy_after"] == 1.0
    checked = run(capsys, "check", str(triggers), "--commitment", str(commitment),
                  "--lm-folder", str(marked), "--quiet")  # fmt: skip
    assert checked["decision"] is True and checked["matches"] == checked["trials"] == 16
    innocent = run(capsys, "check", str(triggers), "--commitment", str(commitment),
                   "--lm-folder", str(base), "--quiet")  # fmt: skip
    assert innocent["decision"] is False
