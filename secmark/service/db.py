"""The service's own SQLite database: its case index, query jobs and audit log.

The arbiter keeps the cases (:class:`~secmark.protocol.arbiter.Arbiter`,
behind its own store); the service keeps only what the arbiter does not:
which cases it has filed (to list a commitment's cases and count stages),
the background query jobs (so a restart resumes them) and the append-only
audit log (:mod:`secmark.service.audit`). A SQLite file rather than JSON
files, because job threads and request handlers update these rows
concurrently and each update must be one transaction; SQLAlchemy so the
same tables can later move to the arbiter's own database.

Every method is one transaction; a failure raises SQLAlchemy's errors,
which the service answers as 500 (never a half-written row).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

__all__ = ["DB_FILE", "JOB_STATES", "Job", "ServiceDatabase"]

DB_FILE: Final = "service.sqlite3"
"""The database's file name in the arbiter's working folder."""

JOB_STATES: Final = ("queued", "running", "done", "failed")
"""A job is queued (not started, or interrupted by a stop and waiting to
resume), running, done (the case is queried) or failed (the suspect failed
too often: the case stays revealed, and a new job resumes its progress)."""

ACTIVE_STATES: Final = ("queued", "running")

_BUSY_TIMEOUT_S = 30.0

METADATA = MetaData()

CASES = Table(
    "cases",
    METADATA,
    Column("claim_id", String(64), primary_key=True),
    Column("commitment_id", String(64), nullable=False, index=True),
    Column("filed", String(20), nullable=False),
)

JOBS = Table(
    "jobs",
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

AUDIT = Table(
    "audit",
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (metrics, job polls) never wait for the job threads' writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


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
    """The tables above in the SQLite file ``path`` (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.engine: Engine = create_engine(
            f"sqlite:///{path}",
            connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        METADATA.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- cases ------------------------------------------------------------

    def index_case(self, claim_id: str, commitment_id: str, now: str) -> bool:
        """Index a filed case; True when it was not indexed before (the
        insert is atomic, so of two requests filing one claim, one gets True)."""
        statement = (
            sqlite_insert(CASES)
            .values(claim_id=claim_id, commitment_id=commitment_id, filed=now)
            .on_conflict_do_nothing()
        )
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def case_ids(self, commitment_id: str | None = None) -> list[str]:
        """The indexed case ids (of one commitment), in filing order."""
        query = select(CASES.c.claim_id).order_by(CASES.c.filed, CASES.c.claim_id)
        if commitment_id is not None:
            query = query.where(CASES.c.commitment_id == commitment_id)
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    # -- jobs -------------------------------------------------------------

    def start_job(self, case_id: str, total: int, now: str) -> tuple[Job, bool]:
        """The case's active job, or a new queued one; True when new.

        The caller holds the case's lock (one service process per arbiter
        folder), so the check and the insert are not raced.
        """
        with self.engine.begin() as connection:
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
        with self.engine.connect() as connection:
            row = connection.execute(
                select(JOBS)
                .where(JOBS.c.case_id == case_id)
                .order_by(JOBS.c.created.desc(), JOBS.c.job_id)
                .limit(1)
            ).first()
        return None if row is None else Job(**row._mapping)

    def job(self, job_id: str) -> Job | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(JOBS).where(JOBS.c.job_id == job_id)).first()
        return None if row is None else Job(**row._mapping)

    def update_job(self, job_id: str, now: str, **fields: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(JOBS).where(JOBS.c.job_id == job_id).values(updated=now, **fields)
            )

    def active_jobs(self) -> list[Job]:
        """Jobs queued or running, oldest first: those to resume at startup."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(JOBS).where(JOBS.c.state.in_(ACTIVE_STATES)).order_by(JOBS.c.created)
            ).all()
        return [Job(**row._mapping) for row in rows]

    def job_counts(self) -> dict[str, int]:
        """Jobs by state (every state, 0 where none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(JOBS.c.state, func.count()).group_by(JOBS.c.state)
            ).all()
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({state: count for state, count in rows})
        return counts
