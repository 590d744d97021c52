"""Timestamp evidence: the RFC 3161 tokens that date one document.

Evidence is a canonical JSON object (``secmark.timestamp-evidence`` version
1) holding the id of the document it dates (its *subject*, a SHA-256 digest
id such as a commitment id) and one or more tokens, each from a TSA. The
message every token dates is the subject's 32 raw bytes. Tokens authenticate
themselves, so the evidence is not signed.

Verification checks every token against the verifier's own trust store and
clock and reports each one: the document's trusted time is the earliest
genTime among tokens that verify, and a token that does not verify (a token
dated in the future of the verifier's clock among them) is listed with the
reason, never dropped in silence, and never hides one that verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import httpx

from secmark.encoding import b64url_encode, format_time
from secmark.errors import EncodingError, TimestampError
from secmark.messages.document import Fields, decode_payload, encode_payload
from secmark.timestamp._tsp import MAX_TOKEN_SIZE
from secmark.timestamp.client import DEFAULT_TIMEOUT, request_timestamp, request_timestamp_from
from secmark.timestamp.trust import TrustStore
from secmark.timestamp.verify import VerifiedTimestamp, _verifier_time, verify_timestamp

__all__ = [
    "MAX_EVIDENCE_TOKENS",
    "EvidenceCheck",
    "EvidenceToken",
    "TimestampEvidence",
    "TokenCheck",
    "collect_evidence",
]

MAX_EVIDENCE_TOKENS = 8
"""A few independent TSAs are prudent; dozens only cost verifiers time (denial of service)."""

_MAX_EVIDENCE_SIZE = MAX_EVIDENCE_TOKENS * (MAX_TOKEN_SIZE * 4 // 3 + 1024)
_MAX_SOURCE_LENGTH = 512


@dataclass(frozen=True)
class EvidenceToken:
    """One token and where it came from (a URL or a name: information only)."""

    source: str
    token: bytes


@dataclass(frozen=True)
class TokenCheck:
    """The outcome for one token: ``verified`` or ``error``, never both."""

    source: str
    verified: VerifiedTimestamp | None
    error: str | None


@dataclass(frozen=True)
class EvidenceCheck:
    """Every token's outcome, and the earliest verified time if any."""

    subject: str
    tokens: tuple[TokenCheck, ...]

    @property
    def trusted_time(self) -> datetime | None:
        times = [check.verified.gen_time for check in self.tokens if check.verified]
        return min(times) if times else None

    def require_trusted_time(self) -> datetime:
        """The trusted time, or an error that lists why each token failed.

        Raises:
            TimestampError: no token verified.
        """
        trusted = self.trusted_time
        if trusted is None:
            reasons = "; ".join(f"{check.source}: {check.error}" for check in self.tokens)
            raise TimestampError(f"no timestamp of {self.subject} verifies ({reasons})")
        return trusted


def _token_from_fields(fields: Fields) -> EvidenceToken:
    source = fields.text("source", max_length=_MAX_SOURCE_LENGTH)
    token = fields.raw_bytes("token")
    if len(token) > MAX_TOKEN_SIZE:
        raise EncodingError(f"a timestamp token exceeds {MAX_TOKEN_SIZE} bytes")
    return EvidenceToken(source, token)


@dataclass(frozen=True)
class TimestampEvidence:
    """The tokens dating the document whose id is ``subject``."""

    TYPE: ClassVar[str] = "secmark.timestamp-evidence"
    VERSION: ClassVar[int] = 1

    subject: str
    tokens: tuple[EvidenceToken, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.tokens) <= MAX_EVIDENCE_TOKENS:
            raise EncodingError(f"evidence must hold 1 to {MAX_EVIDENCE_TOKENS} tokens")

    @property
    def message(self) -> bytes:
        """The bytes every token dates: the subject digest itself."""
        return bytes.fromhex(self.subject)

    def to_fields(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "tokens": [{"source": t.source, "token": b64url_encode(t.token)} for t in self.tokens],
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> TimestampEvidence:
        subject = fields.hex_digest("subject")
        tokens = fields.objects(
            "tokens", _token_from_fields, min_items=1, max_items=MAX_EVIDENCE_TOKENS
        )
        return cls(subject, tuple(tokens))

    def to_json(self) -> bytes:
        return encode_payload(self)

    @classmethod
    def from_json(cls, data: bytes) -> TimestampEvidence:
        """Parse evidence without verifying its tokens.

        Raises:
            EncodingError: not canonical JSON, wrong type or version, missing
                or extra fields, too many or oversized tokens.
        """
        return decode_payload(data, cls, _MAX_EVIDENCE_SIZE)

    def check(self, trust_store: TrustStore, *, now: datetime | None = None) -> EvidenceCheck:
        """Verify every token against ``trust_store``; see :class:`EvidenceCheck`.

        ``now`` is the verifier's clock (tz-aware; default: the real UTC
        clock, read once for all tokens): a token whose genTime is later than
        it by more than :data:`~secmark.timestamp.verify.MAX_CLOCK_SKEW` is
        refused, alone, like any token that does not verify.

        Raises:
            TimestampError: ``now`` is naive (a token that fails is reported
                in the result, not raised).
        """
        now = _verifier_time(now)
        results = []
        for entry in self.tokens:
            try:
                verified = verify_timestamp(entry.token, self.message, trust_store, now=now)
            except TimestampError as error:
                results.append(TokenCheck(entry.source, None, str(error)))
            else:
                results.append(TokenCheck(entry.source, verified, None))
        return EvidenceCheck(self.subject, tuple(results))

    def describe(self, check: EvidenceCheck) -> list[str]:
        """Readable lines, one per token, for reports."""
        lines = []
        for result in check.tokens:
            if result.verified is not None:
                lines.append(
                    f"{format_time(result.verified.gen_time)}  verified  {result.source} "
                    f"({result.verified.tsa_subject})"
                )
            else:
                lines.append(f"{'-' * 20}  REFUSED   {result.source}: {result.error}")
        return lines


def collect_evidence(
    subject: str,
    sources: Sequence[str | Callable[[bytes], bytes]],
    *,
    hash_algorithm: str = "sha256",
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> TimestampEvidence:
    """Ask every source to timestamp ``subject``: all must succeed.

    A source is a TSA URL or an in-process authority's ``respond`` function.
    Nothing is returned unless every request succeeded, so a caller never
    stores evidence that is silently missing a TSA it asked for.

    Raises:
        TimestampError: a TSA failed (the message names it and why).
        EncodingError: no source, too many, or ``subject`` not a digest id.
    """
    if not 1 <= len(sources) <= MAX_EVIDENCE_TOKENS:
        raise EncodingError(f"ask 1 to {MAX_EVIDENCE_TOKENS} timestamp authorities")
    message = bytes.fromhex(Fields({"subject": subject}, context="evidence").hex_digest("subject"))
    tokens = []
    for source in sources:
        if isinstance(source, str):
            token = request_timestamp(
                source, message, hash_algorithm=hash_algorithm, timeout=timeout, client=client
            )
            tokens.append(EvidenceToken(source, token))
        else:
            token = request_timestamp_from(source, message, hash_algorithm=hash_algorithm)
            tokens.append(EvidenceToken("in-process authority", token))
    return TimestampEvidence(subject, tuple(tokens))
