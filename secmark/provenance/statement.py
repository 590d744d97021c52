"""secmark documents as in-toto Statements (v1), DSSE-signed.

A commitment, release or verdict is exported as an in-toto Statement whose
predicate is the document's payload object (its ``type``, ``version`` and
fields) and whose predicate type names the document (:data:`PREDICATE_TYPES`);
the statement travels in a DSSE envelope of payload type
``application/vnd.in-toto+json``, signed by the identity that signed the
document. The predicate's canonical JSON is the document's payload, so the
document read back has the same id. A release's subject is its model, by the
model-signing digest that a model-signing signature over the same model
names; a commitment's or verdict's subject is the document itself, by its id
(specs/provenance.md 3).

Opening checks, in order: the envelope and its payload type, the signature
by the expected identity, the statement's structure (with the
``in-toto-attestation`` package's v1 models and secmark's stricter rules),
the predicate as the secmark document it names, and the subject against the
predicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import canonical_json, parse_canonical_json
from secmark.errors import EncodingError, SignatureError
from secmark.messages.commitment import Commitment, open_commitment
from secmark.messages.document import SignedDocument, decode_payload
from secmark.messages.dsse import Envelope
from secmark.messages.release import Release, open_release
from secmark.messages.verdict import Verdict, open_verdict
from secmark.provenance._library import require_provenance_extra
from secmark.provenance.model_digest import model_signing_digest

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "MAX_STATEMENT_SIZE",
    "PREDICATE_TYPES",
    "STATEMENT_TYPE",
    "Attestation",
    "AttestedDocument",
    "attest",
    "open_statement",
]

AttestedDocument = Commitment | Release | Verdict
"""The documents secmark exports as statements."""

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

PREDICATE_TYPES: dict[str, str] = {
    Commitment.TYPE: "https://secmark.invalid/predicates/commitment/v1",
    Release.TYPE: "https://secmark.invalid/predicates/release/v1",
    Verdict.TYPE: "https://secmark.invalid/predicates/verdict/v1",
}
"""Predicate type by document type. ``secmark.invalid`` is the namespace the
JSON Schemas' ids use too: a name nobody can own (RFC 2606), until the
project has an address of its own (specs/provenance.md 2)."""

_DOCUMENT_TYPES: dict[str, type[Commitment | Release | Verdict]] = {
    PREDICATE_TYPES[kind.TYPE]: kind for kind in (Commitment, Release, Verdict)
}

MAX_STATEMENT_SIZE = 8 * 1024 * 1024
"""The largest document exported, a verdict, is at most 4 MiB of payload;
base64 in the envelope makes that about 5.4 MiB."""

_MAX_SUBJECT_NAME = 256


@dataclass(frozen=True)
class Attestation:
    """A verified statement: the document it carries and what it is about."""

    document: AttestedDocument
    document_id: str
    """The document's id: the SHA-256 of its payload, the predicate's canonical JSON."""
    subject_name: str
    subject_digest: str
    """The subject's ``sha256`` digest (specs/provenance.md 3)."""
    predicate_type: str
    signer_key_id: str


def _subject(document: AttestedDocument, document_id: str) -> dict[str, Any]:
    if isinstance(document, Release):
        name, digest = document.model_name, model_signing_digest(document)
    else:
        name, digest = document.TYPE, document_id
    return {"digest": {"sha256": digest}, "name": name}


def _statement(document: AttestedDocument, payload: bytes) -> bytes:
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "predicate": parse_canonical_json(payload, max_size=MAX_STATEMENT_SIZE),
            "predicateType": PREDICATE_TYPES[document.TYPE],
            "subject": [_subject(document, hashlib.sha256(payload).hexdigest())],
        }
    )


def _open_document(data: bytes, signer: PublicKeys) -> SignedDocument[Any]:
    """Open a commitment, release or verdict that ``signer`` signed."""
    envelope = Envelope.from_json(data, max_size=MAX_STATEMENT_SIZE)
    envelope.verify(signer)
    value = parse_canonical_json(envelope.payload, max_size=MAX_STATEMENT_SIZE)
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == Commitment.TYPE:
        return open_commitment(data, owner_key_id=signer.key_id)
    if kind == Release.TYPE:
        return open_release(data, signer)
    if kind == Verdict.TYPE:
        return open_verdict(data, signer)
    raise EncodingError(
        f"only commitments, releases and verdicts are exported as statements, not {kind!r}"
    )


