"""The query log store, against SQLite and PostgreSQL (``log_url``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from secmark.crypto import IdentityKeys
from secmark.crypto.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from secmark.errors import EncodingError, ProtocolError, SignatureError
from secmark.messages.checkpoint import open_checkpoint
from secmark.serving.entry import leaf_of
from secmark.serving.log import QueryLog
from tests.conftest import fixed_keys
from tests.serving.conftest import OTHER_POLICY_ID, POLICY_ID, make_entry

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("append_worker.py")


def test_append_roots_and_proofs(log_url: str, operator: IdentityKeys) -> None:
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    try:
        assert log.size() == 0
        assert log.root(0) == EMPTY_ROOT
        entries = [make_entry(f"client {i % 3}", i, marked=i % 4 == 0) for i in range(11)]
        assert log.append(entries[:4]) == [0, 1, 2, 3]
        assert log.append([]) == []
        assert log.append(entries[4:]) == list(range(4, 11))
        assert log.size() == 11
        assert log.entry(5) == entries[5]
        leaves = [leaf_of(e) for e in entries]
        assert log.leaves(11) == leaves
        assert log.leaf_hashes(11) == [leaf_hash(leaf) for leaf in leaves]
        for size in (1, 6, 11):
            root = log.root(size)
            for seq in range(size):
                verify_inclusion(root, seq, size, leaves[seq], log.inclusion_proof(seq, size))
            for old in range(size + 1):
                proof = log.consistency_proof(old, size)
                verify_consistency(old, size, log.root(old), root, proof)
        with pytest.raises(ProtocolError):
            log.root(12)
        with pytest.raises(ProtocolError):
            log.inclusion_proof(11, 11)
        with pytest.raises(ProtocolError):
            log.consistency_proof(5, 12)
        with pytest.raises(ProtocolError):
            log.consistency_proof(6, 5)
        with pytest.raises(ProtocolError):
            log.entry(11)
    finally:
        log.close()


def test_checkpoints_and_timestamps(log_url: str, operator: IdentityKeys) -> None:
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    try:
        log.append([make_entry("a", i) for i in range(3)])
        signed = log.checkpoint(operator)
        assert (signed.document.size, signed.document.root) == (3, log.root(3))
        assert signed.document.policy_id == POLICY_ID
        stored, evidence = log.stored_checkpoint(3)
        assert evidence is None
        assert open_checkpoint(stored, operator.public_keys).document == signed.document
        # Asked again at the same size: the stored checkpoint, not a new one.
        again = log.checkpoint(operator)
        assert again.digest == signed.digest
        with pytest.raises(SignatureError):
            log.checkpoint(fixed_keys("another operator"))
        log.add_timestamp(3, b"evidence bytes")
        assert log.stored_checkpoint(3) == (stored, b"evidence bytes")
        with pytest.raises(ProtocolError):
            log.add_timestamp(4, b"evidence bytes")
        with pytest.raises(EncodingError):
            log.add_timestamp(3, bytes(2 << 20))
        with pytest.raises(ProtocolError):
            log.stored_checkpoint(2)
    finally:
        log.close()


def test_reopen_and_policy_binding(log_url: str) -> None:
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    log.append([make_entry("a", 1)])
    log.close()
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    try:
        assert log.size() == 1
        with pytest.raises(ProtocolError):
            log.append([make_entry("a", 2, policy_id=OTHER_POLICY_ID)])
        assert log.size() == 1
    finally:
        log.close()
    with pytest.raises(ProtocolError):
        QueryLog.open(log_url, policy_id=OTHER_POLICY_ID)


def test_a_log_that_must_exist_is_never_created(log_url: str, tmp_path: Path) -> None:
    # A mistyped URL must not become an empty log that a checkpoint then signs.
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(ProtocolError, match="no query log"):
        QueryLog.open(f"sqlite:///{missing}", policy_id=POLICY_ID, create=False)
    assert not missing.exists()
    with pytest.raises(ProtocolError, match="no query log"):
        QueryLog.open(log_url, policy_id=POLICY_ID, create=False)
    QueryLog.open(log_url, policy_id=POLICY_ID).close()
    QueryLog.open(log_url, policy_id=POLICY_ID, create=False).close()


def test_two_writers_never_share_a_number(log_url: str) -> None:
    QueryLog.open(log_url, policy_id=POLICY_ID).close()  # created once, first
    numbers: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        log = QueryLog.open(log_url, policy_id=POLICY_ID)
        try:
            got = []
            for batch in range(15):
                got += log.append([make_entry(name, 100 * batch + j) for j in range(3)])
            numbers[name] = got
        except BaseException as error:  # noqa: BLE001 - the main thread reports it
            errors.append(error)
        finally:
            log.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    together = numbers["w1"] + numbers["w2"]
    assert sorted(together) == list(range(90))
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    try:
        assert log.size() == 90
        for name, seqs in numbers.items():
            assert all(log.entry(seq).client == make_entry(name).client for seq in seqs[::7])
    finally:
        log.close()


def test_two_processes_never_share_a_number(log_url: str) -> None:
    QueryLog.open(log_url, policy_id=POLICY_ID).close()
    writers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), log_url, name, "20"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for name in ("p1", "p2")
    ]
    outputs = [writer.communicate(timeout=60)[0] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    numbers = [[int(line) for line in output.split()] for output in outputs]
    assert sorted(numbers[0] + numbers[1]) == list(range(40))
    log = QueryLog.open(log_url, policy_id=POLICY_ID)
    try:
        for name, seqs in zip(("p1", "p2"), numbers):
            assert all(log.entry(seq).client == make_entry(name).client for seq in seqs)
    finally:
        log.close()


def test_urls_are_checked(tmp_path: Path) -> None:
    with pytest.raises(EncodingError):
        QueryLog.open("not a url", policy_id=POLICY_ID)
    with pytest.raises(EncodingError):
        QueryLog.open("sqlite://", policy_id=POLICY_ID)
    with pytest.raises(EncodingError):
        QueryLog.open("mysql://localhost/db", policy_id=POLICY_ID)
    with pytest.raises(EncodingError):
        QueryLog.open(f"sqlite:///{tmp_path / 'x.db'}", policy_id=b"short")


def test_sqlite_is_durable_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = QueryLog.open(url, policy_id=POLICY_ID)
    try:
        with log._engine.connect() as conn:  # the pragmas each connection runs
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        log.close()


def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    """A writer prints each sequence number after its append committed; it
    is killed mid-stream. Everything it acknowledged must be there."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    QueryLog.open(url, policy_id=POLICY_ID).close()
    writer = subprocess.Popen(
        [sys.executable, str(WORKER), url],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert writer.stdout is not None
    acknowledged = []
    try:
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 25:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert acknowledged == list(range(25))
    log = QueryLog.open(url, policy_id=POLICY_ID)
    try:
        size = log.size()
        assert size >= 25
        leaves = log.leaves(size)
        root = log.root(size)
        for seq in range(size):
            entry = log.entry(seq)
            assert leaf_of(entry) == leaves[seq]
            verify_inclusion(root, seq, size, leaves[seq], log.inclusion_proof(seq, size))
        # And the log still takes appends after the crash.
        assert log.append([make_entry("after", 0)]) == [size]
    finally:
        log.close()
