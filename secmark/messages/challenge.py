"""The challenge: which committed triggers the arbiter wants revealed.

The indices are not the arbiter's choice either: they come from the
arbiter's own VRF output on the commitment id and the canonical suspect
reference (``secmark.protocol.challenge`` derives and checks them), and the
proof is in the document, so anyone can check that neither party picked them
and that re-filing a claim cannot re-roll them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.crypto.keys import PublicKeys
from secmark.encoding import b64url_encode, format_time
from secmark.errors import EncodingError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS
from secmark.messages.document import Fields, SignedDocument, open_document

__all__ = ["MAX_CHALLENGED", "MAX_DECOYS", "Challenge", "open_challenge"]

MAX_CHALLENGED = 16384
"""Bound on k: far above any useful challenge (see ``secmark plan``)."""

MAX_DECOYS = 1 << 20
"""Bound on the decoys mixed in with the triggers."""

_MAX_CHALLENGE_SIZE = 512 * 1024


@dataclass(frozen=True)
class Challenge:
    """``secmark.challenge`` version 1, signed by the arbiter."""

    TYPE: ClassVar[str] = "secmark.challenge"
    VERSION: ClassVar[int] = 1

    claim_id: str
    commitment_id: str
    suspect: str
    indices: tuple[int, ...]
    vrf_proof: bytes = field(repr=False)
    decoys: int
    prior_challenges: int
    issued: datetime
    expires: datetime

    def __post_init__(self) -> None:
        if not 1 <= len(self.indices) <= MAX_CHALLENGED:
            raise EncodingError(f"a challenge asks for 1 to {MAX_CHALLENGED} indices")
        if list(self.indices) != sorted(set(self.indices)):
            raise EncodingError("challenged indices must be distinct and ascending")
        if not self.issued < self.expires:
            raise EncodingError("a challenge must expire after it is issued")

    def to_fields(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "commitment_id": self.commitment_id,
            "decoys": self.decoys,
            "expires": format_time(self.expires),
            "indices": list(self.indices),
            "issued": format_time(self.issued),
            "prior_challenges": self.prior_challenges,
            "suspect": self.suspect,
            "vrf_proof": b64url_encode(self.vrf_proof),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Challenge:
        return cls(
            claim_id=fields.hex_digest("claim_id"),
            commitment_id=fields.hex_digest("commitment_id"),
            suspect=fields.text("suspect", max_length=MAX_SUSPECT_REFERENCE),
            indices=tuple(
                fields.integer_list(
                    "indices",
                    minimum=0,
                    maximum=MAX_COMMITTED_TRIGGERS - 1,
                    max_items=MAX_CHALLENGED,
                )
            ),
            vrf_proof=fields.raw_bytes("vrf_proof", size=PROOF_SIZE),
            decoys=fields.integer("decoys", minimum=0, maximum=MAX_DECOYS),
            prior_challenges=fields.integer("prior_challenges", minimum=0, maximum=2**31),
            issued=fields.time("issued"),
            expires=fields.time("expires"),
        )


def open_challenge(data: bytes, arbiter: PublicKeys) -> SignedDocument[Challenge]:
    """Parse a challenge and verify ``arbiter`` signed it (not its indices:
    see ``secmark.protocol.challenge.check_challenge_indices``)."""
    return open_document(data, Challenge, arbiter, max_size=_MAX_CHALLENGE_SIZE)
