"""Where an arbiter keeps its state: a folder of case folders, or a database.

An :class:`ArbiterStore` holds everything :class:`~secmark.protocol.arbiter.Arbiter`
persists besides its keys and configuration:

- the cases, by claim id: each a stage and a record
  (:class:`~secmark.protocol.case.Case` checks them) and named documents
  (``claim.json``, ``challenge.json``, ... as the steps write them), reached
  through the :class:`CaseStorage` the store hands out;
- the challenge registry: commitment id -> claim id -> challenge id of every
  challenge issued, which counts each commitment's earlier challenges;
- :meth:`ArbiterStore.exclusive`, the lock held by the steps that read the
  other cases' state and then write their own.

:class:`FolderStore` is the folder layout the arbiter has always used
(``cases/<claim id>/`` with ``state.json``, ``registry.json``,
``arbiter.lock``); :class:`~secmark.protocol.database_store.DatabaseStore`
keeps the same state in SQLite or PostgreSQL.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from secmark.encoding import canonical_json, is_hex_digest, parse_canonical_json
from secmark.errors import EncodingError, SecmarkError
from secmark.files import PUBLIC_FILE_MODE, exclusive_lock, read_regular_file, write_atomic

__all__ = [
    "LOCK_FILE",
    "REGISTRY_FILE",
    "STATE_FILE",
    "ArbiterStore",
    "CaseStorage",
    "FolderCaseStorage",
    "FolderStore",
    "Registry",
    "check_registry",
]

STATE_FILE = "state.json"
REGISTRY_FILE = "registry.json"
LOCK_FILE = "arbiter.lock"
MAX_STATE_SIZE = 1 << 20
_MAX_REGISTRY_SIZE = 64 * 1024 * 1024

Registry = dict[str, dict[str, str]]
"""Commitment id -> claim id -> challenge id."""


def check_registry(value: object, *, what: str) -> Registry:
    """``value`` as a registry, checked: hex digests all through.

    It counts the earlier challenges of each commitment (its alpha budget),
    so a damaged registry is refused, never read as empty.

    Raises:
        EncodingError: not a mapping of commitment ids to mappings of claim
            ids to challenge ids; the message names ``what``.
    """
    if not isinstance(value, dict) or not all(
        is_hex_digest(commitment)
        and isinstance(issued, dict)
        and all(is_hex_digest(k) and is_hex_digest(v) for k, v in issued.items())
        for commitment, issued in value.items()
    ):
        raise EncodingError(
            f"{what} is damaged: it must map commitment ids to objects mapping claim ids "
            "to challenge ids (restore it from a backup; it counts each commitment's "
            "challenges, so it cannot be rebuilt empty)"
        )
    return value


class CaseStorage(Protocol):
    """One case's stored state and documents (the case may not exist yet).

    Every method raises :class:`SecmarkError` when the storage fails,
    besides the errors it names.
    """

    @property
    def name(self) -> str:
        """The case's name: its claim id (for a folder, the folder's name)."""

    @property
    def folder(self) -> Path:
        """The case folder.

        Raises:
            SecmarkError: the store keeps no folders.
        """

    @property
    def state_what(self) -> str:
        """How error messages name the stored state."""

    @property
    def repair(self) -> str:
        """What to do about a damaged state, for error messages."""

    def has_state(self) -> bool:
        """Whether a state is stored (the case exists)."""

    def read_state(self) -> tuple[object, object]:
        """The stored (stage, record), parsed but not checked.

        Raises:
            SecmarkError: no state is stored.
            EncodingError: the stored state cannot be parsed.
        """

    def save_state(self, stage: str, record: dict[str, Any], *, previous: str | None) -> None:
        """Store ``stage`` and ``record`` at once (one transaction, or one
        atomic file): a crash leaves the previous state or this one.

        ``previous`` is the stage the caller read (None: a new case). A
        store that can compare and set in the same transaction refuses a
        state that moved on meanwhile.

        Raises:
            ProtocolError: the stored stage is not ``previous`` (where checked).
        """

    def write(self, name: str, data: bytes) -> None:
        """Store document ``name`` (replacing it), all of it or nothing."""

    def read(self, name: str) -> bytes:
        """Document ``name``.

        Raises:
            SecmarkError: the case has no such document.
            EncodingError: the stored document is damaged.
        """

    def exists(self, name: str) -> bool:
        """Whether the case has document ``name``."""


class ArbiterStore(Protocol):
    """Everything an arbiter persists (see the module's documentation).

    Every method raises :class:`SecmarkError` when the storage fails,
    besides the errors it names.
    """

    def exclusive(self) -> AbstractContextManager[None]:
        """The arbiter's lock, for the ``with`` block: the steps that read
        the other cases' state and then write their own hold it, so that two
        such steps at once, in threads or processes, never miss each other's
        write. In a database the block is also one transaction: what it
        writes is stored all together at its end, or not at all."""

    def registry(self) -> Registry:
        """Every challenge issued (:data:`Registry`).

        Raises:
            EncodingError: the stored registry is damaged.
        """

    def record_challenge(self, commitment_id: str, claim_id: str, challenge_id: str) -> None:
        """Add (or replace) a challenge in the registry; call it inside
        :meth:`exclusive`, after reading the count it extends.

        Raises:
            EncodingError: the stored registry is damaged.
        """

    def case_storage(self, name: str) -> CaseStorage:
        """The storage of the case ``name`` (a claim id), existing or not."""

    def case_names(self) -> list[str]:
        """The names of every case with a stored state, sorted."""

    def describe(self) -> str:
        """Where the cases are, for messages."""


class FolderCaseStorage:
    """A case folder: documents are files, the state is ``state.json``.

    Files are written atomically (:func:`~secmark.files.write_atomic`), so a
    crash leaves each file whole, old or new.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @property
    def name(self) -> str:
        return self._folder.name

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def state_what(self) -> str:
        return f"the case state {self._folder / STATE_FILE}"

    @property
    def repair(self) -> str:
        return (
            f"restore {self._folder / STATE_FILE} from a backup, or move the case folder out "
            "of the arbiter's cases"
        )

    def has_state(self) -> bool:
        return (self._folder / STATE_FILE).exists()

    def read_state(self) -> tuple[object, object]:
        path = self._folder / STATE_FILE
        if not path.exists():
            raise SecmarkError(f"no case in {self._folder}: it has no {STATE_FILE}")
        what = self.state_what
        data = read_regular_file(path, max_size=MAX_STATE_SIZE, what=what)
        value = parse_canonical_json(data, max_size=MAX_STATE_SIZE, what=what)
        if not isinstance(value, dict) or set(value) != {"record", "stage"}:
            raise EncodingError(f"{what} must be an object with exactly record and stage")
        return value["stage"], value["record"]

    def save_state(self, stage: str, record: dict[str, Any], *, previous: str | None) -> None:
        # A file cannot be compared and replaced at once: the arbiter's steps
        # re-read the state first (Case.require), as they always have.
        self._folder.mkdir(parents=True, exist_ok=True)
        state = canonical_json({"record": record, "stage": stage})
        write_atomic(self._folder / STATE_FILE, state, mode=PUBLIC_FILE_MODE, overwrite=True)

    def write(self, name: str, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self._folder / name, data, mode=PUBLIC_FILE_MODE, overwrite=True)

    def read(self, name: str) -> bytes:
        path = self._folder / name
        if not path.exists():
            raise SecmarkError(f"case {self.name} lacks {name}")
        return read_regular_file(path, what=f"case {self.name} file")

    def exists(self, name: str) -> bool:
        return (self._folder / name).exists()


class FolderStore:
    """The arbiter's state in ``folder``: ``cases/<claim id>/`` folders,
    ``registry.json`` and the lock file ``arbiter.lock`` (an ``flock``, held
    across threads and processes on one host)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "cases").mkdir(parents=True, exist_ok=True)

    def exclusive(self) -> AbstractContextManager[None]:
        return exclusive_lock(self.folder / LOCK_FILE, what="the arbiter folder")

    def registry(self) -> Registry:
        path = self.folder / REGISTRY_FILE
        if not path.exists():
            return {}
        what = f"the arbiter registry {path}"
        value = parse_canonical_json(
            read_regular_file(path, max_size=_MAX_REGISTRY_SIZE, what=what),
            max_size=_MAX_REGISTRY_SIZE,
            what=what,
        )
        return check_registry(value, what=what)

    def record_challenge(self, commitment_id: str, claim_id: str, challenge_id: str) -> None:
        registry = self.registry()
        registry.setdefault(commitment_id, {})[claim_id] = challenge_id
        write_atomic(
            self.folder / REGISTRY_FILE,
            canonical_json(registry),
            mode=PUBLIC_FILE_MODE,
            overwrite=True,
        )

    def case_storage(self, name: str) -> FolderCaseStorage:
        return FolderCaseStorage(self.folder / "cases" / name)

    def case_names(self) -> list[str]:
        return sorted(
            folder.name
            for folder in (self.folder / "cases").iterdir()
            if (folder / STATE_FILE).exists()
        )

    def describe(self) -> str:
        return str(self.folder / "cases")
