"""What only a PostgreSQL log has to show; the store tests in test_log.py
run against PostgreSQL too (the ``log_url`` fixture)."""

from __future__ import annotations

import threading

import pytest

from secmark.crypto.merkle import merkle_root
from secmark.errors import SecmarkError
from secmark.serving.entry import leaf_of
from secmark.serving.log import QueryLog
from tests.conftest import free_ports
from tests.serving.conftest import POLICY_ID, PostgresServer, make_entry


def test_unreachable_server_is_a_typed_error() -> None:
    port = free_ports(1)[0]
    with pytest.raises(SecmarkError, match="query log"):
        QueryLog.open(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none", policy_id=POLICY_ID)


def test_many_writers_and_a_larger_log(postgres_server: PostgresServer) -> None:
    url = postgres_server.database_url()
    QueryLog.open(url, policy_id=POLICY_ID).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        log = QueryLog.open(url, policy_id=POLICY_ID)
        try:
            for batch in range(10):
                log.append([make_entry(name, 1000 * batch + j) for j in range(50)])
        except BaseException as error:  # noqa: BLE001 - the main thread reports it
            errors.append(error)
        finally:
            log.close()

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    log = QueryLog.open(url, policy_id=POLICY_ID)
    try:
        assert log.size() == 2000
        leaves = log.leaves(2000)
        # Each writer's batches are whole and in its own order.
        entries = [log.entry(seq) for seq in range(0, 2000, 50)]
        assert len({entry.client for entry in entries}) == 4
        assert log.root(2000) == merkle_root(leaves)
        assert leaves[0] == leaf_of(log.entry(0))
    finally:
        log.close()
