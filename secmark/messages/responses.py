"""A committed list of target responses, and when an answer gives one.

A language-model commitment may draw each trigger's target response from a
list of K strings the owner wrote (``ResponseLabels``): the label is the
index ``U(K)`` of a response, so a model that never learnt the fingerprint
gives trigger ``i``'s response with probability at most 1/K, whatever it
answers, provided no answer can give two responses at once. An answer
*gives* response ``s`` when its text, in Unicode NFC with its leading white
space removed, starts with ``s`` (:meth:`ResponseList.index_of`): a marked
model may go on after the response, and a chat API strips or adds white
space at the front. So the list must be *prefix-free*: no response starts
with another (which also makes them distinct). A list with "Paris" twice,
or "Paris" and "Paris is", would let one answer match two labels and raise
the null above 1/K; such a list is refused here, by the owner's tools when
committing and by every verifier when the list is revealed.

The commitment holds the list's digest only (``digest``: SHA-256 of the
list's RFC 8785 canonical JSON, an array of strings, in the committed
order), not the list: a suspect that knew the responses could refuse to
give them. The whole list is revealed with the first challenge answered
(``specs/derivation.md`` 7.12), since prefix-freeness is a property of the
whole list that no part of it shows.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from secmark.encoding.jcs import canonical_json
from secmark.errors import EncodingError
from secmark.files import read_regular_file

__all__ = [
    "MAX_RESPONSES",
    "MAX_RESPONSE_CHARACTERS",
    "MAX_TEXT_LINES_FILE",
    "NO_RESPONSE",
    "ResponseList",
    "check_committed_text",
    "read_text_lines",
]

MAX_RESPONSES: Final = 1 << 16
"""Most responses in a list: p0 = 2^-16 per trigger already decides in 4."""

MAX_RESPONSE_CHARACTERS: Final = 256
"""Longest response, in characters (code points)."""

NO_RESPONSE: Final = -1
"""What a transcript records for an answer that gives no committed response:
no response index, so it matches no label."""

MAX_TEXT_LINES_FILE: Final = 64 * 1024 * 1024
"""Largest file of lines (responses, questions) read."""


def check_committed_text(text: object, what: str, limit: int) -> str:
    """``text`` if it is a line secmark can commit: a string of 1 to ``limit``
    characters, in NFC, without control or format characters and without
    white space at either end.

    Raises:
        EncodingError: naming ``what`` and the rule broken.
    """
    if not isinstance(text, str) or not 0 < len(text) <= limit:
        raise EncodingError(f"{what} must be a string of 1 to {limit} characters")
    if text != text.strip():
        raise EncodingError(f"{what} {text[:40]!r} starts or ends with white space")
    if unicodedata.normalize("NFC", text) != text:
        raise EncodingError(f"{what} {text[:40]!r} is not in Unicode NFC: normalise it first")
    for character in text:
        if unicodedata.category(character).startswith("C"):
            raise EncodingError(
                f"{what} {text[:40]!r} holds the control, format, surrogate or unassigned "
                f"character U+{ord(character):04X}"
            )
    return text


@dataclass(frozen=True)
class ResponseList:
    """K target responses, in the committed order (module docstring).

    Raises:
        EncodingError: fewer than 2 or more than :data:`MAX_RESPONSES`
            responses; a response that is not 1 to
            :data:`MAX_RESPONSE_CHARACTERS` characters of NFC text without
            control characters and surrounding white space; one response
            that starts with another (the message names both).
    """

    responses: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.responses, tuple) or not 2 <= len(self.responses) <= MAX_RESPONSES:
            raise EncodingError(f"a response list holds 2 to {MAX_RESPONSES} responses")
        for position, response in enumerate(self.responses):
            check_committed_text(response, f"response {position}", MAX_RESPONSE_CHARACTERS)
        # In sorted order a string's extensions follow it directly, so
        # checking neighbours finds every prefix, duplicates included.
        ordered = sorted(self.responses)
        for shorter, longer in itertools.pairwise(ordered):
            if longer.startswith(shorter):
                raise EncodingError(
                    f"the response {longer[:40]!r} starts with the response {shorter[:40]!r}: "
                    "one answer would give both, so responses must be distinct and none may "
                    "start with another"
                )

    @property
    def digest(self) -> str:
        """Lower-case hex SHA-256 of the list's canonical JSON (what is committed)."""
        return hashlib.sha256(canonical_json(list(self.responses))).hexdigest()

    def __len__(self) -> int:
        return len(self.responses)

    def index_of(self, answer: str) -> int | None:
        """The index of the response ``answer`` gives, or None.

        ``answer`` gives response ``s`` when ``NFC(answer)`` without its
        leading white space starts with ``s``; the list being prefix-free,
        at most one response qualifies.
        """
        text = unicodedata.normalize("NFC", answer).lstrip()
        for index, response in enumerate(self.responses):
            if text.startswith(response):
                return index
        return None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ResponseList:
        """The responses of a UTF-8 file, one per line (:func:`read_text_lines`).

        Raises:
            SecmarkError: the file cannot be read.
            EncodingError: as :func:`read_text_lines`, or as the constructor.
        """
        return cls(read_text_lines(path, "response", MAX_RESPONSE_CHARACTERS))


def read_text_lines(path: str | os.PathLike[str], what: str, limit: int) -> tuple[str, ...]:
    """The lines of the UTF-8 text file ``path``, each a ``what`` of 1 to
    ``limit`` characters as a committed line must be (NFC, no control
    characters, no white space at either end). Lines end with ``\\n``; the
    last may or may not; a blank line is refused, not skipped, since a
    committed list's order and count must be exactly what its writer sees.

    Raises:
        SecmarkError: the file cannot be read or exceeds
            :data:`MAX_TEXT_LINES_FILE`.
        EncodingError: not UTF-8, or a line that breaks a rule (named by
            its number; a ``\\r`` line ending is a control character).
    """
    data = read_regular_file(Path(path), max_size=MAX_TEXT_LINES_FILE, what=f"{what} file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EncodingError(f"{path} is not UTF-8 text: {error.reason}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        check_committed_text(line, f"line {number} of {path}:", limit)
    return tuple(lines)
