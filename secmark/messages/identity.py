"""The public identity document: an identity's public keys, self-signed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import SUITE, IdentityKeys, PublicKeys
from secmark.encoding import format_time, utc_now
from secmark.errors import EncodingError
from secmark.messages.document import (
    Fields,
    SignedDocument,
    read_unverified_payload,
    sign_document,
)

__all__ = [
    "MAX_IDENTITY_SIZE",
    "Identity",
    "create_identity",
    "open_identity",
    "public_keys_from_fields",
]

MAX_IDENTITY_SIZE = 8192
"""An identity envelope is under a kilobyte; anything far larger is refused unread."""

_MAX_NAME_LENGTH = 256


def _check_name(name: str) -> str:
    """A name is shown to people beside a key id: 1 to 256 printable
    characters, no newline, escape sequence, bidirectional override or
    other control that could make it display as something else."""
    if not name:
        raise EncodingError("the name must not be empty")
    if len(name) > _MAX_NAME_LENGTH:
        raise EncodingError(f"an identity name must have 1 to {_MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        raise EncodingError(
            "an identity name must be printable text: no newline, tab, escape sequence "
            f"or other control or format character (found {name!r:.80})"
        )
    return name


def _public_key_object(fields: Fields) -> PublicKeys:
    suite = fields.text("suite")
    if suite != SUITE:
        raise EncodingError(f"unsupported suite {suite!r} (this secmark implements {SUITE})")
    return PublicKeys.from_raw(
        fields.raw_bytes("signing_key", size=32),
        fields.raw_bytes("vrf_key", size=32),
        fields.raw_bytes("encryption_key", size=32),
    )


def public_keys_from_fields(fields: Fields) -> PublicKeys:
    """Read the ``keys`` object and the ``key_id`` that must name it.

    Raises:
        EncodingError: malformed keys, or a key id that does not match them.
        KeyMaterialError: a key is invalid.
    """
    keys = fields.nested("keys", _public_key_object)
    if fields.hex_digest("key_id") != keys.key_id:
        raise EncodingError("key_id does not match the keys it names")
    return keys


@dataclass(frozen=True)
class Identity:
    """Who someone is in secmark: a name they chose and their public keys.

    The name is a label, not a verified claim; the key id is what counts.
    """

    TYPE: ClassVar[str] = "secmark.identity"
    VERSION: ClassVar[int] = 1

    name: str
    created: datetime
    public_keys: PublicKeys = field(repr=False)

    @property
    def key_id(self) -> str:
        return self.public_keys.key_id

    def to_fields(self) -> dict[str, Any]:
        return {
            "created": format_time(self.created),
            "key_id": self.key_id,
            "keys": self.public_keys.canonical_fields(),
            "name": self.name,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Identity:
        name = fields.text("name", max_length=_MAX_NAME_LENGTH)
        try:
            _check_name(name)
        except EncodingError as error:
            raise EncodingError(f"secmark.identity: {error}") from None
        created = fields.time("created")
        return cls(name, created, public_keys_from_fields(fields))


def create_identity(
    keys: IdentityKeys, name: str, *, created: datetime | None = None
) -> SignedDocument[Identity]:
    """The identity document of ``keys``, signed by its own signing key.

    Raises:
        EncodingError: ``name`` is empty, longer than 256 characters, or holds
            a character that is not printable (a newline, an escape, a
            bidirectional override: ``str.isprintable``).
    """
    identity = Identity(_check_name(name), created or utc_now(), keys.public_keys)
    return sign_document(identity, keys)


def open_identity(data: bytes) -> SignedDocument[Identity]:
    """Parse an identity document and check its self-signature.

    This proves only that whoever made the document holds the signing key;
    whether that key belongs to a given person is for the caller to establish
    (compare the key id through a channel you trust).

    Raises:
        EncodingError: the document is malformed.
        KeyMaterialError: a public key is invalid.
        SignatureError: the self-signature does not verify.
    """
    envelope, identity = read_unverified_payload(data, Identity, max_size=MAX_IDENTITY_SIZE)
    envelope.verify(identity.public_keys)
    return SignedDocument(identity, envelope, identity.key_id)
