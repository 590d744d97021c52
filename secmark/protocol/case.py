"""An arbiter's case folder: one claim's documents and the step it reached.

Each step writes its document first and then the state file, both
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

from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, read_regular_file, write_atomic
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.document import Fields
from secmark.messages.release import MODEL_DIGEST_ALGORITHMS
from secmark.messages.verdict import OUTCOMES, TestFigures

__all__ = ["STAGES", "Case"]

STAGES = ("claimed", "challenged", "revealed", "queried", "decided")
"""The steps of a case, in order."""

STATE_FILE = "state.json"
_MAX_STATE_SIZE = 1 << 20
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
    """A case folder. ``record`` holds the facts later steps need."""

    folder: Path
    stage: str
    record: dict[str, Any]

    @classmethod
    def create(cls, folder: Path, record: dict[str, Any]) -> Case:
        folder.mkdir(parents=True, exist_ok=True)
        case = cls(folder, "claimed", record)
        case._save()
        return case

    @classmethod
    def load(cls, folder: Path) -> Case:
        """Load the case and check its state file (:func:`check_record`).

        Raises:
            SecmarkError: no case in ``folder``.
            EncodingError: a damaged state file (not canonical JSON, an
                unknown stage, a fact missing or of the wrong type, or a
                claim id other than the folder's name), naming the file.
        """
        path = folder / STATE_FILE
        if not path.exists():
            raise SecmarkError(f"no case in {folder}: it has no {STATE_FILE}")
        what = f"the case state {path}"
        data = read_regular_file(path, max_size=_MAX_STATE_SIZE, what=what)
        try:
            value = parse_canonical_json(data, max_size=_MAX_STATE_SIZE, what=what)
            if not isinstance(value, dict) or set(value) != {"record", "stage"}:
                raise EncodingError(f"{what} must be an object with exactly record and stage")
            stage = value["stage"]
            if not isinstance(stage, str) or stage not in STAGES:
                raise EncodingError(f"{what} names an unknown stage {stage!r:.40}")
            check_record(stage, value["record"], what=what)
            if value["record"]["claim_id"] != folder.name:
                raise EncodingError(
                    f"{what} is the state of claim {value['record']['claim_id']}, not of the "
                    f"folder's claim {folder.name}"
                )
        except EncodingError as error:
            raise EncodingError(
                f"{error} (the case is damaged: restore {path} from a backup, or move the "
                "case folder out of the arbiter's cases)"
            ) from None
        return cls(folder, stage, value["record"])

    @property
    def name(self) -> str:
        return self.folder.name

    def require(self, stage: str, action: str) -> None:
        """Reload the stored state (another handle on this folder may have
        moved the case on), then check the case is at ``stage``.

        Raises:
        ProtocolError: the case is not at ``stage``.
        SecmarkError: the state file is missing or damaged."""
        stored = Case.load(self.folder)
        self.stage, self.record = stored.stage, stored.record
        if self.stage != stage:
            raise ProtocolError(
                f"case {self.name} is at stage {self.stage!r}; {action} needs stage {stage!r}"
            )

    def at_least(self, stage: str) -> bool:
        return STAGES.index(self.stage) >= STAGES.index(stage)

    def write(self, name: str, data: bytes) -> None:
        write_atomic(self.folder / name, data, mode=PUBLIC_FILE_MODE, overwrite=True)

    def read(self, name: str) -> bytes:
        path = self.folder / name
        if not path.exists():
            raise SecmarkError(f"case {self.name} lacks {name}")
        return read_regular_file(path, what=f"case {self.name} file")

    def advance(self, stage: str, **facts: Any) -> None:
        """Record ``facts`` and move to ``stage`` (the next one)."""
        if STAGES.index(stage) != STAGES.index(self.stage) + 1:
            raise ProtocolError(f"case {self.name} cannot go from {self.stage!r} to {stage!r}")
        self.record.update(facts)
        self.stage = stage
        self._save()

    def _save(self) -> None:
        state = canonical_json({"record": self.record, "stage": self.stage})
        write_atomic(self.folder / STATE_FILE, state, mode=PUBLIC_FILE_MODE, overwrite=True)
