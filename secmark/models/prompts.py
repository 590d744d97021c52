"""What a language-model suspect is sent and what its answer counts as.

A language-model commitment's prompts are either token ids (the ``tokens``
family: decoded with the commitment's tokenizer) or natural questions drawn
from a Merkle-committed pool (the ``pool`` family with ``uint8`` items of
shape ``(B,)``). A question is stored as its UTF-8 bytes followed by zero
bytes up to ``B``: every item has the committed shape, and the leaf hashed
into the pool's Merkle tree is exactly those ``B`` bytes
(``specs/derivation.md`` 7.8), so the text of a revealed item is what the
owner committed, byte for byte. A question is text as a response is
(:mod:`secmark.messages.responses`): NFC, no control characters (so no zero
byte inside it), no white space at either end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, SuspectError
from secmark.messages.labels import LabelSpace, ResponseLabels, TokenLabels
from secmark.messages.responses import NO_RESPONSE, ResponseList, check_committed_text
from secmark.models.tokenizer import LMTokenizer

__all__ = [
    "MAX_QUESTION_BYTES",
    "AnswerReading",
    "answer_length",
    "prompt_texts",
    "question_item",
    "question_text",
]

MAX_QUESTION_BYTES = 4096
"""Widest question item, in UTF-8 bytes."""


def question_item(text: str, width: int) -> npt.NDArray[np.uint8]:
    """The pool item of the question ``text``: its UTF-8 bytes, then zero
    bytes up to ``width``.

    Raises:
        EncodingError: ``text`` is no committable line (NFC, no control
            characters, no white space at either end), or longer than
            ``width`` bytes in UTF-8; ``width`` outside [1, MAX_QUESTION_BYTES].
    """
    if not 1 <= width <= MAX_QUESTION_BYTES:
        raise EncodingError(f"a question item is 1 to {MAX_QUESTION_BYTES} bytes wide")
    data = check_committed_text(text, "a question", MAX_QUESTION_BYTES).encode("utf-8")
    if len(data) > width:
        raise EncodingError(
            f"the question {text[:40]!r} is {len(data)} bytes of UTF-8, over the item width {width}"
        )
    return np.frombuffer(data.ljust(width, b"\0"), dtype=np.uint8).copy()


def question_text(item: npt.ArrayLike) -> str:
    """The question a pool item holds (the inverse of :func:`question_item`).

    Raises:
        EncodingError: not a 1-D ``uint8`` array; bytes that are not UTF-8
            followed by zero bytes only; or text that is no committable line.
    """
    array = np.asarray(item)
    if array.ndim != 1 or array.dtype != np.uint8:
        raise EncodingError(
            f"a question item is a 1-D uint8 array, not shape {array.shape} of {array.dtype}"
        )
    data = array.tobytes().rstrip(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError("a question item is not UTF-8 text followed by zero bytes") from None
    return check_committed_text(text, "a question", len(array))


def answer_length(labels: LabelSpace | None) -> int | None:
    """The tokens a language-model suspect is asked to generate for a
    commitment with ``labels``: L for token labels, ``max_tokens`` for
    responses; None for a label space no language model answers."""
    if isinstance(labels, TokenLabels):
        return labels.length
    if isinstance(labels, ResponseLabels):
        return labels.max_tokens
    return None


def prompt_texts(batch: np.ndarray, tokenizer: LMTokenizer, source: str) -> list[str]:
    """The prompt text of every row of ``batch``: a ``uint8`` row is a
    question item (:func:`question_text`), a row of another integer dtype
    token ids that ``tokenizer`` decodes.

    Raises:
        SuspectError: prefixed with ``source``: not a 2-D integer array with
            at least one column, an id outside the tokenizer's vocabulary, or
            a row that is no question.
    """
    if batch.ndim != 2 or batch.dtype.kind not in "iu" or batch.shape[1] == 0:
        raise SuspectError(
            f"{source}: prompts must be a 2-D array of token ids or of question items (uint8), "
            f"got shape {batch.shape} of dtype {batch.dtype}"
        )
    try:
        if batch.dtype == np.uint8:
            return [question_text(row) for row in batch]
        vocab = tokenizer.vocab_size
        if (batch < 0).any() or (batch >= vocab).any():
            raise EncodingError(f"prompt token ids must lie in [0, {vocab})")
        return [tokenizer.decode([int(i) for i in row]) for row in batch]
    except EncodingError as error:
        raise SuspectError(f"{source}: {error}") from None


class AnswerReading:
    """How an answer text counts (module docstring): ``length`` token ids of
    ``tokenizer``, or, with ``responses``, the index of the response it
    gives. ``max_tokens`` is what a suspect is asked to generate: ``length``
    either way (for responses, the label space's ``max_tokens``).

    Raises:
        SuspectError: ``length`` not an integer in [1, ``limit``], or
            ``responses`` not a ResponseList.
    """

    __slots__ = ("_length", "_responses", "_tokenizer")

    def __init__(
        self,
        tokenizer: LMTokenizer,
        length: int,
        *,
        limit: int,
        responses: ResponseList | None = None,
    ) -> None:
        if not isinstance(tokenizer, LMTokenizer):
            raise SuspectError(f"tokenizer must be an LMTokenizer, got {type(tokenizer).__name__}")
        if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= limit:
            raise SuspectError(
                f"length must be an integer from 1 to {limit} (the tokens asked for), "
                f"got {length!r}"
            )
        if responses is not None and not isinstance(responses, ResponseList):
            raise SuspectError(f"responses must be a ResponseList, got {type(responses).__name__}")
        self._tokenizer = tokenizer
        self._length = length
        self._responses = responses

    @property
    def max_tokens(self) -> int:
        return self._length

    @property
    def responses(self) -> ResponseList | None:
        """The committed list answers are read against; None for token ids."""
        return self._responses

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one answer: ``(length,)`` ids, or ``()`` for an index."""
        return () if self._responses is not None else (self._length,)

    def read(self, text: str) -> int | list[int]:
        """What ``text`` counts as."""
        if self._responses is None:
            return self._tokenizer.answer_ids(text, self._length)
        index = self._responses.index_of(text)
        return NO_RESPONSE if index is None else index
