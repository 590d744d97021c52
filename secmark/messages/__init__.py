"""Documents: DSSE envelopes over RFC 8785 canonical JSON, one class per message."""

from __future__ import annotations

from secmark.messages.document import (
    PAYLOAD_TYPE,
    Document,
    Fields,
    SignedDocument,
    open_document,
    sign_document,
)
from secmark.messages.dsse import MAX_ENVELOPE_SIZE, Envelope, EnvelopeSignature, pae
from secmark.messages.identity import Identity, create_identity, open_identity

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "PAYLOAD_TYPE",
    "Document",
    "Envelope",
    "EnvelopeSignature",
    "Fields",
    "Identity",
    "SignedDocument",
    "create_identity",
    "open_document",
    "open_identity",
    "pae",
    "sign_document",
]
