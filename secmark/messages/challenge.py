"""The challenge: which committed triggers the arbiter wants revealed.

The indices are not the arbiter's choice either: they come from the
arbiter's own VRF output on the commitment id and the canonical suspect
reference (``secmark.protocol.challenge`` derives and checks them), and the
proof is in the document, so anyone can check that neither party picked them
and that re-filing a claim cannot re-roll them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.crypto.keys import PublicKeys
from secmark.encoding import b64url_encode, format_time
from secmark.errors import EncodingError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS
from secmark.messages.document import Fields, SignedDocument, open_document

__all__ = [
    "MAX_ALPHA",
    "MAX_CHALLENGED",
    "MAX_DECOYS",
    "MAX_EXCLUDED",
    "Challenge",
    "alpha_budget",
    "open_challenge",
    "parse_alpha",
]

MAX_CHALLENGED = 16384
"""Bound on k: far above any useful challenge (see ``secmark plan``)."""

MAX_DECOYS = 1 << 20
"""Bound on the decoys mixed in with the triggers."""

MAX_ALPHA = Fraction(1, 1 << 20)
"""The largest significance level a first challenge of a commitment may use.

A verdict is evidence only if an innocent suspect is upheld with negligible
probability; one in a million is the weakest level the protocol accepts (the
default is 2^-64). The j-th challenge of a commitment at one arbiter may use
at most ``MAX_ALPHA / 2^j`` (:func:`alpha_budget`), so all challenges of a
commitment at one arbiter together spend less than ``2 * MAX_ALPHA``."""

MAX_EXCLUDED = 1 << 20
"""Bound on the indices a challenge excludes because earlier challenges of the
same commitment revealed them: far beyond any budget of re-challenges."""

_ALPHA_SPELLING = re.compile(r"[1-9][0-9]{0,127}/[1-9][0-9]{0,127}")

# Excluded indices dominate a large challenge: 2^20 indices of up to 8 digits.
_MAX_CHALLENGE_SIZE = 16 * 1024 * 1024


def _ascending(values: tuple[int, ...]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def alpha_budget(alpha: Fraction, prior_challenges: int) -> Fraction:
    """The level of the challenge that follows ``prior_challenges`` earlier
    ones of the same commitment: ``alpha / 2^prior_challenges``."""
    return alpha / (1 << prior_challenges)


def parse_alpha(text: str) -> Fraction:
    """A significance level written as ``str(Fraction)`` ("n/d").

    Raises:
        EncodingError: not a fraction in (0, MAX_ALPHA] in that spelling.
    """
    # Digits only, checked before Fraction ever sees the text: Fraction
    # would expand an exponent such as "1e-99999999" digit by digit.
    value = Fraction(text) if _ALPHA_SPELLING.fullmatch(text) else None
    if value is None or str(value) != text or not 0 < value <= MAX_ALPHA:
        raise EncodingError(
            "a significance level must be a fraction n/d in (0, 2^-20], in lowest terms, "
            f"n and d of at most 128 digits each (so not below about 2^-425), not {text[:64]!r}"
        )
    return value


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
    alpha: Fraction
    excluded: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.indices) <= MAX_CHALLENGED:
            raise EncodingError(f"a challenge asks for 1 to {MAX_CHALLENGED} indices")
        # Checked pairwise, without sorted copies or sets of a million
        # excluded indices (memory: a few objects, not tens of bytes per index).
        if not _ascending(self.indices):
            raise EncodingError("challenged indices must be distinct and ascending")
        if not _ascending(self.excluded):
            raise EncodingError("excluded indices must be distinct and ascending")
        asked = set(self.indices)
        if any(index in asked for index in self.excluded):
            raise EncodingError("a challenge cannot ask for an index it excludes")
        if not self.issued < self.expires:
            raise EncodingError("a challenge must expire after it is issued")
        if not 0 <= self.prior_challenges <= 64:
            raise EncodingError("a challenge follows at most 64 earlier ones of its commitment")
        if not 0 < self.alpha <= alpha_budget(MAX_ALPHA, self.prior_challenges):
            raise EncodingError(
                f"challenge {self.prior_challenges + 1} of a commitment may test at a level "
                f"of at most 2^-{20 + self.prior_challenges}, not {self.alpha}"
            )

    def to_fields(self) -> dict[str, Any]:
        return {
            "alpha": str(self.alpha),
            "claim_id": self.claim_id,
            "commitment_id": self.commitment_id,
            "decoys": self.decoys,
            "excluded": list(self.excluded),
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
            indices=_indices(fields, "indices", MAX_CHALLENGED),
            vrf_proof=fields.raw_bytes("vrf_proof", size=PROOF_SIZE),
            decoys=fields.integer("decoys", minimum=0, maximum=MAX_DECOYS),
            prior_challenges=fields.integer("prior_challenges", minimum=0, maximum=64),
            issued=fields.time("issued"),
            expires=fields.time("expires"),
            alpha=parse_alpha(fields.text("alpha", max_length=256)),
            excluded=_indices(fields, "excluded", MAX_EXCLUDED),
        )


def _indices(fields: Fields, name: str, max_items: int) -> tuple[int, ...]:
    """A list of trigger indices of a commitment (each below its largest N)."""
    return tuple(
        fields.integer_list(
            name, minimum=0, maximum=MAX_COMMITTED_TRIGGERS - 1, max_items=max_items
        )
    )


def open_challenge(data: bytes, arbiter: PublicKeys) -> SignedDocument[Challenge]:
    """Parse a challenge and verify ``arbiter`` signed it (not its indices:
    see ``secmark.protocol.challenge.check_challenge_indices``)."""
    return open_document(data, Challenge, arbiter, max_size=_MAX_CHALLENGE_SIZE)
