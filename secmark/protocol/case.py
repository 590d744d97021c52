"""An arbiter's case: one claim's documents and the step it reached.

A case is kept by a :class:`~secmark.protocol.store.CaseStorage`: a case
folder (documents as files, the state in ``state.json``) or rows of a
database. Each step writes its document first and then the state, both
atomically, so a crash between steps loses nothing: the case resumes from the
last state written, and a document written by a step whose state was not
recorded is simply written again. A step is refused when the case is not at
the stage it needs, which also makes every step happen once (a challenge is
answered once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secmark.errors import EncodingError, ProtocolError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.document import Fields
from secmark.messages.release import MODEL_DIGEST_ALGORITHMS
from secmark.messages.verdict import OUTCOMES, TestFigures
from secmark.protocol.store import STATE_FILE, CaseStorage, FolderCaseStorage

__all__ = ["STAGES", "STATE_FILE", "Case"]

STAGES = ("claimed", "challenged", "revealed", "queried", "decided")
"""The steps of a case, in order."""

_MAX_PRIOR_CHALLENGES = 64


def _release_record(fields: Fields) -> None:
    fields.hex_digest("model_digest")
    if fields.text("model_digest_algorithm") not in MODEL_DIGEST_ALGORITHMS:
        raise EncodingError("the release record's model_digest_algorithm is unknown")
    fields.hex_digest("release_id")
    fields.time("trusted_time")


def _test_record(fields: Fields) -> None:
    TestFigures.from_fields(fields)


def check_record(stage: str, record: Any, *, what: str) -> None:
    """Check that ``record`` holds, with the right types, every fact the
    steps after ``stage`` read (fields it does not know are left alone).

    Raises:
        EncodingError: a fact is missing or of the wrong type; the message
            names ``what`` and the field.
    """
    if not isinstance(record, dict):
        raise EncodingError(f"{what}: the record must be a JSON object")
    fields = Fields(record, context=what)
    fields.hex_digest("claim_id")
    fields.hex_digest("commitment_id")
    fields.time("commitment_time")
    fields.hex_digest("owner")
    if not fields.is_null("release"):
        fields.nested("release", _release_record)
    fields.text("suspect", max_length=MAX_SUSPECT_REFERENCE)
    reached = STAGES.index(stage)
    if reached >= STAGES.index("challenged"):
        fields.hex_digest("challenge_id")
        fields.integer("prior_challenges", minimum=0, maximum=_MAX_PRIOR_CHALLENGES)
    if reached >= STAGES.index("queried"):
        fields.hex_digest("transcript_id")
        fields.boolean("holds")
        fields.nested("test", _test_record)
    if reached >= STAGES.index("decided"):
        fields.hex_digest("verdict_id")
        if fields.text("outcome") not in OUTCOMES:
            raise EncodingError(f"{what}: field 'outcome' must be one of {OUTCOMES}")


@dataclass
class Case:
    """A case: its stage, the facts later steps need (``record``), and its
    documents, kept by ``storage`` (a case folder, or rows of a database:
    :mod:`secmark.protocol.store`)."""

    storage: CaseStorage
    stage: str
    record: dict[str, Any]

    @classmethod
    def create(cls, where: Path | CaseStorage, record: dict[str, Any]) -> Case:
        """Store a new case at stage "claimed" (a folder is made if missing).

        Raises:
            ProtocolError: a database holds a state for the case already.
        """
        storage = _storage(where)
        storage.save_state("claimed", record, previous=None)
        return cls(storage, "claimed", record)

    @classmethod
    def load(cls, where: Path | CaseStorage) -> Case:
        """Load the case and check its state (:func:`check_record`).

        Raises:
            SecmarkError: no case there.
            EncodingError: a damaged state (not canonical JSON, an unknown
                stage, a fact missing or of the wrong type, or a claim id
                other than the case's name), naming the state file or row.
        """
        storage = _storage(where)
        what = storage.state_what
        try:
            stage, record = storage.read_state()
            if not isinstance(stage, str) or stage not in STAGES:
                raise EncodingError(f"{what} names an unknown stage {stage!r:.40}")
            check_record(stage, record, what=what)
            assert isinstance(record, dict)  # check_record refuses anything else
            if record["claim_id"] != storage.name:
                raise EncodingError(
                    f"{what} is the state of claim {record['claim_id']}, not of the "
                    f"case's claim {storage.name}"
                )
        except EncodingError as error:
            raise EncodingError(f"{error} (the case is damaged: {storage.repair})") from None
        return cls(storage, stage, record)

    @property
    def name(self) -> str:
        return self.storage.name

    @property
    def folder(self) -> Path:
        """The case folder.

        Raises:
            SecmarkError: the case is kept in a database, not a folder.
        """
        return self.storage.folder

    def require(self, stage: str, action: str) -> None:
        """Reload the stored state (another handle on this case may have
        moved it on), then check the case is at ``stage``.

        Raises:
            ProtocolError: the case is not at ``stage``.
            SecmarkError: the stored state is missing or damaged.
        """
        stored = Case.load(self.storage)
        self.stage, self.record = stored.stage, stored.record
        if self.stage != stage:
            raise ProtocolError(
                f"case {self.name} is at stage {self.stage!r}; {action} needs stage {stage!r}"
            )

    def at_least(self, stage: str) -> bool:
        return STAGES.index(self.stage) >= STAGES.index(stage)

    def write(self, name: str, data: bytes) -> None:
        self.storage.write(name, data)

    def read(self, name: str) -> bytes:
        """Document ``name`` of the case.

        Raises:
            SecmarkError: the case has no such document, or it cannot be read.
        """
        return self.storage.read(name)

    def exists(self, name: str) -> bool:
        return self.storage.exists(name)

    def advance(self, stage: str, **facts: Any) -> None:
        """Record ``facts`` and move to ``stage`` (the next one), in one
        transaction (or one atomic file); this handle changes only once the
        new state is stored.

        Raises:
            ProtocolError: ``stage`` is not the next one, or (in a database)
                the stored case moved on meanwhile.
        """
        if STAGES.index(stage) != STAGES.index(self.stage) + 1:
            raise ProtocolError(f"case {self.name} cannot go from {self.stage!r} to {stage!r}")
        record = {**self.record, **facts}
        self.storage.save_state(stage, record, previous=self.stage)
        self.stage, self.record = stage, record


def _storage(where: Path | CaseStorage) -> CaseStorage:
    # A path is a case folder, as before there were stores.
    return FolderCaseStorage(where) if isinstance(where, Path) else where
