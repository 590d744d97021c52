"""Provenance: secmark releases beside OpenSSF model-signing signatures, and
secmark documents as in-toto Statements (specs/provenance.md).

Hashing a folder and checking a model-signing signature need the
``provenance`` extra (model-signing); statements need in-toto-attestation.
"""

from __future__ import annotations

from secmark.provenance.model_digest import model_folder_digest, model_signing_digest
from secmark.provenance.model_signature import verify_model_signature
from secmark.provenance.statement import (
    IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPES,
    Attestation,
    attest,
    open_statement,
)

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "PREDICATE_TYPES",
    "Attestation",
    "attest",
    "model_folder_digest",
    "model_signing_digest",
    "open_statement",
    "verify_model_signature",
]
