"""RFC 3161 timestamps: obtain, verify, and issue them.

- :func:`request_timestamp` asks a TSA over HTTP to date a message and
  returns the token (the DER of the whole TimeStampResp);
  :func:`request_timestamp_from` does the same with an in-process authority.
- :func:`verify_timestamp` checks a token against a :class:`TrustStore` and
  returns a :class:`VerifiedTimestamp` (a genTime in the future of the
  verifier's clock, beyond :data:`MAX_CLOCK_SKEW`, is refused);
  :func:`verify_timestamp_unanchored` checks only that a token is intact
  (signature, embedded chain), for a requester without a trust store.
- :func:`normalize_token` turns a token file another tool wrote (a
  TimeStampResp or a bare TimeStampToken) into the bytes secmark stores.
- :class:`TimestampAuthority` is a small TSA for parties that run their own;
  :class:`TimestampServer` serves it over HTTP.

``specs/timestamp.md`` states what is timestamped, the verification steps and
the built-in TSA's profile. Every failure is a
:class:`secmark.errors.TimestampError` (key files: ``KeyMaterialError``).
"""

from __future__ import annotations

from secmark.timestamp._tsp import (
    HASH_ALGORITHMS,
    MAX_TOKEN_SIZE,
    QUERY_MEDIA_TYPE,
    REPLY_MEDIA_TYPE,
    normalize_token,
)
from secmark.timestamp.authority import DEFAULT_POLICY_OID, TimestampAuthority
from secmark.timestamp.client import DEFAULT_TIMEOUT, request_timestamp, request_timestamp_from
from secmark.timestamp.server import TimestampServer
from secmark.timestamp.trust import TrustStore
from secmark.timestamp.verify import (
    MAX_CLOCK_SKEW,
    UnanchoredTimestamp,
    VerifiedTimestamp,
    verify_timestamp,
    verify_timestamp_unanchored,
)

__all__ = [
    "DEFAULT_POLICY_OID",
    "DEFAULT_TIMEOUT",
    "HASH_ALGORITHMS",
    "MAX_CLOCK_SKEW",
    "MAX_TOKEN_SIZE",
    "QUERY_MEDIA_TYPE",
    "REPLY_MEDIA_TYPE",
    "TimestampAuthority",
    "TimestampServer",
    "TrustStore",
    "UnanchoredTimestamp",
    "VerifiedTimestamp",
    "normalize_token",
    "request_timestamp",
    "request_timestamp_from",
    "verify_timestamp",
    "verify_timestamp_unanchored",
]
