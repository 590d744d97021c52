"""The claim: an owner asks an arbiter to check a suspect for a watermark.

A claim carries the commitment and its timestamp evidence (and, when the
owner registered one, the release and its evidence) as their exact bytes, so
the claim alone holds everything the arbiter checks before challenging. It
names the suspect by its canonical reference and the arbiter by key id, and
carries a fresh nonce: a claim cannot be replayed to another arbiter, and
re-filing it yields a new claim id but, by construction, the same challenge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import b64url_encode, format_time, utc_now
from secmark.errors import EncodingError
from secmark.messages.document import Fields, SignedDocument, open_document, sign_document
from secmark.messages.families import TriggerFamily, WeightsFamily

__all__ = [
    "EVIDENCE_KINDS",
    "MAX_CLAIM_SIZE",
    "Claim",
    "create_claim",
    "evidence_kinds_for",
    "open_claim",
]

EVIDENCE_KINDS = ("black-box", "white-box")
"""What a claim may offer: trigger-set queries to the suspect (black-box),
or projections of the suspect's weights (white-box, the weights family)."""

MAX_CLAIM_SIZE = 1024 * 1024
"""A claim embeds two small documents and up to 16 timestamp tokens."""

MAX_SUSPECT_REFERENCE = 1024
_NONCE_SIZE = 32


@dataclass(frozen=True)
class Claim:
    """``secmark.claim`` version 1."""

    TYPE: ClassVar[str] = "secmark.claim"
    VERSION: ClassVar[int] = 1

    commitment: bytes = field(repr=False)
    commitment_evidence: bytes = field(repr=False)
    release: bytes | None = field(repr=False)
    release_evidence: bytes | None = field(repr=False)
    suspect: str
    arbiter: str
    evidence_kinds: tuple[str, ...]
    nonce: bytes = field(repr=False)
    created: datetime

    def __post_init__(self) -> None:
        if not 0 < len(self.suspect) <= MAX_SUSPECT_REFERENCE:
            raise EncodingError(
                f"the suspect reference must have 1 to {MAX_SUSPECT_REFERENCE} characters"
            )
        if (self.release is None) != (self.release_evidence is None):
            raise EncodingError("a release comes with its timestamp evidence, or neither is given")
        if not self.evidence_kinds or any(
            kind not in EVIDENCE_KINDS for kind in self.evidence_kinds
        ):
            raise EncodingError(f"evidence kinds must be a non-empty subset of {EVIDENCE_KINDS}")
        if len(set(self.evidence_kinds)) != len(self.evidence_kinds):
            raise EncodingError("evidence kinds must be distinct")

    def to_fields(self) -> dict[str, Any]:
        def optional(value: bytes | None) -> str | None:
            return None if value is None else b64url_encode(value)

        return {
            "arbiter": self.arbiter,
            "commitment": b64url_encode(self.commitment),
            "commitment_evidence": b64url_encode(self.commitment_evidence),
            "created": format_time(self.created),
            "evidence_kinds": list(self.evidence_kinds),
            "nonce": b64url_encode(self.nonce),
            "release": optional(self.release),
            "release_evidence": optional(self.release_evidence),
            "suspect": self.suspect,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Claim:
        def optional(name: str) -> bytes | None:
            return None if fields.is_null(name) else fields.raw_bytes(name)

        return cls(
            commitment=fields.raw_bytes("commitment"),
            commitment_evidence=fields.raw_bytes("commitment_evidence"),
            release=optional("release"),
            release_evidence=optional("release_evidence"),
            suspect=fields.text("suspect", max_length=MAX_SUSPECT_REFERENCE),
            arbiter=fields.hex_digest("arbiter"),
            evidence_kinds=tuple(fields.text_list("evidence_kinds", max_items=len(EVIDENCE_KINDS))),
            nonce=fields.raw_bytes("nonce", size=_NONCE_SIZE),
            created=fields.time("created"),
        )


def evidence_kinds_for(family: TriggerFamily) -> tuple[str, ...]:
    """The evidence kinds a claim on a commitment to ``family`` must state.

    A weights commitment is checked on the suspect's weights only
    (``("white-box",)``), every other family by querying it
    (``("black-box",)``): one commitment gives one kind of evidence, so an
    owner holding both files one claim per commitment and gets one verdict
    for each.
    """
    return ("white-box",) if isinstance(family, WeightsFamily) else ("black-box",)


def create_claim(
    keys: IdentityKeys,
    *,
    commitment: bytes,
    commitment_evidence: bytes,
    suspect: str,
    arbiter: str,
    release: bytes | None = None,
    release_evidence: bytes | None = None,
    evidence_kinds: tuple[str, ...] = ("black-box",),
    created: datetime | None = None,
) -> SignedDocument[Claim]:
    """Sign a claim with a fresh nonce. The embedded documents are checked by
    the arbiter, not here."""
    claim = Claim(
        commitment,
        commitment_evidence,
        release,
        release_evidence,
        suspect,
        arbiter,
        evidence_kinds,
        os.urandom(_NONCE_SIZE),
        created or utc_now(),
    )
    return sign_document(claim, keys)


def open_claim(data: bytes, owner: PublicKeys) -> SignedDocument[Claim]:
    """Parse a claim and verify ``owner`` signed it."""
    return open_document(data, Claim, owner, max_size=MAX_CLAIM_SIZE)
