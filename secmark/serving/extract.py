"""What an operator hands an arbiter about one client account, and its check.

A client extract holds a signed log checkpoint, every leaf of the log up to
the checkpoint's size, and the full entries of one client: all those whose
leaf says *marked*, and optionally some unmarked ones (decoys). Leaves are
small and name no input, so the arbiter sees every client's leaf but only
this client's inputs; from the leaves it recomputes the signed root and so
knows the operator left none of this client's marked entries out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from secmark.crypto import merkle
from secmark.crypto.keys import PublicKeys
from secmark.encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    is_hex_digest,
    parse_canonical_json,
)
from secmark.errors import EncodingError, ProofError, ProtocolError
from secmark.messages.checkpoint import LogCheckpoint, open_checkpoint
from secmark.messages.document import SignedDocument
from secmark.serving.entry import MAX_ENTRY_SIZE, Leaf, LogEntry, parse_leaf

__all__ = [
    "EXTRACT_TYPE",
    "MAX_EXTRACT_SIZE",
    "ClientExtract",
    "VerifiedExtract",
    "verify_consistency",
    "verify_extract",
]

EXTRACT_TYPE = "secmark.log-extract"
_EXTRACT_VERSION = 1

MAX_EXTRACT_SIZE = 1 << 30
"""Default bound on an extract's bytes (denial of service): about five
million leaves, or dozens of entries with the largest inputs. A caller
expecting more passes its own bound."""

_FIELDS = {"checkpoint", "client", "entries", "leaves", "type", "version"}


@dataclass(frozen=True)
class ClientExtract:
    """The signed checkpoint (envelope bytes), all leaves up to its size, and
    entry bytes of one ``client`` (hex account). Build it with
    :meth:`QueryLog.extract <secmark.serving.log.QueryLog.extract>` or
    :meth:`from_bytes`; nothing is verified until :func:`verify_extract`."""

    client: str
    checkpoint: bytes
    leaves: tuple[bytes, ...]
    entries: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        """The extract as canonical JSON, byte strings in base64url."""
        return canonical_json(
            {
                "checkpoint": b64url_encode(self.checkpoint),
                "client": self.client,
                "entries": [b64url_encode(entry) for entry in self.entries],
                "leaves": [b64url_encode(leaf) for leaf in self.leaves],
                "type": EXTRACT_TYPE,
                "version": _EXTRACT_VERSION,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, max_size: int = MAX_EXTRACT_SIZE) -> ClientExtract:
        """Parse an extract's canonical JSON (its contents are checked by
        :func:`verify_extract`).

        Raises:
            EncodingError: more than ``max_size`` bytes, non-canonical JSON,
                another type or version, a missing or extra field, a field of
                the wrong type, or an entry larger than an entry may be.
        """
        value = parse_canonical_json(data, max_size=max_size, what="log extract")
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise EncodingError(f"a log extract is an object with the fields {sorted(_FIELDS)}")
        if value["type"] != EXTRACT_TYPE:
            raise EncodingError(f"expected a {EXTRACT_TYPE}, found {value['type']!r}")
        if type(value["version"]) is not int or value["version"] != _EXTRACT_VERSION:
            raise EncodingError(f"unsupported log extract version {value['version']!r}")
        client = value["client"]
        if not is_hex_digest(client):
            raise EncodingError("a log extract's client must be 64 lower-case hex digits")
        return cls(
            client=client,
            checkpoint=b64url_decode(value["checkpoint"], what="log extract checkpoint"),
            leaves=_byte_list(value["leaves"], "leaves"),
            entries=_byte_list(value["entries"], "entries"),
        )


def _byte_list(value: object, name: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise EncodingError(f"a log extract's {name} must be a list")
    items = tuple(b64url_decode(item, what=f"log extract {name}") for item in value)
    if name == "entries" and any(len(item) > MAX_ENTRY_SIZE for item in items):
        raise EncodingError(f"a log entry may have at most {MAX_ENTRY_SIZE} bytes")
    return items


@dataclass(frozen=True)
class VerifiedExtract:
    """An extract that :func:`verify_extract` accepted.

    ``marked`` holds every marked entry of ``client`` in log order, one per
    distinct input (the first asked); ``unmarked`` the decoys given, also
    one per input and none with a marked entry's input. ``client_count`` is
    the number of distinct client accounts in the log up to the checkpoint
    (for a multiple-testing correction over accounts).
    """

    checkpoint: SignedDocument[LogCheckpoint]
    client: str
    marked: tuple[LogEntry, ...]
    unmarked: tuple[LogEntry, ...]
    client_count: int


def verify_extract(
    extract: ClientExtract, *, operator: PublicKeys, policy_id: bytes
) -> VerifiedExtract:
    """Check an extract against the operator's key and the serving policy.

    Checks, in order: the checkpoint's signature and operator; its policy id;
    that the leaves are exactly ``size`` many and hash to its root; that each
    entry is the policy's, is new in the extract, and has a leaf in the log
    with the same digest, the extract's client and the same marked flag;
    and completeness: every marked leaf of the client has its entry. The
    work is linear in the number of leaves (one parse and one hash each).

    Raises:
        EncodingError: a checkpoint, leaf or entry that does not parse, or an
            entry given twice.
        SignatureError: the checkpoint is not the operator's.
        ProtocolError: the checkpoint is for another serving policy.
        ProofError: the leaves do not match the checkpoint, an entry is not
            in the log or belongs to another client or disagrees with its
            leaf, or marked entries are missing (their number is named).
    """
    checkpoint = open_checkpoint(extract.checkpoint, operator)
    document = checkpoint.document
    if document.policy_id != policy_id:
        raise ProtocolError("the log checkpoint is for another serving policy")
    if len(extract.leaves) != document.size:
        raise ProofError(
            f"the extract has {len(extract.leaves)} leaves but the checkpoint "
            f"commits to {document.size}"
        )
    if merkle.merkle_root(extract.leaves) != document.root:
        raise ProofError("the extract's leaves do not hash to the checkpoint's root")

    leaves = [parse_leaf(leaf) for leaf in extract.leaves]
    first_leaf: dict[str, int] = {}
    for index, leaf in enumerate(leaves):
        first_leaf.setdefault(leaf.entry_digest, index)

    found: list[tuple[int, LogEntry]] = []
    given: set[str] = set()
    for data in extract.entries:
        digest = hashlib.sha256(data).hexdigest()
        if digest in given:
            raise EncodingError("the extract holds the same entry twice")
        given.add(digest)
        entry = LogEntry.from_bytes(data)
        if entry.policy_id != policy_id:
            raise ProofError("an extract entry is for another serving policy")
        position = first_leaf.get(digest)
        if position is None:
            raise ProofError("an extract entry has no leaf in the log")
        _check_against_leaf(entry, leaves[position], extract.client)
        found.append((position, entry))

    missing = sum(
        1
        for leaf in leaves
        if leaf.client == extract.client and leaf.marked and leaf.entry_digest not in given
    )
    if missing:
        raise ProofError(f"{missing} of the client's marked entries are missing from the extract")

    found.sort(key=lambda item: item[0])
    marked = _first_per_input([e for _, e in found if e.marked], exclude=set())
    unmarked = _first_per_input(
        [e for _, e in found if not e.marked], exclude={e.input_digest for e in marked}
    )
    return VerifiedExtract(
        checkpoint=checkpoint,
        client=extract.client,
        marked=marked,
        unmarked=unmarked,
        client_count=len({leaf.client for leaf in leaves}),
    )


def _check_against_leaf(entry: LogEntry, leaf: Leaf, client: str) -> None:
    if leaf.client != client or entry.client != client:
        raise ProofError("an extract entry belongs to another client account")
    if entry.marked != leaf.marked:
        raise ProofError("an extract entry's marked flag differs from its leaf's")


def _first_per_input(entries: Sequence[LogEntry], *, exclude: set[str]) -> tuple[LogEntry, ...]:
    """The first entry of each input not in ``exclude``: a client that asks
    the same input twice gives one observation, not two."""
    seen = set(exclude)
    kept = []
    for entry in entries:
        if entry.input_digest not in seen:
            seen.add(entry.input_digest)
            kept.append(entry)
    return tuple(kept)


def verify_consistency(
    old: SignedDocument[LogCheckpoint],
    new: SignedDocument[LogCheckpoint],
    proof: Sequence[bytes],
) -> None:
    """Check that the log of checkpoint ``new`` extends that of ``old``
    (both already opened with the operator's key), by an RFC 9162
    consistency proof. Two checkpoints of one log that fail it prove that
    the operator showed different logs to different parties (a fork).

    Raises:
        ProtocolError: the checkpoints are of different policies or operators.
        ProofError: ``old`` is larger than ``new``, or the proof fails.
    """
    if old.document.policy_id != new.document.policy_id:
        raise ProtocolError("the checkpoints are of different serving policies")
    if old.document.operator != new.document.operator:
        raise ProtocolError("the checkpoints are of different log operators")
    merkle.verify_consistency(
        old.document.size, new.document.size, old.document.root, new.document.root, proof
    )
