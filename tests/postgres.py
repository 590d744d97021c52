"""A real PostgreSQL server for the tests that need one.

``postgres_server`` starts one per test process (``initdb`` + ``pg_ctl`` in
a temporary directory, listening on 127.0.0.1 only) and stops it at the end
of the session; :meth:`PostgresServer.database_url` gives each test an empty
database of its own. When no server can be started the tests that ask for
it are skipped with the reason; they never fail for that. Import the
fixture into the conftest (or test module) of the tests that use it.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_ports

__all__ = ["PostgresServer", "PostgresUnavailable", "postgres_server", "running_postgres"]


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_server_user() -> list[str]:
    """The prefix that runs a PostgreSQL binary unprivileged: initdb and the
    server refuse to run as root."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        if (
            shutil.which("runuser")
            and subprocess.run(["id", "-u", user], capture_output=True, check=False).returncode == 0
        ):
            return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root with no postgres or nobody user to run the server")


class PostgresServer:
    """A throwaway server; :meth:`database_url` makes a fresh, empty
    database: a schema of its own (far quicker than CREATE DATABASE), made
    the connection's search path."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._counter = itertools.count()

    def database_url(self) -> str:
        import psycopg

        name = f"secmark_test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return (
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
            f"?options=-csearch_path%3D{name}"
        )


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throwaway server (``initdb`` + ``pg_ctl`` in a temporary directory on
    127.0.0.1, without fsync: it measures secmark, not this disk), stopped
    and deleted on exit.

    Raises:
        PostgresUnavailable: psycopg or PostgreSQL is missing, or the server
            cannot start.
    """
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PostgresUnavailable("PostgreSQL is not installed (no initdb / pg_ctl)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed") from None
    try:
        prefix = _as_server_user()
    except RuntimeError as error:
        raise PostgresUnavailable(str(error)) from None
    # Under /tmp directly: pytest's own temporary directories are private to
    # root, and the server user must reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="secmark-pg-"))
    data = base / "data"
    data.mkdir()
    if prefix:
        shutil.chown(base, prefix[2])
        shutil.chown(data, prefix[2])
    port = free_ports(1)[0]
    started = False
    try:
        init = subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = base / "log"
        start = subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if start.returncode != 0:
            written = log.read_text(errors="replace") if log.exists() else ""
            raise PostgresUnavailable(
                f"the PostgreSQL server did not start: {(start.stderr + written)[-300:]}"
            )
        started = True
        server = PostgresServer(port)
        deadline = time.monotonic() + 20
        while True:
            try:
                server.database_url()
                break
            except Exception as error:  # noqa: BLE001 - any failure means "not yet"
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"cannot connect to the PostgreSQL server: {error}"
                    ) from None
                time.sleep(0.2)
        yield server
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))
