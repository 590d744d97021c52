"""The commitment: what an owner fixes, signs and timestamps before release.

A commitment names the owner's keys (the VRF key among them), the trigger
family and its parameters, the label space, the committed set size N, the
Merkle root of the candidate pool when the family draws from one, a free-text
model label, a fresh 32-byte nonce and the owner's own clock. Its id is the
SHA-256 of its canonical payload; trigger ``i`` is derived from the VRF
output on that id and ``i``, so once the id exists the whole trigger set is
fixed, and nobody — the owner included — can choose triggers afterwards.

The ``created`` time is the owner's claim only. What counts in a dispute is
the time an RFC 3161 authority attests for the commitment id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.keys import SUITE, IdentityKeys, PublicKeys
from secmark.encoding import b64url_encode, format_time, utc_now
from secmark.errors import EncodingError, SignatureError
from secmark.messages.document import (
    Fields,
    SignedDocument,
    read_unverified_payload,
    sign_document,
)
from secmark.messages.families import (
    OverlayFamily,
    PoolFamily,
    TriggerFamily,
    WeightsFamily,
    family_from_fields,
)
from secmark.messages.identity import public_keys_from_fields
from secmark.messages.labels import (
    ClassLabels,
    LabelSpace,
    TokenLabels,
    label_space_from_fields,
)
from secmark.stats.binomial import MAX_TRIALS

__all__ = [
    "MAX_COMMITMENT_SIZE",
    "MAX_COMMITTED_TRIGGERS",
    "Commitment",
    "create_commitment",
    "open_commitment",
]

MAX_COMMITTED_TRIGGERS = 1 << 24
"""Bound on N. Indices are encoded in 4 bytes; a set larger than 16 million
triggers has no use and would only make verifiers' bookkeeping unbounded."""

MAX_COMMITMENT_SIZE = 64 * 1024
"""A commitment envelope is a few kilobytes; larger ones are refused unread."""

NONCE_SIZE = 32
_MAX_MODEL_LABEL = 1024

# secmark.messages.challenge.MAX_CHALLENGED, the most indices one challenge
# asks for (that module imports this one; a test checks the two agree).
_MAX_CHALLENGED = 16384


@dataclass(frozen=True)
class Commitment:
    """The signed commitment (``secmark.commitment`` version 1)."""

    TYPE: ClassVar[str] = "secmark.commitment"
    VERSION: ClassVar[int] = 1

    owner: PublicKeys = field(repr=False)
    family: TriggerFamily
    labels: LabelSpace
    size: int
    pool_root: str | None
    model_label: str
    nonce: bytes = field(repr=False)
    created: datetime

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_COMMITTED_TRIGGERS:
            raise EncodingError(
                f"the committed set size N must be in [1, {MAX_COMMITTED_TRIGGERS}]"
            )
        uses_pool = isinstance(self.family, (PoolFamily, OverlayFamily))
        if uses_pool and self.pool_root is None:
            raise EncodingError(f"the {self.family.NAME} family needs the pool's Merkle root")
        if not uses_pool and self.pool_root is not None:
            raise EncodingError(f"the {self.family.NAME} family draws from no pool: omit pool_root")
        # A weights row's label is one bit of the projection's sign; any other
        # label space would make the null match probability something else than 1/2.
        if isinstance(self.family, WeightsFamily) and self.labels != ClassLabels(2):
            raise EncodingError(
                "the weights family needs the label space ClassLabels(2): one bit per row"
            )
        # DoS: a challenge of k triggers with token labels of length L is one
        # exact test over k * L trials, and k <= min(N, MAX_CHALLENGED); so
        # no challenge of this commitment can exceed MAX_TRIALS.
        if isinstance(self.labels, TokenLabels):
            most = min(self.size, _MAX_CHALLENGED) * self.labels.length
            if most > MAX_TRIALS:
                raise EncodingError(
                    f"a challenge of min(N, {_MAX_CHALLENGED}) = "
                    f"{min(self.size, _MAX_CHALLENGED)} triggers with token labels of length "
                    f"{self.labels.length} would be a test over {most} trials, more than "
                    f"{MAX_TRIALS}; commit fewer triggers or shorter token labels "
                    f"(min(N, {_MAX_CHALLENGED}) * length <= {MAX_TRIALS})"
                )
        if len(self.nonce) != NONCE_SIZE:
            raise EncodingError(f"the commitment nonce must be {NONCE_SIZE} bytes")
        if len(self.model_label) > _MAX_MODEL_LABEL:
            raise EncodingError(f"the model label is longer than {_MAX_MODEL_LABEL} characters")

    @property
    def owner_key_id(self) -> str:
        return self.owner.key_id

    def to_fields(self) -> dict[str, Any]:
        return {
            "created": format_time(self.created),
            "family": self.family.to_fields(),
            "labels": self.labels.to_fields(),
            "model_label": self.model_label,
            "nonce": b64url_encode(self.nonce),
            "owner": {"key_id": self.owner.key_id, "keys": self.owner.canonical_fields()},
            "pool_root": self.pool_root,
            "size": self.size,
            "suite": SUITE,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Commitment:
        suite = fields.text("suite")
        if suite != SUITE:
            raise EncodingError(f"unsupported suite {suite!r} (this secmark implements {SUITE})")
        return cls(
            owner=fields.nested("owner", public_keys_from_fields),
            family=fields.nested("family", family_from_fields),
            labels=fields.nested("labels", label_space_from_fields),
            size=fields.integer("size", minimum=1, maximum=MAX_COMMITTED_TRIGGERS),
            pool_root=fields.optional_hex_digest("pool_root"),
            model_label=fields.text("model_label", max_length=_MAX_MODEL_LABEL),
            nonce=fields.raw_bytes("nonce", size=NONCE_SIZE),
            created=fields.time("created"),
        )


def create_commitment(
    keys: IdentityKeys,
    *,
    family: TriggerFamily,
    labels: LabelSpace,
    size: int,
    model_label: str,
    pool_root: str | None = None,
    nonce: bytes | None = None,
    created: datetime | None = None,
) -> SignedDocument[Commitment]:
    """Make and sign a commitment with a fresh random nonce.

    Raises:
        EncodingError: inconsistent parameters (N out of range, a pool family
            without a pool root or the reverse, a weights family whose label
            space is not ClassLabels(2), an over-long label).
    """
    commitment = Commitment(
        owner=keys.public_keys,
        family=family,
        labels=labels,
        size=size,
        pool_root=pool_root,
        model_label=model_label,
        nonce=os.urandom(NONCE_SIZE) if nonce is None else nonce,
        created=created or utc_now(),
    )
    return sign_document(commitment, keys)


def open_commitment(data: bytes, *, owner_key_id: str | None = None) -> SignedDocument[Commitment]:
    """Parse a commitment and verify it is signed by the owner it names.

    Pass ``owner_key_id`` to also require a particular owner; without it,
    the result proves only that the keys inside signed it.

    Raises:
        EncodingError: malformed or inconsistent commitment.
        KeyMaterialError: invalid owner keys.
        SignatureError: the owner's signature does not verify, or the owner
            is not ``owner_key_id``.
    """
    envelope, commitment = read_unverified_payload(data, Commitment, max_size=MAX_COMMITMENT_SIZE)
    envelope.verify(commitment.owner)
    if owner_key_id is not None and commitment.owner_key_id != owner_key_id:
        raise SignatureError(
            f"the commitment belongs to {commitment.owner_key_id}, not to {owner_key_id}"
        )
    return SignedDocument(commitment, envelope, commitment.owner_key_id)
