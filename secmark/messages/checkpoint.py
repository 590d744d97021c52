"""The log checkpoint: a serving query log's size and Merkle root, signed.

The operator of a serving gateway signs a checkpoint from time to time
(and has it timestamped). It commits the operator to every entry logged so
far under one serving policy: an entry is in the log if an inclusion proof
leads from its leaf to the root, and a later checkpoint extends an earlier
one if a consistency proof links their roots. Two checkpoints that no
consistency proof links show that the operator forked its log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.crypto.merkle import HASH_SIZE, MAX_LOG_SIZE
from secmark.encoding import format_time, utc_now
from secmark.errors import EncodingError, SignatureError
from secmark.messages.document import Fields, SignedDocument, open_document, sign_document

__all__ = [
    "MAX_CHECKPOINT_SIZE",
    "LogCheckpoint",
    "create_checkpoint",
    "open_checkpoint",
]

MAX_CHECKPOINT_SIZE = 4096
"""A checkpoint is a few short fields; its envelope is well under 1 KiB."""


@dataclass(frozen=True)
class LogCheckpoint:
    """``secmark.log-checkpoint`` version 1: the log of ``policy_id`` held
    ``size`` entries, whose Merkle Tree Hash is ``root``, at ``time``.

    ``operator`` is the key id of the identity that signs it.
    """

    TYPE: ClassVar[str] = "secmark.log-checkpoint"
    VERSION: ClassVar[int] = 1

    policy_id: bytes
    operator: str
    size: int
    root: bytes
    time: datetime

    def __post_init__(self) -> None:
        """Raises:
        EncodingError: a policy id or root that is not 32 bytes, or a size
            outside ``[0, MAX_LOG_SIZE]``.
        """
        if len(self.policy_id) != HASH_SIZE or len(self.root) != HASH_SIZE:
            raise EncodingError(f"a checkpoint's policy id and root must be {HASH_SIZE} bytes")
        if type(self.size) is not int or not 0 <= self.size <= MAX_LOG_SIZE:
            raise EncodingError(f"a checkpoint's size must be in [0, {MAX_LOG_SIZE}]")

    def to_fields(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "policy_id": self.policy_id.hex(),
            "root": self.root.hex(),
            "size": self.size,
            "time": format_time(self.time),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> LogCheckpoint:
        return cls(
            policy_id=bytes.fromhex(fields.hex_digest("policy_id")),
            operator=fields.hex_digest("operator"),
            size=fields.integer("size", minimum=0, maximum=MAX_LOG_SIZE),
            root=bytes.fromhex(fields.hex_digest("root")),
            time=fields.time("time"),
        )


def create_checkpoint(
    keys: IdentityKeys,
    *,
    policy_id: bytes,
    size: int,
    root: bytes,
    time: datetime | None = None,
) -> SignedDocument[LogCheckpoint]:
    """Sign a checkpoint with the operator's ``keys`` (the current time by default).

    Raises:
        EncodingError: as :class:`LogCheckpoint`.
    """
    checkpoint = LogCheckpoint(policy_id, keys.key_id, size, root, time or utc_now())
    return sign_document(checkpoint, keys)


def open_checkpoint(data: bytes, operator: PublicKeys) -> SignedDocument[LogCheckpoint]:
    """Parse a checkpoint, verify ``operator`` signed it and that it names
    ``operator`` as its signer.

    The caller must still check the policy id and compare roots.

    Raises:
        EncodingError: as :func:`open_document`.
        SignatureError: ``operator`` did not sign it, or it names another operator.
    """
    signed = open_document(data, LogCheckpoint, operator, max_size=MAX_CHECKPOINT_SIZE)
    if signed.document.operator != operator.key_id:
        raise SignatureError("the log checkpoint names another operator than its signer")
    return signed
