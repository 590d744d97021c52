"""Fixtures for the serving tests: entries, operator keys, and log databases.

``log_url`` runs each store test twice: against an SQLite file and against
a PostgreSQL server that ``postgres_server`` (:mod:`tests.postgres`) starts
once per test process. When no server can be started, the PostgreSQL runs
are skipped with the reason; they never fail for that.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from secmark.crypto import IdentityKeys
from secmark.serving.entry import LogEntry, client_account
from tests.conftest import fixed_keys

# Imported for pytest: the fixture is shared with the arbiter store tests.
from tests.postgres import PostgresServer, postgres_server  # noqa: F401

POLICY_ID = hashlib.sha256(b"secmark tests serving policy").digest()
OTHER_POLICY_ID = hashlib.sha256(b"secmark tests other serving policy").digest()
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def make_entry(
    api_key: str = "alice",
    index: int = 0,
    *,
    marked: bool = False,
    policy_id: bytes = POLICY_ID,
    input_bytes: bytes | None = None,
) -> LogEntry:
    """A well-formed entry; distinct ``index`` values give distinct inputs."""
    data = input_bytes if input_bytes is not None else b"input %d" % index
    return LogEntry(
        policy_id=policy_id,
        client=client_account(policy_id, api_key),
        time=T0,
        input=data,
        model_answer=index % 10,
        served_answer=(index + 1) % 10 if marked else index % 10,
        marked=marked,
        proof=hashlib.sha512(data).digest() + bytes(16),
    )


@pytest.fixture(scope="session")
def operator() -> IdentityKeys:
    return fixed_keys("log operator")


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty log database, of each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url()
