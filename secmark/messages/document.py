"""Typed, signed, canonical documents.

Every protocol message is a dataclass whose JSON payload carries ``type`` and
``version`` beside its fields, encoded as RFC 8785 canonical JSON and signed
in a DSSE envelope with payload type :data:`PAYLOAD_TYPE`. A document is read
only through :func:`open_document`, which verifies the signer before it looks
at the payload and keeps the exact signed bytes; the document's digest (its
id) is the SHA-256 of those bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import (
    b64url_decode,
    canonical_json,
    is_hex_digest,
    parse_canonical_json,
    parse_time,
)
from secmark.errors import EncodingError
from secmark.messages.dsse import MAX_ENVELOPE_SIZE, Envelope

__all__ = [
    "PAYLOAD_TYPE",
    "Document",
    "Fields",
    "SignedDocument",
    "decode_payload",
    "encode_payload",
    "open_document",
    "read_unverified_payload",
    "sign_document",
]

PAYLOAD_TYPE = "application/vnd.secmark+json"
"""The DSSE payload type of every secmark document."""

_MAX_TEXT_LENGTH = 4096


class Document(Protocol):
    """What a document class provides: its type name, version and fields."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]

    def to_fields(self) -> dict[str, Any]:
        """The payload's fields, other than ``type`` and ``version``."""
        ...

    @classmethod
    def from_fields(cls, fields: Fields) -> Document:
        """Build the document from checked fields; must consume every field."""
        ...


D = TypeVar("D", bound=Document)
T = TypeVar("T")


class Fields:
    """Reads a payload's fields one by one, each checked, and refuses leftovers.

    Every accessor raises :class:`EncodingError` naming the field when it is
    missing or of the wrong kind.
    """

    def __init__(self, values: dict[str, Any], *, context: str) -> None:
        self._values = values
        self._context = context
        self._read: set[str] = set()

    def _get(self, name: str) -> Any:
        if name not in self._values:
            raise EncodingError(f"{self._context}: missing field {name!r}")
        self._read.add(name)
        return self._values[name]

    def _fail(self, name: str, rule: str) -> EncodingError:
        return EncodingError(f"{self._context}: field {name!r} must be {rule}")

    def has(self, name: str) -> bool:
        """Whether the field is present (an optional field left out when empty)."""
        return name in self._values

    def is_null(self, name: str) -> bool:
        """Whether the field is present and null (it is then consumed)."""
        if self._get(name) is None:
            return True
        self._read.discard(name)
        return False

    def text_list(self, name: str, *, max_items: int, max_length: int = 256) -> list[str]:
        value = self._get(name)
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or any(not isinstance(item, str) or len(item) > max_length for item in value)
        ):
            raise self._fail(name, f"a list of at most {max_items} short strings")
        return value

    def text(self, name: str, *, max_length: int = _MAX_TEXT_LENGTH) -> str:
        value = self._get(name)
        if not isinstance(value, str) or len(value) > max_length:
            raise self._fail(name, f"a string of at most {max_length} characters")
        return value

    def integer(self, name: str, *, minimum: int, maximum: int) -> int:
        value = self._get(name)
        if type(value) is not int or not minimum <= value <= maximum:
            raise self._fail(name, f"an integer in [{minimum}, {maximum}]")
        return value

    def number(self, name: str) -> float:
        """A finite JSON number (integer or not), returned as a float.

        JCS writes integral floats without a fraction (``2.0`` as ``2``), so a
        number field accepts both spellings.
        """
        value = self._get(name)
        if type(value) not in (int, float):
            raise self._fail(name, "a number")
        return float(value)

    def json_number(self, name: str) -> int | float:
        """A JSON number as it was written: an int when integral, else a
        float. Unlike :meth:`number` it converts nothing, so a reader that
        tells a class (an int) from a value can still do so."""
        value = self._get(name)
        if type(value) not in (int, float):
            raise self._fail(name, "a number")
        return value  # type: ignore[no-any-return]

    def integer_list(self, name: str, *, minimum: int, maximum: int, max_items: int) -> list[int]:
        value = self._get(name)
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or any(type(item) is not int or not minimum <= item <= maximum for item in value)
        ):
            raise self._fail(
                name, f"a list of at most {max_items} integers in [{minimum}, {maximum}]"
            )
        return value

    def answer(self, name: str, *, max_items: int) -> int | float | list[int] | None:
        """A suspect's answer: null, a number, or a list of integers."""
        value = self._get(name)
        if value is None or type(value) in (int, float):
            return value  # type: ignore[no-any-return]
        if (
            isinstance(value, list)
            and len(value) <= max_items
            and all(type(v) is int for v in value)
        ):
            return value
        raise self._fail(name, f"null, a number or a list of at most {max_items} integers")

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise self._fail(name, "true or false")
        return value

    def raw_bytes(self, name: str, *, size: int | None = None) -> bytes:
        value = self._get(name)
        return b64url_decode(value, what=f"{self._context} field {name!r}", size=size)

    def bytes_list(self, name: str, *, size: int, max_items: int) -> list[bytes]:
        value = self._get(name)
        if not isinstance(value, list) or len(value) > max_items:
            raise self._fail(name, f"a list of at most {max_items} byte strings")
        return [
            b64url_decode(item, what=f"{self._context} field {name!r}", size=size) for item in value
        ]

    def hex_digest(self, name: str) -> str:
        value = self._get(name)
        if not is_hex_digest(value):
            raise self._fail(name, "64 lower-case hex digits (a SHA-256 digest)")
        return value

    def optional_hex_digest(self, name: str) -> str | None:
        return None if self.is_null(name) else self.hex_digest(name)

    def time(self, name: str) -> datetime:
        return parse_time(self._get(name), what=f"{self._context} field {name!r}")

    def nested(self, name: str, build: Callable[[Fields], T]) -> T:
        """Read an object field with ``build``, which must consume all of it."""
        value = self._get(name)
        if not isinstance(value, dict):
            raise self._fail(name, "an object")
        inner = Fields(value, context=f"{self._context}.{name}")
        result = build(inner)
        inner.finish()
        return result

    def objects(
        self, name: str, build: Callable[[Fields], T], *, min_items: int = 0, max_items: int
    ) -> list[T]:
        """Read a list of objects, each with ``build``, which must consume it."""
        value = self._get(name)
        if not isinstance(value, list) or not min_items <= len(value) <= max_items:
            raise self._fail(name, f"a list of {min_items} to {max_items} objects")
        results = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise self._fail(name, "a list of objects")
            inner = Fields(item, context=f"{self._context}.{name}[{index}]")
            results.append(build(inner))
            inner.finish()
        return results

    def finish(self) -> None:
        """Refuse any field that no accessor read."""
        extra = sorted(set(self._values) - self._read)
        if extra:
            raise EncodingError(f"{self._context}: unexpected fields {extra}")


