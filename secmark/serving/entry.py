"""Query log entries and the Merkle leaves that commit to them.

An entry records one answered query: the serving policy, the client
account (a digest of its API key, never the key), the time, the canonical
input bytes, the model's answer, the answer served, whether it was marked,
and the operator's ECVRF proof on the entry's marking input. Entries are
canonical JSON (RFC 8785), not signed documents: the operator signs log
checkpoints (:mod:`secmark.messages.checkpoint`), which commit to every
entry through the log's Merkle tree.

The tree does not hash entries themselves but a small *leaf* naming the
entry's client, its digest and its marked flag. An arbiter can then read
every leaf of a log (a few dozen bytes each) and see that it holds all of
one client's marked entries without seeing any other client's inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_time,
    is_hex_digest,
    parse_canonical_json,
    parse_time,
)
from secmark.errors import EncodingError

__all__ = [
    "MAX_ANSWER",
    "MAX_ENTRY_SIZE",
    "MAX_INPUT_SIZE",
    "MAX_LEAF_SIZE",
    "POLICY_ID_SIZE",
    "Leaf",
    "LogEntry",
    "client_account",
    "leaf_of",
    "parse_leaf",
]

POLICY_ID_SIZE = 32
"""A serving policy id is a SHA-256 digest."""

MAX_INPUT_SIZE = 16 * 1024 * 1024
"""Bound on one query's canonical input: a large image or a long text fits;
more would let one query bloat the log and every extract (denial of service)."""

MAX_ANSWER = (1 << 53) - 1
"""Answers are class indices; the bound keeps them exact JSON numbers."""

MAX_ENTRY_SIZE = (MAX_INPUT_SIZE * 4 + 2) // 3 + 4096
"""The base64url input plus the other fields, with room to spare."""

MAX_LEAF_SIZE = 256
"""A leaf is two hex digests and a flag: about 150 bytes."""

_CLIENT_DOMAIN = b"secmark-v1 client"


def client_account(policy_id: bytes, api_key: str) -> str:
    """The client account an API key stands for under one serving policy:
    lower-case hex of ``SHA-256("secmark-v1 client" || policy_id || api_key)``
    with the key in UTF-8.

    The log keeps this digest, never the key. The policy id in the hash
    keeps one key's accounts under two policies unlinkable.

    Raises:
        EncodingError: ``policy_id`` is not 32 bytes, or ``api_key`` is not
            a string that encodes to UTF-8.
    """
    if not isinstance(policy_id, bytes) or len(policy_id) != POLICY_ID_SIZE:
        raise EncodingError(f"a serving policy id must be {POLICY_ID_SIZE} bytes")
    if not isinstance(api_key, str):
        raise EncodingError("an API key must be a string")
    try:
        key = api_key.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError("an API key must be valid Unicode (no lone surrogates)") from None
    return hashlib.sha256(_CLIENT_DOMAIN + policy_id + key).hexdigest()


@dataclass(frozen=True)
class LogEntry:
    """One logged query. Construction checks every field, so an instance is
    always encodable and reads back equal; ``time`` is kept in UTC whole
    seconds, the precision that is logged.

    The marking rule (whether ``marked`` and ``served_answer`` follow from the
    policy and ``proof``) is not checked here: that is
    :mod:`secmark.serving.marking`'s business.
    """

    policy_id: bytes
    client: str
    time: datetime
    input: bytes
    model_answer: int
    served_answer: int
    marked: bool
    proof: bytes

    def __post_init__(self) -> None:
        """Raises:
        EncodingError: a field of the wrong type, size or range.
        """
        if not isinstance(self.policy_id, bytes) or len(self.policy_id) != POLICY_ID_SIZE:
            raise EncodingError(f"a log entry's policy id must be {POLICY_ID_SIZE} bytes")
        if not is_hex_digest(self.client):
            raise EncodingError("a log entry's client must be 64 lower-case hex digits")
        if not isinstance(self.time, datetime):
            raise EncodingError("a log entry's time must be a datetime")
        object.__setattr__(self, "time", parse_time(format_time(self.time)))
        if not isinstance(self.input, bytes) or len(self.input) > MAX_INPUT_SIZE:
            raise EncodingError(f"a log entry's input must be at most {MAX_INPUT_SIZE} bytes")
        for name in ("model_answer", "served_answer"):
            value = getattr(self, name)
            # type() rather than isinstance(): True is an int in Python.
            if type(value) is not int or not 0 <= value <= MAX_ANSWER:
                raise EncodingError(f"a log entry's {name} must be an integer in [0, 2^53)")
        if type(self.marked) is not bool:
            raise EncodingError("a log entry's marked flag must be true or false")
        if not isinstance(self.proof, bytes) or len(self.proof) != PROOF_SIZE:
            raise EncodingError(f"a log entry's VRF proof must be {PROOF_SIZE} bytes")

    @cached_property
    def input_digest(self) -> str:
        """Lower-case hex SHA-256 of the canonical input bytes."""
        return hashlib.sha256(self.input).hexdigest()

    def to_fields(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "input": b64url_encode(self.input),
            "input_digest": self.input_digest,
            "marked": self.marked,
            "model_answer": self.model_answer,
            "policy_id": self.policy_id.hex(),
            "proof": b64url_encode(self.proof),
            "served_answer": self.served_answer,
            "time": format_time(self.time),
        }

    def to_bytes(self) -> bytes:
        """The entry's canonical JSON bytes."""
        return canonical_json(self.to_fields())

    @cached_property
    def digest(self) -> str:
        """Lower-case hex SHA-256 of :meth:`to_bytes`: the entry's id in its leaf."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> LogEntry:
        """Parse an entry, refusing anything but the canonical JSON that
        :meth:`to_bytes` writes.

        Raises:
            EncodingError: more than :data:`MAX_ENTRY_SIZE` bytes, JSON that
                is not canonical, a missing or extra field, a field of the
                wrong type (``"marked": 1`` and ``"model_answer": true``
                among them), or an ``input_digest`` that is not the input's.
        """
        value = parse_canonical_json(data, max_size=MAX_ENTRY_SIZE, what="log entry")
        if not isinstance(value, dict):
            raise EncodingError("a log entry must be a JSON object")
        expected = {
            "client",
            "input",
            "input_digest",
            "marked",
            "model_answer",
            "policy_id",
            "proof",
            "served_answer",
            "time",
        }
        if set(value) != expected:
            raise EncodingError(
                f"a log entry has the fields {sorted(expected)}, not {sorted(value)}"
            )
        policy_id = value["policy_id"]
        if not is_hex_digest(policy_id):
            raise EncodingError("a log entry's policy_id must be 64 lower-case hex digits")
        if not is_hex_digest(value["input_digest"]):
            raise EncodingError("a log entry's input_digest must be 64 lower-case hex digits")
        entry = cls(
            policy_id=bytes.fromhex(policy_id),
            client=value["client"],
            time=parse_time(value["time"], what="log entry time"),
            input=b64url_decode(value["input"], what="log entry input"),
            model_answer=value["model_answer"],
            served_answer=value["served_answer"],
            marked=value["marked"],
            proof=b64url_decode(value["proof"], what="log entry proof", size=PROOF_SIZE),
        )
        if entry.input_digest != value["input_digest"]:
            raise EncodingError("a log entry's input_digest is not the digest of its input")
        return entry


@dataclass(frozen=True)
class Leaf:
    """What the log's Merkle tree commits to for one entry."""

    client: str
    entry_digest: str
    marked: bool

    def to_bytes(self) -> bytes:
        """The leaf's canonical JSON: the bytes the tree hashes."""
        return canonical_json(
            {"client": self.client, "entry": self.entry_digest, "marked": self.marked}
        )


def leaf_of(entry: LogEntry) -> bytes:
    """The leaf bytes of ``entry``:
    ``{"client": <hex>, "entry": <entry digest hex>, "marked": <bool>}``."""
    return Leaf(entry.client, entry.digest, entry.marked).to_bytes()


def parse_leaf(data: bytes) -> Leaf:
    """Parse leaf bytes, refusing anything :func:`leaf_of` would not write.

    Raises:
        EncodingError: oversized, non-canonical JSON, missing or extra
            fields, digests that are not 64 lower-case hex digits, or a
            marked flag that is not a JSON boolean.
    """
    value = parse_canonical_json(data, max_size=MAX_LEAF_SIZE, what="log leaf")
    if not isinstance(value, dict) or set(value) != {"client", "entry", "marked"}:
        raise EncodingError("a log leaf must be an object with client, entry and marked")
    if not is_hex_digest(value["client"]) or not is_hex_digest(value["entry"]):
        raise EncodingError("a log leaf's client and entry must be 64 lower-case hex digits")
    if type(value["marked"]) is not bool:
        raise EncodingError("a log leaf's marked flag must be true or false")
    return Leaf(value["client"], value["entry"], value["marked"])
