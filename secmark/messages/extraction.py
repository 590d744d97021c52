"""Extraction claims and their verdicts (``specs/serving.md`` 9).

An owner whose API marks answers under a serving policy claims that a
suspect was trained on the answers one client account received. The claim
carries the policy and its timestamp evidence, names the client account and
the log extract the operator gave (by digest; the extract travels beside
the claim), with the timestamp evidence of the extract's checkpoint, and
names the suspect and the arbiter. The arbiter tests the suspect on the
account's marked inputs and signs an extraction verdict; the transcript of
its queries is an ordinary :class:`~secmark.messages.transcript.Transcript`
whose ``challenge_id`` is the claim's id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.crypto.keys import IdentityKeys, PublicKeys
from secmark.encoding import b64url_encode, format_time, utc_now
from secmark.errors import EncodingError
from secmark.messages.claim import MAX_SUSPECT_REFERENCE
from secmark.messages.document import Fields, SignedDocument, open_document, sign_document
from secmark.messages.verdict import TestFigures

__all__ = [
    "LOG_WORDS",
    "MAX_EXTRACTION_CLAIM_SIZE",
    "ExtractionClaim",
    "ExtractionVerdict",
    "create_extraction_claim",
    "open_extraction_claim",
    "open_extraction_verdict",
]

MAX_EXTRACTION_CLAIM_SIZE = 1024 * 1024
"""A claim embeds a policy and up to two timestamp evidence files."""

_MAX_EXTRACTION_VERDICT_SIZE = 1024 * 1024
_NONCE_SIZE = 32
_MAX_COUNT = 1 << 40
_MAX_REASON = 4096

OPERATOR_WORD = "operator"
OWNER_WORD = "owner"
LOG_WORDS = (OPERATOR_WORD, OWNER_WORD)
"""On whose word a log rests: a log operator other than the owner, or the
owner, who holds the marking key and could have made entries up."""

UPHELD = "upheld"
REJECTED = "rejected"
_OUTCOMES = (UPHELD, REJECTED)


@dataclass(frozen=True)
class ExtractionClaim:
    """``secmark.extraction-claim`` version 1, signed by the policy's owner."""

    TYPE: ClassVar[str] = "secmark.extraction-claim"
    VERSION: ClassVar[int] = 1

    policy: bytes = field(repr=False)
    policy_evidence: bytes = field(repr=False)
    checkpoint_evidence: bytes = field(repr=False)
    extract_sha256: str
    client: str
    suspect: str
    arbiter: str
    nonce: bytes = field(repr=False)
    created: datetime

    def __post_init__(self) -> None:
        if not 0 < len(self.suspect) <= MAX_SUSPECT_REFERENCE:
            raise EncodingError(
                f"the suspect reference must have 1 to {MAX_SUSPECT_REFERENCE} characters"
            )
        if len(self.nonce) != _NONCE_SIZE:
            raise EncodingError(f"the claim nonce must be {_NONCE_SIZE} bytes")

    def to_fields(self) -> dict[str, Any]:
        return {
            "arbiter": self.arbiter,
            "checkpoint_evidence": b64url_encode(self.checkpoint_evidence),
            "client": self.client,
            "created": format_time(self.created),
            "extract_sha256": self.extract_sha256,
            "nonce": b64url_encode(self.nonce),
            "policy": b64url_encode(self.policy),
            "policy_evidence": b64url_encode(self.policy_evidence),
            "suspect": self.suspect,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ExtractionClaim:
        return cls(
            policy=fields.raw_bytes("policy"),
            policy_evidence=fields.raw_bytes("policy_evidence"),
            checkpoint_evidence=fields.raw_bytes("checkpoint_evidence"),
            extract_sha256=fields.hex_digest("extract_sha256"),
            client=fields.hex_digest("client"),
            suspect=fields.text("suspect", max_length=MAX_SUSPECT_REFERENCE),
            arbiter=fields.hex_digest("arbiter"),
            nonce=fields.raw_bytes("nonce", size=_NONCE_SIZE),
            created=fields.time("created"),
        )


def create_extraction_claim(
    keys: IdentityKeys,
    *,
    policy: bytes,
    policy_evidence: bytes,
    checkpoint_evidence: bytes,
    extract_sha256: str,
    client: str,
    suspect: str,
    arbiter: str,
    created: datetime | None = None,
) -> SignedDocument[ExtractionClaim]:
    """Sign an extraction claim with a fresh nonce; the arbiter checks what it embeds."""
    claim = ExtractionClaim(
        policy,
        policy_evidence,
        checkpoint_evidence,
        extract_sha256,
        client,
        suspect,
        arbiter,
        os.urandom(_NONCE_SIZE),
        created or utc_now(),
    )
    return sign_document(claim, keys)


def open_extraction_claim(data: bytes, owner: PublicKeys) -> SignedDocument[ExtractionClaim]:
    """Parse an extraction claim and verify ``owner`` signed it.

    Raises:
        EncodingError, SignatureError: as :func:`open_document`.
    """
    return open_document(data, ExtractionClaim, owner, max_size=MAX_EXTRACTION_CLAIM_SIZE)


@dataclass(frozen=True)
class ExtractionVerdict:
    """``secmark.extraction-verdict`` version 1, signed by the arbiter.

    ``marked_entries`` counts the account's marked entries with distinct
    inputs up to the checkpoint; ``tested`` of them were sent to the suspect
    (all of them unless the arbiter's bound on a test is smaller; then the
    ones ``sample_proof`` selects). ``accounts`` is the number of client
    accounts in the log: the test ran at ``figures.alpha`` = alpha /
    accounts. ``log_word`` says whose word the log is.
    """

    TYPE: ClassVar[str] = "secmark.extraction-verdict"
    VERSION: ClassVar[int] = 1

    claim_id: str
    policy_id: str
    checkpoint_id: str
    checkpoint_size: int
    transcript_id: str
    client: str
    suspect: str
    policy_time: datetime
    checkpoint_time: datetime
    log_word: str
    accounts: int
    marked_entries: int
    tested: int
    sample_proof: bytes = field(repr=False)
    figures: TestFigures
    outcome: str
    reason: str
    decided: datetime

    def __post_init__(self) -> None:
        if self.log_word not in LOG_WORDS:
            raise EncodingError(f"log_word must be one of {', '.join(LOG_WORDS)}")
        if self.outcome not in _OUTCOMES:
            raise EncodingError(f"an extraction verdict is {' or '.join(_OUTCOMES)}")
        if not 0 < self.tested <= self.marked_entries:
            raise EncodingError("a verdict tests at least one and at most every marked entry")
        if self.figures.trials != self.tested:
            raise EncodingError("the test's trials must be the tested entries")
        if len(self.sample_proof) != PROOF_SIZE:
            raise EncodingError(f"the sample proof must be {PROOF_SIZE} bytes")
        if len(self.reason) > _MAX_REASON:
            raise EncodingError(f"the reason is longer than {_MAX_REASON} characters")

    def to_fields(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "checkpoint_id": self.checkpoint_id,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_time": format_time(self.checkpoint_time),
            "claim_id": self.claim_id,
            "client": self.client,
            "decided": format_time(self.decided),
            "figures": self.figures.to_fields(),
            "log_word": self.log_word,
            "marked_entries": self.marked_entries,
            "outcome": self.outcome,
            "policy_id": self.policy_id,
            "policy_time": format_time(self.policy_time),
            "reason": self.reason,
            "sample_proof": b64url_encode(self.sample_proof),
            "suspect": self.suspect,
            "tested": self.tested,
            "transcript_id": self.transcript_id,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ExtractionVerdict:
        count = {"minimum": 0, "maximum": _MAX_COUNT}
        return cls(
            claim_id=fields.hex_digest("claim_id"),
            policy_id=fields.hex_digest("policy_id"),
            checkpoint_id=fields.hex_digest("checkpoint_id"),
            checkpoint_size=fields.integer("checkpoint_size", **count),
            transcript_id=fields.hex_digest("transcript_id"),
            client=fields.hex_digest("client"),
            suspect=fields.text("suspect", max_length=MAX_SUSPECT_REFERENCE),
            policy_time=fields.time("policy_time"),
            checkpoint_time=fields.time("checkpoint_time"),
            log_word=fields.text("log_word", max_length=16),
            accounts=fields.integer("accounts", minimum=1, maximum=_MAX_COUNT),
            marked_entries=fields.integer("marked_entries", **count),
            tested=fields.integer("tested", **count),
            sample_proof=fields.raw_bytes("sample_proof", size=PROOF_SIZE),
            figures=fields.nested("figures", TestFigures.from_fields),
            outcome=fields.text("outcome", max_length=16),
            reason=fields.text("reason", max_length=_MAX_REASON),
            decided=fields.time("decided"),
        )


def open_extraction_verdict(data: bytes, arbiter: PublicKeys) -> SignedDocument[ExtractionVerdict]:
    """Parse an extraction verdict and verify ``arbiter`` signed it.

    Raises:
        EncodingError, SignatureError: as :func:`open_document`.
    """
    return open_document(data, ExtractionVerdict, arbiter, max_size=_MAX_EXTRACTION_VERDICT_SIZE)