def encode_payload(document: Document) -> bytes:
    """The canonical JSON of ``document``'s fields with its type and version."""
    fields = document.to_fields()
    if "type" in fields or "version" in fields:
        raise EncodingError("document fields may not be named type or version")
    return canonical_json({**fields, "type": document.TYPE, "version": document.VERSION})


def decode_payload(payload: bytes, document_type: type[D], max_size: int) -> D:
    """Decode canonical payload bytes as ``document_type``, checking every rule
    of specs/documents.md 3.1. Signatures are the caller's business.

    Raises:
        EncodingError: any rule broken.
    """
    value = parse_canonical_json(payload, max_size=max_size, what=f"{document_type.TYPE} payload")
    if not isinstance(value, dict):
        raise EncodingError("a document payload must be a JSON object")
    found_type = value.get("type")
    if found_type != document_type.TYPE:
        raise EncodingError(f"expected a {document_type.TYPE} document, found {found_type!r}")
    found_version = value.get("version")
    # type() first: true == 1 in Python, and "version": true is another
    # payload (another id) that a schema-following reader refuses.
    if type(found_version) is not int or found_version != document_type.VERSION:
        raise EncodingError(
            f"unsupported {document_type.TYPE} version {found_version!r} "
            f"(this secmark reads version {document_type.VERSION})"
        )
    fields = Fields(
        {k: v for k, v in value.items() if k not in ("type", "version")},
        context=document_type.TYPE,
    )
    document = document_type.from_fields(fields)
    fields.finish()
    return document  # type: ignore[return-value]


def _read_envelope(data: bytes, max_size: int) -> Envelope:
    envelope = Envelope.from_json(data, max_size=max_size)
    if envelope.payload_type != PAYLOAD_TYPE:
        raise EncodingError(
            f"unexpected DSSE payload type {envelope.payload_type!r} (expected {PAYLOAD_TYPE})"
        )
    return envelope


@dataclass(frozen=True)
class SignedDocument(Generic[D]):
    """A document together with the exact envelope and payload bytes signed."""

    document: D
    envelope: Envelope
    signer_key_id: str

    @property
    def payload(self) -> bytes:
        return self.envelope.payload

    @property
    def digest(self) -> str:
        """Lower-case hex SHA-256 of the canonical payload: the document's id."""
        return hashlib.sha256(self.envelope.payload).hexdigest()

    def to_json(self) -> bytes:
        return self.envelope.to_json()


def sign_document(document: D, keys: IdentityKeys) -> SignedDocument[D]:
    """Encode ``document`` canonically and sign it with ``keys``."""
    envelope = Envelope.sign(PAYLOAD_TYPE, encode_payload(document), keys)
    return SignedDocument(document, envelope, keys.key_id)


def open_document(
    data: bytes,
    document_type: type[D],
    signer: PublicKeys,
    *,
    max_size: int = MAX_ENVELOPE_SIZE,
) -> SignedDocument[D]:
    """Parse an envelope, verify ``signer`` signed it, and decode the document.

    The signature is checked before the payload is interpreted.

    Raises:
        EncodingError: malformed or non-canonical envelope or payload, wrong
            payload type, wrong document type, unknown version, missing or
            extra fields.
        SignatureError: ``signer`` did not sign it.
    """
    envelope = _read_envelope(data, max_size)
    envelope.verify(signer)
    document = decode_payload(envelope.payload, document_type, max_size)
    return SignedDocument(document, envelope, signer.key_id)


def read_unverified_payload(
    data: bytes, document_type: type[D], *, max_size: int = MAX_ENVELOPE_SIZE
) -> tuple[Envelope, D]:
    """Decode an envelope's document *without* verifying any signature.

    Only for self-signed documents, whose signer key is inside the payload:
    the caller must verify the envelope with that key before trusting it.
    """
    envelope = _read_envelope(data, max_size)
    return envelope, decode_payload(envelope.payload, document_type, max_size)
