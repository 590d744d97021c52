"""The release registration: which model an owner released under a commitment.

A release binds a commitment id to the digest of the watermarked model as
released, with a name and version. It is signed by the owner and timestamped
like a commitment; its trusted time must come after the commitment's. In an
ambiguity dispute the arbiter queries each claimant's *registered* released
model: the origin's release carries its own watermark and not the thief's.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import format_time, utc_now
from secmark.errors import EncodingError, SecmarkError
from secmark.messages.document import Fields, SignedDocument, open_document, sign_document

__all__ = [
    "MODEL_DIGEST_ALGORITHM",
    "Release",
    "create_release",
    "model_file_digest",
    "open_release",
]

MODEL_DIGEST_ALGORITHM = "sha256-file"
"""SHA-256 over the released model file's bytes (a safetensors file)."""

MAX_RELEASE_SIZE = 16 * 1024
_CHUNK = 1 << 20


def model_file_digest(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a model file, read in chunks.

    Raises:
        SecmarkError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise SecmarkError(f"cannot read model file {path}: {error.strerror}") from None
    return digest.hexdigest()


@dataclass(frozen=True)
class Release:
    """``secmark.release`` version 1."""

    TYPE: ClassVar[str] = "secmark.release"
    VERSION: ClassVar[int] = 1

    commitment_id: str
    model_digest: str
    model_name: str
    model_version: str
    created: datetime

    def to_fields(self) -> dict[str, Any]:
        return {
            "commitment_id": self.commitment_id,
            "created": format_time(self.created),
            "model_digest": {"algorithm": MODEL_DIGEST_ALGORITHM, "value": self.model_digest},
            "model_name": self.model_name,
            "model_version": self.model_version,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Release:
        return cls(
            commitment_id=fields.hex_digest("commitment_id"),
            model_digest=fields.nested("model_digest", _model_digest),
            model_name=fields.text("model_name", max_length=256),
            model_version=fields.text("model_version", max_length=128),
            created=fields.time("created"),
        )


def _model_digest(fields: Fields) -> str:
    algorithm = fields.text("algorithm")
    if algorithm != MODEL_DIGEST_ALGORITHM:
        raise EncodingError(f"unknown model digest algorithm {algorithm!r}")
    return fields.hex_digest("value")


def create_release(
    keys: IdentityKeys,
    *,
    commitment_id: str,
    model_digest: str,
    model_name: str,
    model_version: str,
    created: datetime | None = None,
) -> SignedDocument[Release]:
    """Sign a release registration (the owner must be the commitment's owner)."""
    release = Release(commitment_id, model_digest, model_name, model_version, created or utc_now())
    return sign_document(release, keys)


def open_release(data: bytes, owner: PublicKeys) -> SignedDocument[Release]:
    """Parse a release and verify ``owner`` signed it.

    Raises:
        EncodingError, SignatureError: as :func:`open_document`.
    """
    return open_document(data, Release, owner, max_size=MAX_RELEASE_SIZE)
