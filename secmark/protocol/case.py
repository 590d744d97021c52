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
from secmark.errors import ProtocolError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, write_atomic

__all__ = ["STAGES", "Case"]

STAGES = ("claimed", "challenged", "revealed", "queried", "decided")
"""The steps of a case, in order."""

STATE_FILE = "state.json"
_MAX_STATE_SIZE = 1 << 20


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
        """Raises:
        SecmarkError: no case in ``folder``, or a damaged state file."""
        try:
            data = (folder / STATE_FILE).read_bytes()
        except OSError as error:
            raise SecmarkError(f"no case in {folder}: {error.strerror}") from None
        value = parse_canonical_json(data, max_size=_MAX_STATE_SIZE, what="case state")
        if not isinstance(value, dict) or value.get("stage") not in STAGES:
            raise SecmarkError(f"the case state in {folder} is damaged")
        return cls(folder, value["stage"], value["record"])

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
        try:
            return (self.folder / name).read_bytes()
        except OSError as error:
            raise SecmarkError(f"case {self.name} lacks {name}: {error.strerror}") from None

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
