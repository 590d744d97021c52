"""The release registration: which model an owner released under a commitment.

A release binds a commitment id to the digest of the watermarked model as
released, with a name and version. The model is one file (``sha256-file``)
or a folder, digested as OpenSSF model-signing digests it
(``model-signing-files-sha256``, computed by :mod:`secmark.provenance`), so
that a release and a model-signing signature over the same folder name it
by the same value. It is signed by the owner and timestamped
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
    "MODEL_DIGEST_ALGORITHMS",
    "MODEL_SIGNING_FILES_SHA256",
    "SHA256_FILE",
    "Release",
    "create_release",
    "model_file_digest",
    "open_release",
]

SHA256_FILE = "sha256-file"
"""SHA-256 over the released model file's bytes (a safetensors file)."""

MODEL_SIGNING_FILES_SHA256 = "model-signing-files-sha256"
"""A released model folder, as the subject digest of an OpenSSF model-signing
v1.0 signature with its ``files`` serialization and SHA-256 throughout: the
SHA-256 of the concatenated SHA-256 digests of the folder's files, in
ascending order of their paths (specs/dispute.md 8.2.1)."""

MODEL_DIGEST_ALGORITHMS = (SHA256_FILE, MODEL_SIGNING_FILES_SHA256)

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
    model_digest_algorithm: str = SHA256_FILE
    """How ``model_digest`` was computed: one of :data:`MODEL_DIGEST_ALGORITHMS`."""

    def to_fields(self) -> dict[str, Any]:
        return {
            "commitment_id": self.commitment_id,
            "created": format_time(self.created),
            "model_digest": {"algorithm": self.model_digest_algorithm, "value": self.model_digest},
            "model_name": self.model_name,
            "model_version": self.model_version,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Release:
        algorithm, digest = fields.nested("model_digest", _model_digest)
        return cls(
            commitment_id=fields.hex_digest("commitment_id"),
            model_digest=digest,
            model_name=fields.text("model_name", max_length=256),
            model_version=fields.text("model_version", max_length=128),
            created=fields.time("created"),
            model_digest_algorithm=algorithm,
        )


def _model_digest(fields: Fields) -> tuple[str, str]:
    algorithm = fields.text("algorithm")
    if algorithm not in MODEL_DIGEST_ALGORITHMS:
        raise EncodingError(f"unknown model digest algorithm {algorithm!r}")
    return algorithm, fields.hex_digest("value")


def create_release(
    keys: IdentityKeys,
    *,
    commitment_id: str,
    model_digest: str,
    model_name: str,
    model_version: str,
    model_digest_algorithm: str = SHA256_FILE,
    created: datetime | None = None,
) -> SignedDocument[Release]:
    """Sign a release registration (the owner must be the commitment's owner).

    Raises:
        EncodingError: ``model_digest_algorithm`` is not one of
            :data:`MODEL_DIGEST_ALGORITHMS`.
    """
    if model_digest_algorithm not in MODEL_DIGEST_ALGORITHMS:
        raise EncodingError(f"unknown model digest algorithm {model_digest_algorithm!r}")
    release = Release(
        commitment_id,
        model_digest,
        model_name,
        model_version,
        created or utc_now(),
        model_digest_algorithm,
    )
    return sign_document(release, keys)


def open_release(data: bytes, owner: PublicKeys) -> SignedDocument[Release]:
    """Parse a release and verify ``owner`` signed it.

    Raises:
        EncodingError, SignatureError: as :func:`open_document`.
    """
    return open_document(data, Release, owner, max_size=MAX_RELEASE_SIZE)
