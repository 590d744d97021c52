"""The text of a language-model prompt, from a trigger's input.

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

from secmark.errors import EncodingError
from secmark.messages.responses import check_committed_text

__all__ = ["MAX_QUESTION_BYTES", "question_item", "question_text"]

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
    data = check_committed_text(text, "a question", width).encode("utf-8")
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
