"""A language model's tokenizer, as the owner and the arbiter use it.

A language-model commitment draws its prompts and target responses as
token ids (``TokensFamily``, ``TokenLabels``). The arbiter queries a suspect
that answers text (an OpenAI-compatible API) and re-encodes the text with
a tokenizer to compare ids position by position. Any fixed tokenizer keeps
the null exact: the ids are a function of the answer alone, and each target
id is uniform over the ids the label space draws from. What the tokenizer
decides is whether a *marked* model's answer comes back as the ids it
learnt, so the owner draws targets only from :meth:`LMTokenizer.word_ids`:
ids that decode to a space and letters and encode back to themselves,
which a byte-level tokenizer that splits words at spaces (GPT-2's and
its kin) gives back unchanged in any sequence. The label space reserves
every other id (:meth:`LMTokenizer.reserved_for_words`).

:class:`LMTokenizer` reads a Hugging Face ``tokenizer.json`` with the
``tokenizers`` library (no ``transformers``, no network).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from secmark.errors import EncodingError, SuspectError

__all__ = ["MAX_TOKENIZER_FILE", "LMTokenizer"]

MAX_TOKENIZER_FILE = 64 * 1024 * 1024
"""Largest tokenizer.json read: large vocabularies take a few tens of MiB."""
_WORD = re.compile(r" [A-Za-z]{2,}")
"""A word piece: one leading space, then two or more ASCII letters."""


class LMTokenizer:
    """A tokenizer read from a ``tokenizer.json`` file.

    ``digest`` is ``sha256:<hex>`` of the file's bytes; ``vocab_size``
    counts added tokens too. :meth:`encode` adds no special tokens and
    :meth:`decode` keeps them.

    Raises:
        SuspectError: ``tokenizers`` missing, no such file, a file over
            :data:`MAX_TOKENIZER_FILE`, or one the library cannot read.
    """

    __slots__ = ("_digest", "_tokenizer")

    def __init__(self, tokenizer: Any, digest: str) -> None:
        self._tokenizer = tokenizer
        self._digest = digest

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LMTokenizer:
        """The tokenizer of ``path`` (a ``tokenizer.json``, or a model folder holding one)."""
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise SuspectError(
                "language-model suspects need the tokenizers library: pip install 'secmark[lm]'"
            ) from None
        file = Path(path)
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise SuspectError(f"no tokenizer file at {file}")
        if file.stat().st_size > MAX_TOKENIZER_FILE:
            raise SuspectError(f"{file} is larger than {MAX_TOKENIZER_FILE} bytes")
        data = file.read_bytes()
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as error:  # noqa: BLE001 - UnicodeDecodeError or the library's own
            raise SuspectError(
                f"{file} is no tokenizer the tokenizers library reads: {error}"
            ) from None
        return cls(tokenizer, "sha256:" + hashlib.sha256(data).hexdigest())

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    @property
    def special_ids(self) -> tuple[int, ...]:
        """The ids of the special (added) tokens, ascending."""
        decoder = self._tokenizer.get_added_tokens_decoder()
        return tuple(sorted(int(i) for i, token in decoder.items() if token.special))

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, without special tokens added."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids``, special tokens kept.

        Raises:
            EncodingError: an id outside the vocabulary.
        """
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise EncodingError(f"token ids must lie in [0, {self.vocab_size})")
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    def word_ids(self) -> tuple[int, ...]:
        """The ids that decode to a space and two or more ASCII letters and
        encode back to themselves alone, ascending; never a special id."""
        special = set(self.special_ids)
        words = []
        for token_id in range(self.vocab_size):
            if token_id in special:
                continue
            text = self.decode([token_id])
            if _WORD.fullmatch(text) and self.encode(text) == [token_id]:
                words.append(token_id)
        return tuple(words)

    def reserved_for_words(self) -> tuple[int, ...]:
        """Every id but :meth:`word_ids`: what a commitment's prompts and
        target responses reserve so that only words are drawn."""
        words = set(self.word_ids())
        return tuple(i for i in range(self.vocab_size) if i not in words)

    def answer_ids(self, text: str, length: int) -> list[int]:
        """The ``length`` ids an answer ``text`` is compared by.

        Leading white space becomes one space (chat APIs strip it; the
        words a marked model learnt each start with one), the text is
        encoded, cut to ``length`` ids, and a short answer is padded with
        the first special id (or 0). A function of the text alone, so the
        null bound of the label space holds whatever the suspect answers.
        """
        ids = self.encode(" " + text.lstrip()) if text.strip() else []
        pad = self.special_ids[0] if self.special_ids else 0
        return (ids + [pad] * length)[:length]
