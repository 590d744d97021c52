"""An arbiter's cases and registry in a database (SQLite or PostgreSQL).

:class:`DatabaseStore` is the :class:`~secmark.protocol.store.ArbiterStore`
over SQLAlchemy Core: SQLite (the embedded default, ``sqlite:///path``) or
PostgreSQL (``postgresql+psycopg://...``). Tables:

- ``secmark_arbiter_documents``: document bytes by SHA-256 (hex); a case's
  named documents (``secmark_arbiter_case_documents``) point at a digest, and
  a document no pointer names any more is deleted with the pointer that
  named it last (query progress is rewritten after every batch);
- ``secmark_arbiter_cases``: claim id, stage, record (canonical JSON) and
  the time of the last change;
- ``secmark_arbiter_registry``: commitment id, claim id, challenge id;
- ``secmark_arbiter_lock``: the one row that :meth:`DatabaseStore.exclusive`
  locks (``SELECT ... FOR UPDATE``) on PostgreSQL; SQLite takes its write
  lock at once instead (``BEGIN IMMEDIATE``).

Durability and atomicity: every write is one transaction, and SQLite runs in
WAL mode with ``synchronous=FULL``, so what a step stored survives a crash of
the process or the machine. A transition (:meth:`DatabaseCaseStorage.save_state`)
is one ``UPDATE`` that also checks the stage it leaves, so two processes
cannot both take one case through one step. Inside :meth:`DatabaseStore.exclusive`
everything the thread stores joins the block's transaction: a challenge's
document, its registry row and its stage are stored together or not at all.

Reading is strict: a stored state that is not canonical JSON or a document
whose bytes no longer match their digest is an :class:`EncodingError` naming
the case.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable

from secmark.database import WRITE, database_errors, open_engine
from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.protocol.case import Case
from secmark.protocol.store import (
    MAX_STATE_SIZE,
    STATE_FILE,
    FolderStore,
    Registry,
    check_registry,
)

__all__ = ["DatabaseCaseStorage", "DatabaseStore", "migrate_folder"]

"""How long an SQLite writer waits for another's write lock."""

_DIGEST = 64
_NAME = 128

