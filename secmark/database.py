"""The databases secmark keeps state in: SQLite files, or PostgreSQL by URL.

The query log (:mod:`secmark.serving.log`), the arbiter's case store
(:mod:`secmark.protocol.database_store`) and the arbiter service's tables
(:mod:`secmark.service.db`) open their engines here, so all of them hold a
committed write through a power loss and wait for one another the same way.
Needs SQLAlchemy (the ``serving`` extra; PostgreSQL also ``psycopg``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from secmark.errors import EncodingError, SecmarkError

__all__ = ["WRITE", "database_errors", "open_engine"]

WRITE: Final = "secmark_write"
"""Execution option of a connection that will write: on SQLite its
transaction begins holding the write lock (``BEGIN IMMEDIATE``)."""

_SQLITE_BUSY_TIMEOUT_S = 30.0


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling would begin transactions late and
    # never as BEGIN IMMEDIATE: off, and begun in _sqlite_begin instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL syncs the WAL
    # at every commit, so a committed write survives a power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock when it begins, so it waits for another
    # writer (the busy timeout) instead of failing when it upgrades a read lock.
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def open_engine(url: str | URL, *, what: str) -> Engine:
    """An engine for ``url``: ``sqlite:///PATH`` (a file) or
    ``postgresql+psycopg://...``. ``what`` names the database in errors.

    Raises:
        EncodingError: not a database URL, an SQLite database in memory, or
            another backend.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise EncodingError(f"the URL of {what} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise EncodingError(f"{what} in SQLite must be a file (sqlite:///path)")
        engine = create_engine(
            parsed,
            connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise EncodingError(f"{what} is kept in sqlite or postgresql, not {backend!r}")


@contextmanager
def database_errors(what: str, action: str) -> Iterator[None]:
    """Turn a driver or SQLAlchemy failure into a :class:`SecmarkError`
    saying that ``what`` could not ``action``."""
    try:
        yield
    except SQLAlchemyError as error:
        raise SecmarkError(
            f"{what}: cannot {action}: {error.__class__.__name__}: {error}"
        ) from None
