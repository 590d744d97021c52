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