_metadata = MetaData()
_documents = Table(
    "secmark_arbiter_documents",
    _metadata,
    Column("digest", String(_DIGEST), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)
_case_documents = Table(
    "secmark_arbiter_case_documents",
    _metadata,
    Column("claim_id", String(_DIGEST), primary_key=True),
    Column("name", String(_NAME), primary_key=True),
    Column("digest", String(_DIGEST), nullable=False, index=True),
)
_cases = Table(
    "secmark_arbiter_cases",
    _metadata,
    Column("claim_id", String(_DIGEST), primary_key=True),
    Column("stage", String(32), nullable=False),
    Column("record", LargeBinary, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)
_registry = Table(
    "secmark_arbiter_registry",
    _metadata,
    Column("commitment_id", String(_DIGEST), primary_key=True),
    Column("claim_id", String(_DIGEST), primary_key=True),
    Column("challenge_id", String(_DIGEST), nullable=False),
)
_lock = Table(
    "secmark_arbiter_lock",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
)
_LOCK_ROW = 1


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DatabaseStore:
    """An arbiter's cases and registry in one database (module documentation).

    Open it with :meth:`open`; close it with :meth:`close`. One store may be
    used by many threads; several processes may open the same database.
    Every method raises :class:`SecmarkError` when the database fails,
    besides the errors it names.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._postgres = engine.dialect.name == "postgresql"
        # The connection of the exclusive() block this thread is in, if any:
        # everything the thread stores meanwhile joins its transaction.
        self._local = threading.local()

    @classmethod
    def open(cls, url: str) -> DatabaseStore:
        """Open the arbiter database at ``url``, creating its tables on first use.

        Create it once (one process) before several processes share it: two
        first opens at once may race on creating the tables.

        Raises:
            EncodingError: an unusable URL.
        """
        engine = open_engine(url, what="an arbiter database")
        try:
            with (
                database_errors("arbiter database", "create the arbiter tables"),
                engine.begin() as conn,
            ):
                for table in _metadata.sorted_tables:
                    conn.execute(CreateTable(table, if_not_exists=True))
                    for index in table.indexes:
                        conn.execute(CreateIndex(index, if_not_exists=True))
            with database_errors("arbiter database", "initialise the arbiter lock"):
                try:
                    with engine.begin() as conn:
                        if conn.execute(select(_lock.c.id)).first() is None:
                            conn.execute(insert(_lock).values(id=_LOCK_ROW))
                except IntegrityError:
                    pass  # another process made the row first: it is the same row
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, make_url(url).render_as_string(hide_password=True))

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def describe(self) -> str:
        return f"the arbiter database {self._url}"

    @property
    def url(self) -> URL:
        """The database's URL, password included, for another connection pool
        to the same database (:meth:`describe` hides the password)."""
        return self._engine.url

    # -- transactions -------------------------------------------------------

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[Connection]:
        """The exclusive block's connection when this thread is in one, else
        a transaction of its own, committed at the end of the block."""
        held: Connection | None = getattr(self._local, "conn", None)
        if held is not None:
            with database_errors("arbiter database", action):
                yield held
            return
        with database_errors("arbiter database", action), self._engine.connect() as conn:
            conn.execution_options(**{WRITE: write})
            with conn.begin():
                yield conn

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """The arbiter's lock, held for one transaction (see
        :class:`~secmark.protocol.store.ArbiterStore`): the lock row on
        PostgreSQL, the write lock on SQLite. Not re-entrant.

        Raises:
            ProtocolError: this thread holds it already.
        """
        if getattr(self._local, "conn", None) is not None:
            raise ProtocolError("the arbiter database's lock is held by this thread already")
        with self._transaction("take the arbiter's lock", write=True) as conn:
            if self._postgres:
                with database_errors("arbiter database", "take the arbiter's lock"):
                    conn.execute(
                        select(_lock.c.id).where(_lock.c.id == _LOCK_ROW).with_for_update()
                    ).one()
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    # -- registry -------------------------------------------------------------

    def registry(self) -> Registry:
        with self._transaction("read the registry", write=False) as conn:
            rows = conn.execute(
                select(_registry.c.commitment_id, _registry.c.claim_id, _registry.c.challenge_id)
            ).all()
        value: dict[str, dict[str, str]] = {}
        for commitment_id, claim_id, challenge_id in rows:
            value.setdefault(commitment_id, {})[claim_id] = challenge_id
        return check_registry(value, what=f"the arbiter registry in {self.describe()}")

    def record_challenge(self, commitment_id: str, claim_id: str, challenge_id: str) -> None:
        row = {"commitment_id": commitment_id, "claim_id": claim_id, "challenge_id": challenge_id}
        check_registry({commitment_id: {claim_id: challenge_id}}, what="a registry entry")
        with self._transaction("record a challenge", write=True) as conn:
            key = and_(_registry.c.commitment_id == commitment_id, _registry.c.claim_id == claim_id)
            if conn.execute(
                update(_registry).where(key).values(challenge_id=challenge_id)
            ).rowcount:
                return
            conn.execute(insert(_registry).values(**row))

    # -- cases ----------------------------------------------------------------

    def case_storage(self, name: str) -> DatabaseCaseStorage:
        return DatabaseCaseStorage(self, name)

    def case_names(self) -> list[str]:
        with self._transaction("list the cases", write=False) as conn:
            return sorted(conn.execute(select(_cases.c.claim_id)).scalars())

    def _put_document(self, conn: Connection, claim_id: str, name: str, data: bytes) -> None:
        """Point the case's document ``name`` at ``data`` (stored by digest)
        and delete the bytes it pointed at, if nothing else points at them."""
        digest = _digest(data)
        key = and_(_case_documents.c.claim_id == claim_id, _case_documents.c.name == name)
        old = conn.execute(select(_case_documents.c.digest).where(key)).scalar_one_or_none()
        if old == digest:
            return
        if self._postgres:
            # Writers of the same bytes and the deletion of unused bytes take
            # these locks (in one order: no deadlock), so no pointer is ever
            # left naming bytes that another transaction deleted meanwhile.
            for locked in sorted({digest} if old is None else {digest, str(old)}):
                key_value = int.from_bytes(bytes.fromhex(locked)[:8], "big", signed=True)
                conn.execute(select(func.pg_advisory_xact_lock(key_value)))
        dialect = postgresql if self._postgres else sqlite
        conn.execute(
            dialect.insert(_documents)
            .values(digest=digest, data=data)
            .on_conflict_do_nothing(index_elements=["digest"])
        )
        if old is None:
            conn.execute(
                insert(_case_documents).values(claim_id=claim_id, name=name, digest=digest)
            )
            return
        conn.execute(update(_case_documents).where(key).values(digest=digest))
        conn.execute(
            delete(_documents).where(
                _documents.c.digest == old,
                ~exists().where(_case_documents.c.digest == old),
            )
        )

    def _get_document(self, conn: Connection, claim_id: str, name: str) -> bytes | None:
        row = conn.execute(
            select(_case_documents.c.digest, _documents.c.data)
            .select_from(_case_documents)
            .outerjoin(_documents, _documents.c.digest == _case_documents.c.digest)
            .where(_case_documents.c.claim_id == claim_id, _case_documents.c.name == name)
        ).one_or_none()
        if row is None:
            return None
        digest, data = row
        if data is None or _digest(bytes(data)) != digest:
            raise EncodingError(
                f"document {name} of case {claim_id} in {self.describe()} is damaged: its "
                f"bytes are {'missing' if data is None else 'not those of its digest'} "
                "(restore the database from a backup)"
            )
        return bytes(data)

    def import_case(
        self, claim_id: str, stage: str, record: dict[str, Any], documents: dict[str, bytes]
    ) -> bool:
        """Store a whole case (from a case folder) in one transaction; return
        whether anything was stored. The same case stored already is left
        alone (importing twice changes nothing).

        Raises:
            ProtocolError: the database holds another state or other
                documents for this case.
        """
        state = canonical_json(record)
        with self._transaction("import a case", write=True) as conn:
            row = conn.execute(
                select(_cases.c.stage, _cases.c.record).where(_cases.c.claim_id == claim_id)
            ).one_or_none()
            if row is not None:
                if (row[0], bytes(row[1])) != (stage, state):
                    raise ProtocolError(
                        f"{self.describe()} holds another state of case {claim_id} "
                        f"(stage {row[0]!r}, not {stage!r}): it is not this folder's to import"
                    )
                stored = {
                    name: data
                    for name in documents
                    if (data := self._get_document(conn, claim_id, name)) is not None
                }
                if stored != documents:
                    raise ProtocolError(
                        f"{self.describe()} holds other documents of case {claim_id} than "
                        "its folder: it is not this folder's to import"
                    )
                return False
            for name, data in sorted(documents.items()):
                self._put_document(conn, claim_id, name, data)
            conn.execute(
                insert(_cases).values(claim_id=claim_id, stage=stage, record=state, updated=_now())
            )
            return True

    def import_registry(self, registry: Registry) -> int:
        """Add the entries of a folder's registry; return how many were new.

        Raises:
            ProtocolError: an entry names another challenge than the stored one.
        """
        check_registry(registry, what="the registry to import")
        added = 0
        with self.exclusive():
            stored = self.registry()
            for commitment_id, issued in sorted(registry.items()):
                for claim_id, challenge_id in sorted(issued.items()):
                    known = stored.get(commitment_id, {}).get(claim_id)
                    if known == challenge_id:
                        continue
                    if known is not None:
                        raise ProtocolError(
                            f"{self.describe()} records challenge {known} for claim {claim_id}, "
                            f"not {challenge_id}: it holds another arbiter's state"
                        )
                    self.record_challenge(commitment_id, claim_id, challenge_id)
                    added += 1
        return added


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DatabaseCaseStorage:
    """One case in a :class:`DatabaseStore` (a row and document pointers)."""

    def __init__(self, store: DatabaseStore, name: str) -> None:
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def folder(self) -> Path:
        raise SecmarkError(
            f"case {self._name} is kept in {self._store.describe()}, not in a case folder"
        )

    @property
    def state_what(self) -> str:
        return f"the state of case {self._name} in {self._store.describe()}"

    @property
    def repair(self) -> str:
        return "restore the database from a backup, or delete the case's rows"

    def has_state(self) -> bool:
        with self._store._transaction("read a case", write=False) as conn:
            found = conn.execute(
                select(_cases.c.claim_id).where(_cases.c.claim_id == self._name)
            ).first()
        return found is not None

    def read_state(self) -> tuple[object, object]:
        with self._store._transaction("read a case", write=False) as conn:
            row = conn.execute(
                select(_cases.c.stage, _cases.c.record).where(_cases.c.claim_id == self._name)
            ).one_or_none()
        if row is None:
            raise SecmarkError(f"no case {self._name} in {self._store.describe()}")
        what = self.state_what
        record = parse_canonical_json(bytes(row[1]), max_size=MAX_STATE_SIZE, what=what)
        return row[0], record

    def save_state(self, stage: str, record: dict[str, Any], *, previous: str | None) -> None:
        state = canonical_json(record)
        if len(state) > MAX_STATE_SIZE:
            raise EncodingError(f"the state of case {self._name} is over {MAX_STATE_SIZE} bytes")
        with self._store._transaction("store a case's state", write=True) as conn:
            if previous is None:
                # A failed insert aborts the transaction (and the exclusive
                # block it may belong to): the error is raised out of it.
                try:
                    conn.execute(
                        insert(_cases).values(
                            claim_id=self._name, stage=stage, record=state, updated=_now()
                        )
                    )
                except IntegrityError:
                    raise ProtocolError(
                        f"case {self._name} exists already in {self._store.describe()}"
                    ) from None
                return
            changed = conn.execute(
                update(_cases)
                .where(_cases.c.claim_id == self._name, _cases.c.stage == previous)
                .values(stage=stage, record=state, updated=_now())
            ).rowcount
        if changed != 1:
            raise ProtocolError(
                f"case {self._name} is no longer at stage {previous!r}: another process moved "
                "it on meanwhile; load it again"
            )

    def write(self, name: str, data: bytes) -> None:
        with self._store._transaction("store a document", write=True) as conn:
            self._store._put_document(conn, self._name, name, data)

    def read(self, name: str) -> bytes:
        with self._store._transaction("read a document", write=False) as conn:
            data = self._store._get_document(conn, self._name, name)
        if data is None:
            raise SecmarkError(f"case {self._name} lacks {name}")
        return data

    def exists(self, name: str) -> bool:
        with self._store._transaction("read a document", write=False) as conn:
            found = conn.execute(
                select(_case_documents.c.name).where(
                    _case_documents.c.claim_id == self._name, _case_documents.c.name == name
                )
            ).first()
        return found is not None


def migrate_folder(folder: Path, database: DatabaseStore) -> tuple[int, int, int]:
    """Copy the cases and the registry of the arbiter folder ``folder`` into
    ``database``; return (cases copied, cases there already, registry
    entries added).

    Every case is checked before anything is copied (a damaged one stops
    the migration, which can be run again once it is repaired); each case
    is then copied in one transaction with every document of its folder.
    Copying twice changes nothing. A case folder without a state (what a
    crash inside filing leaves) is not a case and is left behind.

    Raises:
        SecmarkError: ``folder`` is not a folder.
        EncodingError: a damaged case state or registry (naming it).
        ProtocolError: the database holds other state for a case or a
            registry entry.
    """
    if not folder.is_dir():
        raise SecmarkError(f"{folder} is not an arbiter folder: no such folder")
    source = FolderStore(folder)
    cases = [Case.load(source.case_storage(name)) for name in source.case_names()]
    registry = source.registry()
    added = database.import_registry(registry)
    copied = present = 0
    for case in cases:
        documents = {
            path.name: case.read(path.name)
            for path in sorted(case.folder.iterdir())
            # state.json is the case row; dot files are write_atomic's temporaries.
            if path.name != STATE_FILE and not path.name.startswith(".") and path.is_file()
        }
        if database.import_case(case.name, case.stage, case.record, documents):
            copied += 1
        else:
            present += 1
    return copied, present, added
