"""Canonical encodings: RFC 8785 JSON, strict base64, RFC 3339 UTC times, hex digests."""

from __future__ import annotations

from secmark.encoding.b64 import (
    b64_decode,
    b64_decode_ascii,
    b64_encode,
    b64url_decode,
    b64url_encode,
)
from secmark.encoding.hexdigest import is_hex_digest
from secmark.encoding.jcs import canonical_json, parse_canonical_json
from secmark.encoding.times import format_time, parse_time, utc_now

__all__ = [
    "b64_decode",
    "b64_decode_ascii",
    "b64_encode",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "format_time",
    "is_hex_digest",
    "parse_canonical_json",
    "parse_time",
    "utc_now",
]
