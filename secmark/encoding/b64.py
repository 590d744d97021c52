"""Strict base64: one encoding per byte string, anything else refused.

Byte fields inside secmark documents are unpadded base64url (RFC 4648 section
5). DSSE envelopes carry standard padded base64 (RFC 4648 section 4), as the
DSSE specification's reference tooling writes it. Decoding accepts only the
exact string the encoder would produce, so a document has one byte
representation and any edit to it is visible.
"""

from __future__ import annotations

import base64
import binascii
import re

from secmark.errors import EncodingError

__all__ = ["b64_decode", "b64_decode_ascii", "b64_encode", "b64url_decode", "b64url_encode"]

_URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_STD_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STD_ALPHABET_BYTES = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, *, what: str = "value", size: int | None = None) -> bytes:
    """Decode unpadded base64url, refusing any non-canonical spelling.

    Raises:
        EncodingError: ``text`` is not a string, uses characters outside the
            alphabet, is padded, has non-zero trailing bits, or does not decode
            to ``size`` bytes when ``size`` is given.
    """
    if not isinstance(text, str) or not _URL_ALPHABET.fullmatch(text):
        raise EncodingError(f"{what} must be unpadded base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what} is not valid base64url") from None
    if b64url_encode(data) != text:
        raise EncodingError(f"{what} is not canonical base64url (stray trailing bits)")
    if size is not None and len(data) != size:
        raise EncodingError(f"{what} must encode exactly {size} bytes, not {len(data)}")
    return data


def b64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64_decode(text: str, *, what: str = "value") -> bytes:
    """Decode standard padded base64, refusing any non-canonical spelling.

    Raises:
        EncodingError: as :func:`b64url_decode`, for the standard alphabet with
            mandatory padding.
    """
    if not isinstance(text, str) or not _STD_ALPHABET.fullmatch(text) or len(text) % 4:
        raise EncodingError(f"{what} must be padded standard base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what} is not valid base64") from None
    if b64_encode(data) != text:
        raise EncodingError(f"{what} is not canonical base64 (stray trailing bits)")
    return data


def b64_decode_ascii(data: bytes | memoryview, *, what: str = "value") -> bytes:
    """:func:`b64_decode` for base64 given as ASCII bytes (a slice of a larger
    buffer), without making a text or re-encoded copy of it.

    Every group of four characters but the last decodes to three bytes and
    back to itself; only the last (padded) group can carry stray bits, so
    only it is re-encoded to check the spelling is canonical.

    Raises:
        EncodingError: as :func:`b64_decode`.
    """
    if len(data) % 4 or not _STD_ALPHABET_BYTES.fullmatch(data):
        raise EncodingError(f"{what} must be padded standard base64 text")
    try:
        decoded = binascii.a2b_base64(data)
        last = bytes(data[-4:])
        canonical = (
            not last or binascii.b2a_base64(binascii.a2b_base64(last), newline=False) == last
        )
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what} is not valid base64") from None
    if not canonical:
        raise EncodingError(f"{what} is not canonical base64 (stray trailing bits)")
    return decoded
