"""The serving query log: an append-only RFC 6962 Merkle log in a database.

:class:`QueryLog` keeps the entries of one serving policy in SQLite (the
embedded default, ``sqlite:///path``) or PostgreSQL
(``postgresql+psycopg://...``) through SQLAlchemy Core. Entry ``i`` is leaf
``i`` of the Merkle tree (:mod:`secmark.serving.entry` says what a leaf is);
the operator signs checkpoints (size and root) that commit to every entry
so far.

Durability and ordering:

- :meth:`QueryLog.append` returns only after its transaction commits, and
  SQLite runs in WAL mode with ``synchronous=FULL``: an entry acknowledged
  survives a crash of the process or the machine.
- Sequence numbers come from a counter row that each append updates first
  in its transaction, so concurrent appenders (threads or gateway processes)
  are serialised by the database's row (PostgreSQL) or write (SQLite) lock
  and never reuse a number nor leave a gap.

Cost: a root or proof reads every leaf hash up to the size asked (32 bytes
per entry, O(n) time and memory; about 0.2 s for 10^5 entries). Simple and
correct first; a cache of complete subtree hashes would make it O(log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from secmark.crypto import merkle
from secmark.crypto.keys import IdentityKeys
from secmark.database import database_errors, open_engine
from secmark.errors import EncodingError, ProtocolError, SecmarkError
from secmark.messages.checkpoint import LogCheckpoint, create_checkpoint, open_checkpoint
from secmark.messages.document import SignedDocument
from secmark.serving.entry import POLICY_ID_SIZE, LogEntry, leaf_of
from secmark.serving.extract import ClientExtract

__all__ = ["MAX_APPEND", "MAX_EVIDENCE_SIZE", "QueryLog"]

MAX_APPEND = 10_000
"""Entries in one append (one transaction): a gateway batches a few at a
time; a bound keeps one transaction from holding the lock for long."""

MAX_EVIDENCE_SIZE = 1 << 20
"""Bound on stored timestamp evidence: a few RFC 3161 tokens."""

"""How long an SQLite appender waits for another's write lock."""

_metadata = MetaData()
_info = Table(
    "secmark_log_info",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("policy_id", LargeBinary(POLICY_ID_SIZE), nullable=False),
    # The number of entries: the counter every append updates first.
    Column("size", BigInteger, nullable=False),
)
_entries = Table(
    "secmark_log_entries",
    _metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(merkle.HASH_SIZE), nullable=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("client", String(64), nullable=False, index=True),
    Column("marked", Boolean, nullable=False),
)
_checkpoints = Table(
    "secmark_log_checkpoints",
    _metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("checkpoint", LargeBinary, nullable=False),
    Column("timestamp", LargeBinary, nullable=True),
)
_INFO_ROW = 1


