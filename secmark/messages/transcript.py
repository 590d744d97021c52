"""The transcript: every query the arbiter sent to the suspect, in order.

Each entry has the SHA-256 of the input sent, the suspect's raw answer or
the error it caused, for triggers the committed index (decoys have none),
and for a decoy drawn from a labelled decoy pool its known label (the
arbiter's word: the decoy inputs are not published). The arbiter signs it: the suspect's answers are attested by the
arbiter, and a third party re-counts the matches from it. ``queried`` is
the reference of what the arbiter actually queried (the canonical URL it
posted to, the digest of the weights file it loaded), bound to the claim's
reference before the first query; it equals ``suspect``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import PublicKeys
from secmark.encoding import format_time
from secmark.errors import EncodingError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS
from secmark.messages.document import Fields, SignedDocument, open_document

__all__ = ["MAX_ERROR_TEXT", "MAX_QUERIES", "Transcript", "TranscriptEntry", "open_transcript"]

MAX_QUERIES = 1 << 21
"""Challenged triggers plus decoys, with room to spare."""

_MAX_TRANSCRIPT_SIZE = 512 * 1024 * 1024
MAX_ERROR_TEXT = 2048
"""Longest error text an entry holds; a recorder cuts longer ones to it."""
_MAX_TOKENS = 1 << 16

Answer = int | float | list[int] | None


@dataclass(frozen=True)
class TranscriptEntry:
    """One query: ``answer`` or ``error`` is set, never both.

    ``decoy_label`` is the known label of a decoy drawn from a labelled
    decoy pool (a class as an int, a regression value as a number), and
    None for a trigger and for a decoy without one. Whether it lies in the
    commitment's label space is checked where the space is known
    (:func:`secmark.protocol.querying.score_answers`).

    Raises:
        EncodingError: both or neither of ``answer`` and ``error``; a
            trigger entry with a decoy label; a decoy label that is not a
            finite number.
    """

    position: int
    input_sha256: str
    trigger_index: int | None
    answer: Answer
    error: str | None
    decoy_label: int | float | None = None

    def __post_init__(self) -> None:
        if (self.answer is None) == (self.error is None):
            raise EncodingError("a transcript entry holds an answer or an error, exactly one")
        label = self.decoy_label
        if label is None:
            return
        if self.trigger_index is not None:
            raise EncodingError(
                f"the transcript entry at position {self.position} is trigger "
                f"{self.trigger_index} and carries a decoy label: only a decoy has a known label"
            )
        if type(label) not in (int, float) or not math.isfinite(label):
            raise EncodingError(
                f"the decoy label at position {self.position} must be a finite number "
                f"(a class or a regression value), not {label!r:.40}"
            )

    @property
    def is_trigger(self) -> bool:
        return self.trigger_index is not None

    def to_fields(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "decoy_label": self.decoy_label,
            "error": self.error,
            "input_sha256": self.input_sha256,
            "position": self.position,
            "trigger_index": self.trigger_index,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> TranscriptEntry:
        position = fields.integer("position", minimum=0, maximum=MAX_QUERIES)
        digest = fields.hex_digest("input_sha256")
        index = (
            None
            if fields.is_null("trigger_index")
            else fields.integer("trigger_index", minimum=0, maximum=MAX_COMMITTED_TRIGGERS - 1)
        )
        answer = fields.answer("answer", max_items=_MAX_TOKENS)
        error = None if fields.is_null("error") else fields.text("error", max_length=MAX_ERROR_TEXT)
        label = None if fields.is_null("decoy_label") else fields.json_number("decoy_label")
        return cls(position, digest, index, answer, error, label)


@dataclass(frozen=True)
class Transcript:
    """``secmark.transcript`` version 1, signed by the arbiter.

    ``queried``: the reference of what the arbiter actually queried
    (``secmark.protocol.suspects.bind_suspect``); it must equal ``suspect``.
    """

    TYPE: ClassVar[str] = "secmark.transcript"
    VERSION: ClassVar[int] = 1

    challenge_id: str
    suspect: str
    started: datetime
    finished: datetime
    entries: tuple[TranscriptEntry, ...]
    queried: str

    def __post_init__(self) -> None:
        if self.queried != self.suspect:
            raise EncodingError(
                f"the transcript records queries of {self.queried!r}, not of its suspect "
                f"{self.suspect!r}: the arbiter queried another model than the claim names"
            )
        if any(entry.position != i for i, entry in enumerate(self.entries)):
            raise EncodingError("transcript entries must be in the order sent, positions 0, 1, ...")
        seen: set[int] = set()
        for entry in self.entries:
            if entry.trigger_index is not None:
                if entry.trigger_index in seen:
                    raise EncodingError("a trigger index appears twice in the transcript")
                seen.add(entry.trigger_index)

    def to_fields(self) -> dict[str, Any]:
        return {
            "challenge_id": self.challenge_id,
            "entries": [entry.to_fields() for entry in self.entries],
            "finished": format_time(self.finished),
            "queried": self.queried,
            "started": format_time(self.started),
            "suspect": self.suspect,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Transcript:
        return cls(
            challenge_id=fields.hex_digest("challenge_id"),
            suspect=fields.text("suspect"),
            started=fields.time("started"),
            finished=fields.time("finished"),
            entries=tuple(
                fields.objects("entries", TranscriptEntry.from_fields, max_items=MAX_QUERIES)
            ),
            queried=fields.text("queried", max_length=MAX_SUSPECT_REFERENCE),
        )


def open_transcript(data: bytes, arbiter: PublicKeys) -> SignedDocument[Transcript]:
    return open_document(data, Transcript, arbiter, max_size=_MAX_TRANSCRIPT_SIZE)