def attest(document: bytes, keys: IdentityKeys) -> bytes:
    """The signed statement (canonical DSSE envelope bytes) of a commitment,
    release or verdict that ``keys`` signed.

    Raises:
        EncodingError: not a commitment, release or verdict, or malformed.
        SignatureError: ``keys`` did not sign the document (a commitment:
            ``keys`` are not its owner's).
    """
    signed = _open_document(document, keys.public_keys)
    statement = _statement(signed.document, signed.payload)
    return Envelope.sign(IN_TOTO_PAYLOAD_TYPE, statement, keys).to_json()


def _validate_in_toto(payload: bytes) -> None:
    """Check the statement against the in-toto-attestation v1 models."""
    require_provenance_extra("in_toto_attestation", "reading an in-toto statement")
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        message = json_format.Parse(payload, statement_pb2.Statement())
        Statement.copy_from_pb(message).validate()
    except (json_format.ParseError, ValueError) as error:
        raise EncodingError(f"not a valid in-toto Statement v1: {error}") from None


def _subject_of(statement: dict[str, Any]) -> dict[str, Any]:
    subjects = statement["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise EncodingError("a secmark statement names exactly one subject")
    subject = subjects[0]
    if (
        not isinstance(subject, dict)
        or set(subject) != {"digest", "name"}
        or not isinstance(subject["name"], str)
        or len(subject["name"]) > _MAX_SUBJECT_NAME
        or not isinstance(subject["digest"], dict)
        or set(subject["digest"]) != {"sha256"}
    ):
        raise EncodingError("a secmark statement's subject is exactly a name and a sha256 digest")
    return subject


def open_statement(data: bytes, signer: PublicKeys) -> Attestation:
    """Verify a statement that ``signer`` signed and read back its document.

    Raises:
        EncodingError: a malformed or oversized envelope, another payload
            type, a statement that is not canonical JSON or not a valid
            in-toto Statement v1, an unknown predicate type, a predicate
            that is not a valid document of its type, or a subject other
            than the one the document gives.
        SignatureError: ``signer`` did not sign the statement, or a
            commitment's statement is signed by another than its owner.
    """
    envelope = Envelope.from_json(data, max_size=MAX_STATEMENT_SIZE)
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise EncodingError(
            f"unexpected DSSE payload type {envelope.payload_type!r} "
            f"(expected {IN_TOTO_PAYLOAD_TYPE})"
        )
    envelope.verify(signer)
    statement = parse_canonical_json(
        envelope.payload, max_size=MAX_STATEMENT_SIZE, what="in-toto statement"
    )
    if not isinstance(statement, dict) or set(statement) != {
        "_type",
        "predicate",
        "predicateType",
        "subject",
    }:
        raise EncodingError(
            "a secmark statement is an object of exactly _type, predicate, predicateType, subject"
        )
    _validate_in_toto(envelope.payload)
    predicate_type = statement["predicateType"]
    kind = _DOCUMENT_TYPES.get(predicate_type)
    if kind is None:
        raise EncodingError(f"unknown predicate type {predicate_type!a}")
    subject = _subject_of(statement)
    # The statement is canonical, so its predicate is the document's payload.
    payload = canonical_json(statement["predicate"])
    document = decode_payload(payload, kind, MAX_STATEMENT_SIZE)
    if isinstance(document, Commitment) and document.owner_key_id != signer.key_id:
        raise SignatureError(
            f"the statement of a commitment of {document.owner_key_id} is signed by "
            f"{signer.key_id}, not by its owner"
        )
    document_id = hashlib.sha256(payload).hexdigest()
    if subject != _subject(document, document_id):
        raise EncodingError(
            "the statement's subject is not the one its predicate gives "
            f"(expected {_subject(document, document_id)})"
        )
    return Attestation(
        document=document,
        document_id=document_id,
        subject_name=subject["name"],
        subject_digest=subject["digest"]["sha256"],
        predicate_type=predicate_type,
        signer_key_id=signer.key_id,
    )
