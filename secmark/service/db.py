"""The service's own tables: its case index, query jobs and audit log.

The arbiter keeps the cases (:class:`~secmark.protocol.arbiter.Arbiter`,
behind its own store); the service keeps only what the arbiter does not:
which cases it has filed (to list a commitment's cases and count stages),
the background query jobs (so a restart resumes them) and the append-only
audit log (:mod:`secmark.service.audit`). A database rather than JSON
files, because job threads and request handlers update these rows
concurrently and each update must be one transaction.

Where they live (:meth:`ServiceDatabase.for_arbiter`): in the arbiter's
own database when its cases are kept in one
(:class:`~secmark.protocol.database_store.DatabaseStore`, SQLite or
PostgreSQL), beside its tables; else in the SQLite file :data:`DB_FILE` of
the arbiter's folder. The tables are named ``secmark_service_*``.

Every method is one transaction; a failure raises SQLAlchemy's errors,
which the service answers as 500 (never a half-written row).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from secmark.database import WRITE, open_engine
from secmark.encoding import format_time

if TYPE_CHECKING:
    from secmark.protocol.arbiter import Arbiter

__all__ = ["DB_FILE", "JOB_STATES", "Job", "ServiceDatabase"]

DB_FILE: Final = "service.sqlite3"
"""The database's file name in the arbiter's working folder (a folder store)."""

JOB_STATES: Final = ("queued", "running", "done", "failed")
"""A job is queued (not started, or interrupted by a stop and waiting to
resume), running, done (the case is queried) or failed (the suspect failed
too often: the case stays revealed, and a new job resumes its progress)."""

ACTIVE_STATES: Final = ("queued", "running")

METADATA = MetaData()

CASES = Table(
    "secmark_service_cases",
    METADATA,
    Column("claim_id", String(64), primary_key=True),
    Column("commitment_id", String(64), nullable=False, index=True),
    Column("filed", String(20), nullable=False),
)

JOBS = Table(
    "secmark_service_jobs",
    METADATA,
    Column("job_id", String(32), primary_key=True),
    Column("case_id", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("answered", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("created", String(20), nullable=False),
    Column("updated", String(20), nullable=False),
)

SIGNATURES = Table(
    "secmark_service_signatures",
    METADATA,
    Column("digest", String(64), primary_key=True),
    Column("expires", String(20), nullable=False, index=True),
)
"""Request signatures accepted, until their time leaves the window: a
restarted service still refuses a replay."""

AUDIT = Table(
    "secmark_service_audit",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", String(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("method", String(16), nullable=True),
    Column("path", Text, nullable=True),
    Column("status", Integer, nullable=True),
    Column("case_id", String(64), nullable=True),
    Column("identity", String(80), nullable=True),
    Column("event", Text, nullable=True),
)


@dataclass(frozen=True)
class Job:
    """A query job as stored: ``answered`` of ``total`` inputs so far."""

    job_id: str
    case_id: str
    state: str
    answered: int
    total: int
    error: str | None
    created: str
    updated: str

    def public(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "case": self.case_id,
            "state": self.state,
            "answered": self.answered,
            "total": self.total,
            "error": self.error,
            "created": self.created,
            "updated": self.updated,
        }


class ServiceDatabase:
    """The tables above, in the database ``engine`` reaches (SQLite or
    PostgreSQL); open one with :meth:`open`, :meth:`in_folder` or
    :meth:`for_arbiter`, which create the tables when missing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        METADATA.create_all(self.engine)

    @classmethod
    def open(cls, url: str | URL) -> ServiceDatabase:
        """The service's tables in the database at ``url``: ``sqlite:///PATH``
        or ``postgresql+psycopg://...``.

        Raises:
            EncodingError: not a database URL, or not of SQLite or PostgreSQL.
        """
        engine = open_engine(url, what="the service's database")
        try:
            return cls(engine)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def in_folder(cls, folder: Path) -> ServiceDatabase:
        """The SQLite file :data:`DB_FILE` in ``folder``."""
        return cls.open(URL.create("sqlite", database=str(folder / DB_FILE)))

    @classmethod
    def for_arbiter(cls, arbiter: Arbiter) -> ServiceDatabase:
        """The database of ``arbiter``'s store when it keeps its cases in one
        (one database for the cases and the service); else the folder's file."""
        from secmark.protocol.database_store import DatabaseStore

        store = arbiter.store
        if isinstance(store, DatabaseStore):
            # A pool of the service's own on the same database.
            return cls.open(store.url)
        return cls.in_folder(arbiter.folder)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        """One transaction, committed at the end of the block."""
        with self.engine.connect() as connection:
            if write:
                connection.execution_options(**{WRITE: True})
            with connection.begin():
                yield connection

    # -- request signatures -----------------------------------------------

    def accept_signature(self, signature: bytes, expires: datetime, now: datetime) -> bool:
        """Remember an accepted request signature until ``expires``; False
        when it was accepted before (a replay). Signatures whose time has
        left the window are forgotten first: the time check refuses them
        anyway. (:data:`secmark.service.auth.SignatureMemory`.)"""
        insert = postgresql_insert if self._postgres else sqlite_insert
        statement = (
            insert(SIGNATURES)
            .values(digest=hashlib.sha256(signature).hexdigest(), expires=format_time(expires))
            .on_conflict_do_nothing()
            .returning(SIGNATURES.c.digest)
        )
        with self.transaction(write=True) as connection:
            connection.execute(delete(SIGNATURES).where(SIGNATURES.c.expires < format_time(now)))
            return connection.execute(statement).first() is not None

    # -- cases ------------------------------------------------------------

    def index_case(self, claim_id: str, commitment_id: str, now: str) -> bool:
        """Index a filed case; True when it was not indexed before (the
        insert is atomic, so of two requests filing one claim, one gets True)."""
        insert = postgresql_insert if self._postgres else sqlite_insert
        statement = (
            insert(CASES)
            .values(claim_id=claim_id, commitment_id=commitment_id, filed=now)
            .on_conflict_do_nothing()
            .returning(CASES.c.claim_id)
        )
        with self.transaction(write=True) as connection:
            # The row inserted, or none (rowcount is not reliable on every driver).
            return connection.execute(statement).first() is not None

    def filed_times(self) -> dict[str, str]:
        """Claim id -> filing time of the cases filed through the service."""
        with self.transaction(write=False) as connection:
            rows = connection.execute(select(CASES.c.claim_id, CASES.c.filed)).all()
        return {claim_id: filed for claim_id, filed in rows}

    def case_ids(self, commitment_id: str | None = None) -> list[str]:
        """The indexed case ids (of one commitment), in filing order."""
        query = select(CASES.c.claim_id).order_by(CASES.c.filed, CASES.c.claim_id)
        if commitment_id is not None:
            query = query.where(CASES.c.commitment_id == commitment_id)
        with self.transaction(write=False) as connection:
            return list(connection.execute(query).scalars())

    # -- jobs -------------------------------------------------------------

    def start_job(self, case_id: str, total: int, now: str) -> tuple[Job, bool]:
        """The case's active job, or a new queued one; True when new.

        The caller holds the case's lock (one service process per arbiter
        folder), so the check and the insert are not raced.
        """
        with self.transaction(write=True) as connection:
            active = connection.execute(
                select(JOBS)
                .where(JOBS.c.case_id == case_id, JOBS.c.state.in_(ACTIVE_STATES))
                .limit(1)
            ).first()
            if active is not None:
                return Job(**active._mapping), False
            job = Job(secrets.token_hex(16), case_id, "queued", 0, total, None, now, now)
            connection.execute(JOBS.insert().values(**job.__dict__))
            return job, True

    def latest_job(self, case_id: str) -> Job | None:
        with self.transaction(write=False) as connection:
            row = connection.execute(
                select(JOBS)
                .where(JOBS.c.case_id == case_id)
                .order_by(JOBS.c.created.desc(), JOBS.c.job_id)
                .limit(1)
            ).first()
        return None if row is None else Job(**row._mapping)

    def job(self, job_id: str) -> Job | None:
        with self.transaction(write=False) as connection:
            row = connection.execute(select(JOBS).where(JOBS.c.job_id == job_id)).first()
        return None if row is None else Job(**row._mapping)

    def update_job(self, job_id: str, now: str, **fields: Any) -> None:
        with self.transaction(write=True) as connection:
            connection.execute(
                update(JOBS).where(JOBS.c.job_id == job_id).values(updated=now, **fields)
            )

    def active_jobs(self) -> list[Job]:
        """Jobs queued or running, oldest first: those to resume at startup."""
        with self.transaction(write=False) as connection:
            rows = connection.execute(
                select(JOBS).where(JOBS.c.state.in_(ACTIVE_STATES)).order_by(JOBS.c.created)
            ).all()
        return [Job(**row._mapping) for row in rows]

    def job_counts(self) -> dict[str, int]:
        """Jobs by state (every state, 0 where none)."""
        with self.transaction(write=False) as connection:
            rows = connection.execute(
                select(JOBS.c.state, func.count()).group_by(JOBS.c.state)
            ).all()
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({state: count for state, count in rows})
        return counts
