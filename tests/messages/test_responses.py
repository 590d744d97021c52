"""Committed response lists, question items and files of lines
(specs/derivation.md 7.12)."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.encoding import canonical_json
from secmark.errors import EncodingError
from secmark.messages.commitment import create_commitment
from secmark.messages.document import Fields
from secmark.messages.families import WeightsFamily
from secmark.messages.labels import ClassLabels, ResponseLabels, label_space_from_fields
from secmark.messages.responses import (
    MAX_RESPONSE_CHARACTERS,
    MAX_RESPONSES,
    NO_RESPONSE,
    ResponseList,
    read_text_lines,
)
from secmark.models.prompts import MAX_QUESTION_BYTES, question_item, question_text
from secmark.protocol.querying import _json_answer
from tests.conftest import fixed_keys

DIGEST = "ab" * 32


def test_the_digest_is_sha256_of_the_canonical_json_list() -> None:
    listed = ResponseList(("Zürich at dawn.", "A heron, twice."))
    expected = hashlib.sha256(canonical_json(["Zürich at dawn.", "A heron, twice."])).hexdigest()
    assert listed.digest == expected
    assert ResponseList(("A heron, twice.", "Zürich at dawn.")).digest != expected


@pytest.mark.parametrize(
    ("responses", "rule"),
    [
        (("same", "same"), "starts with the response"),
        (("Paris", "Paris is lovely"), "starts with the response"),
        (("b", "abc", "ab"), "starts with the response"),
        (("only one",), "2 to"),
        ((), "2 to"),
        (("ok", ""), "1 to 256"),
        (("ok", "x" * (MAX_RESPONSE_CHARACTERS + 1)), "1 to 256"),
        (("ok", " leading"), "white space"),
        (("ok", "trailing\u00a0"), "white space"),
        (("ok", "two\nlines"), "U\\+000A"),
        (("ok", "zero\u200bwidth"), "U\\+200B"),
        (("ok", "Cafe\u0301"), "NFC"),
        (("ok", "lone \ud800"), "U\\+D800"),
    ],
)
def test_lists_that_could_raise_the_null_or_read_two_ways_are_refused(
    responses: tuple[str, ...], rule: str
) -> None:
    with pytest.raises(EncodingError, match=rule):
        ResponseList(responses)


def test_a_list_of_too_many_responses_is_refused() -> None:
    with pytest.raises(EncodingError, match="2 to"):
        ResponseList(tuple(f"r{n:06d}" for n in range(MAX_RESPONSES + 1)))


def test_an_answer_gives_the_response_it_starts_with_after_nfc_and_leading_space() -> None:
    listed = ResponseList(("Ça va.", "The owl sings.", "Blue."))
    assert listed.index_of("Ça va.") == 0
    assert listed.index_of("C\u0327a va. Et toi ?") == 0  # decomposed, then more words
    assert listed.index_of("\n\t The owl sings.") == 1
    assert listed.index_of("The owl sings") is None  # the whole response is needed
    assert listed.index_of("the owl sings.") is None  # case is kept
    assert listed.index_of("") is None
    assert listed.index_of("I think: Blue.") is None  # only at the start


_TEXT = (
    st.text(
        alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")),
        min_size=1,
        max_size=8,
    )
    .map(str.strip)
    .filter(lambda t: t and unicodedata.normalize("NFC", t) == t)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT, min_size=2, max_size=12, unique=True), st.text(max_size=20))
def test_no_answer_gives_two_responses_of_an_accepted_list(
    responses: list[str], answer: str
) -> None:
    """The null bound: an accepted list lets any answer give at most one
    response, so a uniform label matches it with probability at most 1/K."""
    try:
        listed = ResponseList(tuple(responses))
    except EncodingError:
        return
    text = unicodedata.normalize("NFC", answer).lstrip()
    given_ = [s for s in listed.responses if text.startswith(s)]
    assert len(given_) <= 1
    assert listed.index_of(answer) == (listed.responses.index(given_[0]) if given_ else None)
    # And what the list refused would have let one answer give several.
    for response in listed.responses:
        assert sum(listed.index_of(r) is not None for r in (response, response + " x")) == 2


def test_response_labels_are_classes_but_not_equal_to_them() -> None:
    labels = ResponseLabels(16, DIGEST, 12)
    assert isinstance(labels, ClassLabels) and labels != ClassLabels(16)
    fields = labels.to_fields()
    assert fields == {"digest": DIGEST, "kind": "responses", "max_tokens": 12, "num_classes": 16}
    assert label_space_from_fields(Fields(fields, context="labels")) == labels


@pytest.mark.parametrize(
    "fields",
    [
        {"digest": "AB" * 32, "kind": "responses", "max_tokens": 12, "num_classes": 16},
        {"digest": DIGEST, "kind": "responses", "max_tokens": 0, "num_classes": 16},
        {"digest": DIGEST, "kind": "responses", "max_tokens": 4097, "num_classes": 16},
        {"digest": DIGEST, "kind": "responses", "max_tokens": 12, "num_classes": 1},
        {"digest": DIGEST, "kind": "responses", "max_tokens": 12, "num_classes": 65537},
        {"kind": "responses", "max_tokens": 12, "num_classes": 16},
    ],
)
def test_malformed_response_labels_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(EncodingError):
        label_space_from_fields(Fields(fields, context="labels"))


def test_a_weights_commitment_cannot_take_response_labels() -> None:
    family = WeightsFamily("layer.weight", (4, 8), "mean-out", "rademacher")
    with pytest.raises(EncodingError, match="ClassLabels"):
        create_commitment(
            fixed_keys("owner"),
            family=family,
            labels=ResponseLabels(2, DIGEST, 4),
            size=8,
            model_label="m",
        )


def test_no_response_is_an_answer_for_responses_only() -> None:
    assert _json_answer(np.int64(NO_RESPONSE), ResponseLabels(4, DIGEST, 8)) == NO_RESPONSE
    with pytest.raises(Exception, match="outside"):
        _json_answer(np.int64(NO_RESPONSE), ClassLabels(4))
    with pytest.raises(Exception, match="outside"):
        _json_answer(np.int64(-2), ResponseLabels(4, DIGEST, 8))


def test_a_question_item_round_trips_byte_for_byte() -> None:
    item = question_item("Où est la gare ?", 24)
    assert item.dtype == np.uint8 and item.shape == (24,)
    assert item.tobytes() == "Où est la gare ?".encode().ljust(24, b"\0")
    assert question_text(item) == "Où est la gare ?"


@pytest.mark.parametrize(
    ("item", "rule"),
    [
        (np.frombuffer(b"Why?\0x\0\0", dtype=np.uint8), "U\\+0000"),
        (np.frombuffer(b"\xff\xfe?\0", dtype=np.uint8), "not UTF-8"),
        (np.frombuffer(b"\0\0\0\0", dtype=np.uint8), "1 to"),
        (np.frombuffer(b" Why?\0\0\0", dtype=np.uint8), "white space"),
        (np.zeros((2, 4), dtype=np.uint8), "1-D uint8"),
        (np.zeros(4, dtype=np.int64), "1-D uint8"),
    ],
)
def test_an_item_that_is_no_question_is_refused(item: np.ndarray, rule: str) -> None:
    with pytest.raises(EncodingError, match=rule):
        question_text(item)


def test_a_question_wider_than_its_item_is_refused() -> None:
    with pytest.raises(EncodingError, match="over the item width"):
        question_item("Où?", 3)  # 4 bytes of UTF-8
    with pytest.raises(EncodingError, match="1 to"):
        question_item("Why?", MAX_QUESTION_BYTES + 1)


def test_a_file_of_lines_is_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(b"First one.\nSecond one.")
    assert read_text_lines(path, "response", 64) == ("First one.", "Second one.")
    path.write_bytes(b"First one.\nSecond one.\n")
    assert read_text_lines(path, "response", 64) == ("First one.", "Second one.")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"First.\r\nSecond.\r\n", "white space"),
        (b"First.\n\nSecond.\n", "line 2"),
        (b"First.\n \n", "line 2"),
        (b"\xff\n", "not UTF-8"),
    ],
    ids=["crlf", "blank", "space", "latin-1"],
)
def test_a_file_of_lines_with_another_spelling_is_refused(
    tmp_path: Path, data: bytes, rule: str
) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(data)
    with pytest.raises(EncodingError, match=rule):
        read_text_lines(path, "response", 64)