class QueryLog:
    """The query log of one serving policy in one database.

    Open it with :meth:`open`; close it with :meth:`close`. Every method raises :class:`SecmarkError` when the
    database fails, besides the errors it names.
    """

    def __init__(self, engine: Engine, policy_id: bytes) -> None:
        self._engine = engine
        self._policy_id = policy_id

    @classmethod
    def open(cls, url: str, *, policy_id: bytes, create: bool = True) -> QueryLog:
        """Open the log at ``url``, creating its tables on first use; with
        ``create=False`` only a log that exists (what reads, checkpoints and
        extracts want: a mistyped URL must not become an empty log).

        Create a log once (one process) before several gateways share it:
        two first opens at once may race on creating the tables.

        Raises:
            EncodingError: an unusable URL, or a policy id that is not 32 bytes.
            ProtocolError: the database holds the log of another policy, or,
                with ``create=False``, no log.
        """
        if not isinstance(policy_id, bytes) or len(policy_id) != POLICY_ID_SIZE:
            raise EncodingError(f"a serving policy id must be {POLICY_ID_SIZE} bytes")
        if not create:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
                raise ProtocolError(
                    f"no query log at {parsed.database}: check the log's URL (the gateway "
                    "creates the log when it starts)"
                )
        engine = open_engine(url, what="a query log")
        try:
            if not create and not inspect(engine).has_table(_info.name):
                raise ProtocolError(
                    "the database holds no query log: check the log's URL (the gateway "
                    "creates the log when it starts)"
                )
            with database_errors("query log", "create the log tables"), engine.begin() as conn:
                for table in _metadata.sorted_tables:
                    conn.execute(CreateTable(table, if_not_exists=True))
                    for index in table.indexes:
                        conn.execute(CreateIndex(index, if_not_exists=True))
            stored = cls._stored_policy(engine)
            if stored is None:
                with database_errors("query log", "initialise the log"):
                    try:
                        with engine.begin() as conn:
                            conn.execute(
                                insert(_info).values(id=_INFO_ROW, policy_id=policy_id, size=0)
                            )
                    except IntegrityError:
                        pass  # another process initialised it first: read what it wrote
                stored = cls._stored_policy(engine)
            if stored != policy_id:
                raise ProtocolError("the database holds the query log of another serving policy")
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, policy_id)

    @staticmethod
    def _stored_policy(engine: Engine) -> bytes | None:
        with database_errors("query log", "read the log's policy"), engine.connect() as conn:
            value = conn.execute(
                select(_info.c.policy_id).where(_info.c.id == _INFO_ROW)
            ).scalar_one_or_none()
        return None if value is None else bytes(value)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    @property
    def policy_id(self) -> bytes:
        return self._policy_id

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        """Append ``entries`` in one transaction; return their sequence
        numbers (consecutive, in order) once it has committed.

        Raises:
            EncodingError: more than :data:`MAX_APPEND` entries.
            ProtocolError: an entry of another policy, or a log that would
                grow past :data:`~secmark.crypto.merkle.MAX_LOG_SIZE`.
        """
        if len(entries) > MAX_APPEND:
            raise EncodingError(f"append at most {MAX_APPEND} entries at once")
        if not entries:
            return []
        if any(entry.policy_id != self._policy_id for entry in entries):
            raise ProtocolError("an entry of another serving policy cannot join this log")
        # Hash before taking the lock: the transaction only writes.
        rows = []
        for entry in entries:
            leaf = leaf_of(entry)
            rows.append(
                {
                    "leaf_hash": merkle.leaf_hash(leaf),
                    "leaf": leaf,
                    "entry": entry.to_bytes(),
                    "client": entry.client,
                    "marked": entry.marked,
                }
            )
        with database_errors("query log", "append to the log"), self._engine.begin() as conn:
            # The counter update comes first: it takes the lock that orders
            # appenders, and the new size it returns names our numbers.
            new_size = conn.execute(
                update(_info)
                .where(_info.c.id == _INFO_ROW)
                .values(size=_info.c.size + len(rows))
                .returning(_info.c.size)
            ).scalar_one()
            if new_size > merkle.MAX_LOG_SIZE:
                raise ProtocolError("the query log is full")
            first = new_size - len(rows)
            for offset, row in enumerate(rows):
                row["seq"] = first + offset
            conn.execute(insert(_entries), rows)
        return list(range(first, new_size))

    def size(self) -> int:
        """The number of committed entries."""
        with database_errors("query log", "read the log size"), self._engine.connect() as conn:
            return self._size(conn)

    @staticmethod
    def _size(conn: Connection) -> int:
        value = conn.execute(select(_info.c.size).where(_info.c.id == _INFO_ROW)).scalar_one()
        return int(value)

    def _column_up_to(self, column: Column[Any], size: int) -> list[bytes]:
        """``column`` of entries ``0 .. size - 1`` in order.

        Raises:
            ProtocolError: ``size`` is negative or beyond the log.
        """
        with database_errors("query log", "read the log"), self._engine.connect() as conn:
            current = self._size(conn)
            if not 0 <= size <= current:
                raise ProtocolError(f"the log has {current} entries, not {size}")
            values = conn.execute(
                select(column).where(_entries.c.seq < size).order_by(_entries.c.seq)
            ).scalars()
            result = [bytes(value) for value in values]
        # Entries are never deleted: a missing one is a damaged database.
        if len(result) != size:
            raise SecmarkError(f"query log damaged: {len(result)} entries below {size}")
        return result

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The leaf hashes of entries ``0 .. size - 1``.

        Raises:
            ProtocolError: ``size`` is negative or beyond the log.
        """
        return self._column_up_to(_entries.c.leaf_hash, size)

    def leaves(self, size: int) -> list[bytes]:
        """The leaf bytes of entries ``0 .. size - 1``.

        Raises:
            ProtocolError: ``size`` is negative or beyond the log.
        """
        return self._column_up_to(_entries.c.leaf, size)

    def entry(self, seq: int) -> LogEntry:
        """Entry number ``seq``.

        Raises:
            ProtocolError: no such entry.
        """
        with database_errors("query log", "read an entry"), self._engine.connect() as conn:
            data = conn.execute(
                select(_entries.c.entry).where(_entries.c.seq == seq)
            ).scalar_one_or_none()
        if data is None:
            raise ProtocolError(f"the log has no entry {seq}")
        return LogEntry.from_bytes(bytes(data))

    def root(self, size: int) -> bytes:
        """The Merkle Tree Hash of the first ``size`` entries (O(size)).

        Raises:
            ProtocolError: ``size`` is negative or beyond the log.
        """
        return merkle.root_of_hashes(self.leaf_hashes(size))

    def inclusion_proof(self, seq: int, size: int) -> tuple[bytes, ...]:
        """The audit path of entry ``seq`` in the tree of ``size`` entries.

        Raises:
            ProtocolError: ``size`` is beyond the log, or ``seq`` not below it.
        """
        if not 0 <= seq < size:
            raise ProtocolError(f"entry {seq} is not in a tree of {size} entries")
        return merkle.inclusion_proof(seq, self.leaf_hashes(size))

    def consistency_proof(self, old_size: int, new_size: int) -> tuple[bytes, ...]:
        """The proof that the tree of ``old_size`` entries is a prefix of the
        tree of ``new_size`` entries.

        Raises:
            ProtocolError: ``new_size`` is beyond the log, or ``old_size`` is
                not in ``[0, new_size]``.
        """
        if not 0 <= old_size <= new_size:
            raise ProtocolError(f"no consistency proof from {old_size} to {new_size} entries")
        return merkle.consistency_proof(old_size, self.leaf_hashes(new_size))

    def checkpoint(
        self, operator_keys: IdentityKeys, *, time: datetime | None = None
    ) -> SignedDocument[LogCheckpoint]:
        """Sign the current size and root with ``operator_keys`` and store the
        checkpoint. If one is stored for this size already, that one is
        returned instead (its timestamp evidence dates it, not a new one).

        Raises:
            SignatureError: the stored checkpoint of this size is not signed
                by ``operator_keys``.
        """
        with database_errors("query log", "read the log size"), self._engine.connect() as conn:
            size = self._size(conn)
        signed = create_checkpoint(
            operator_keys,
            policy_id=self._policy_id,
            size=size,
            root=self.root(size),
            time=time,
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_checkpoints).values(size=size, checkpoint=signed.to_json()))
        except IntegrityError:
            return open_checkpoint(self.stored_checkpoint(size)[0], operator_keys.public_keys)
        except SQLAlchemyError as error:
            raise SecmarkError(f"query log: cannot store a checkpoint: {error}") from None
        return signed

    def stored_checkpoint(self, size: int) -> tuple[bytes, bytes | None]:
        """The signed checkpoint of ``size`` entries as stored, and its
        timestamp evidence if any (both bytes, unverified).

        Raises:
            ProtocolError: no checkpoint of that size is stored.
        """
        with database_errors("query log", "read a checkpoint"), self._engine.connect() as conn:
            row = conn.execute(
                select(_checkpoints.c.checkpoint, _checkpoints.c.timestamp).where(
                    _checkpoints.c.size == size
                )
            ).one_or_none()
        if row is None:
            raise ProtocolError(f"no checkpoint of {size} entries is stored")
        return bytes(row[0]), None if row[1] is None else bytes(row[1])

    def add_timestamp(self, size: int, evidence: bytes) -> None:
        """Store (or replace) the timestamp evidence of the checkpoint of
        ``size`` entries. The bytes are stored as given: the caller checks
        that they date that checkpoint's digest.

        Raises:
            EncodingError: more than :data:`MAX_EVIDENCE_SIZE` bytes.
            ProtocolError: no checkpoint of that size is stored.
        """
        if len(evidence) > MAX_EVIDENCE_SIZE:
            raise EncodingError(f"timestamp evidence may have at most {MAX_EVIDENCE_SIZE} bytes")
        with database_errors("query log", "store timestamp evidence"), self._engine.begin() as conn:
            updated = conn.execute(
                update(_checkpoints).where(_checkpoints.c.size == size).values(timestamp=evidence)
            ).rowcount
        if updated != 1:
            raise ProtocolError(f"no checkpoint of {size} entries is stored")

    def extract(self, client: str, size: int, *, decoys: bool = False) -> ClientExtract:
        """What an arbiter needs about ``client`` up to the stored checkpoint
        of ``size`` entries: the checkpoint, every leaf, and the client's
        marked entries (with ``decoys``, its unmarked ones too).

        Raises:
            ProtocolError: no checkpoint of that size is stored.
        """
        checkpoint, _ = self.stored_checkpoint(size)
        leaves = self.leaves(size)
        query = select(_entries.c.entry).where(_entries.c.client == client, _entries.c.seq < size)
        if not decoys:
            query = query.where(_entries.c.marked.is_(True))
        with (
            database_errors("query log", "read a client's entries"),
            self._engine.connect() as conn,
        ):
            entries = [
                bytes(data) for data in conn.execute(query.order_by(_entries.c.seq)).scalars()
            ]
        # Identical entries (same client, input and second) share one digest:
        # the extract carries each once.
        unique = list({hashlib.sha256(data).digest(): data for data in entries}.values())
        return ClientExtract(client, checkpoint, tuple(leaves), tuple(unique))
