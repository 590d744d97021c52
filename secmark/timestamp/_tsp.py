"""Pieces of RFC 3161 shared by the client, the verifier and the authority.

Private to :mod:`secmark.timestamp`: the public names are re-exported by the
package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from asn1crypto import cms, core, parser, tsp
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import DuplicateExtension, InvalidVersion, UnsupportedGeneralNameType
from rfc3161_client import decode_timestamp_response

from secmark.errors import TimestampError

__all__ = [
    "HASH_ALGORITHMS",
    "MALFORMED_INPUT_ERRORS",
    "MAX_TOKEN_SIZE",
    "QUERY_MEDIA_TYPE",
    "REPLY_MEDIA_TYPE",
    "TimeStampResp",
    "describe_status",
    "imprint",
    "load_response",
    "normalize_token",
    "token_as_response",
]

QUERY_MEDIA_TYPE: Final = "application/timestamp-query"
"""Content type of a DER TimeStampReq sent over HTTP (RFC 3161 section 3.4)."""

REPLY_MEDIA_TYPE: Final = "application/timestamp-reply"
"""Content type of a DER TimeStampResp sent over HTTP (RFC 3161 section 3.4)."""

HASH_ALGORITHMS: Final[dict[str, Callable[..., hashlib._Hash]]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
"""Imprint algorithms secmark asks for, issues and accepts, by asn1crypto name.

SHA-1 is broken and SHA-384 buys nothing over these two; keeping the set small
keeps the interoperability surface small.
"""

MAX_TOKEN_SIZE: Final = 64 * 1024
"""Largest TimeStampResp, in bytes, that is read from a TSA or verified.

A token with a chain of three RSA-4096 certificates is under 8 KiB; the bound
stops a hostile TSA or bundle from making the parser allocate without limit.
"""

MALFORMED_INPUT_ERRORS: Final[tuple[type[Exception], ...]] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    UnsupportedAlgorithm,
    InvalidVersion,
    DuplicateExtension,
    UnsupportedGeneralNameType,
)
"""What asn1crypto, cryptography and rfc3161-client raise on hostile bytes.

asn1crypto parses lazily and raises ``AttributeError`` or ``IndexError`` for
some unknown tags; cryptography raises ``InvalidVersion`` for a certificate
version it does not know and ``UnsupportedAlgorithm`` for an unknown curve or
key type, ``DuplicateExtension`` for a certificate that repeats an
extension. The client, the verifier and the authority turn each of them into
a :class:`~secmark.errors.TimestampError` (or a rejection), never let it
escape. Measured by flipping every bit of tokens and requests
(``tests/timestamp/test_timestamp_hostile.py``).
"""

# The SET OFs of a SignedData that no signature covers (RFC 5652 section 5.1):
# their order carries no meaning, so re-encoding them in DER order changes no
# signed byte.
_UNSIGNED_SETS: Final = ("digest_algorithms", "certificates", "crls")

_STATUS_NAMES: Final = {
    "granted": "granted",
    "granted_with_mods": "grantedWithMods",
    "rejection": "rejection",
    "waiting": "waiting",
    "revocation_warning": "revocationWarning",
    "revocation_notification": "revocationNotification",
}

_FAILURE_NAMES: Final = {
    "bad_alg": "badAlg",
    "bad_request": "badRequest",
    "bad_data_format": "badDataFormat",
    "time_not_available": "timeNotAvailable",
    "unaccepted_policy": "unacceptedPolicy",
    "unaccepted_extensions": "unacceptedExtensions",
    "add_info_not_available": "addInfoNotAvailable",
    "system_failure": "systemFailure",
}


class TimeStampResp(tsp.TimeStampResp):
    """TimeStampResp as RFC 3161 section 2.4.2 defines it.

    asn1crypto 1.5.1 declares ``timeStampToken`` mandatory, so it can neither
    build nor parse a rejection, which carries none.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declaration format)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def imprint(message: bytes, hash_algorithm: str) -> bytes:
    """The hashedMessage of an imprint over ``message``.

    Raises:
        TimestampError: ``hash_algorithm`` is not one of :data:`HASH_ALGORITHMS`.
    """
    try:
        hash_function = HASH_ALGORITHMS[hash_algorithm]
    except KeyError:
        raise TimestampError(
            f"unsupported imprint hash algorithm {hash_algorithm!r}; "
            f"use one of {', '.join(HASH_ALGORITHMS)}"
        ) from None
    return hash_function(message).digest()


def load_response(response_der: bytes, *, what: str) -> tuple[bytes, TimeStampResp]:
    """Parse a TimeStampResp; return its DER (unsigned SETs in DER order) and the parse.

    OpenSSL-based TSAs (FreeTSA among them) write the SignedData's
    certificate SET in the order of their configuration, not in the sorted
    order DER requires, and rfc3161-client (strict DER), which verification
    ends with, refuses such a token. The SETs of :data:`_UNSIGNED_SETS` are
    covered by no signature, so they are re-encoded here in DER order (with
    asn1crypto; every other byte is kept as received) and the returned bytes
    are what is stored and verified. Both parsers must then accept the bytes:
    asn1crypto, which the checks walk (lazily: a later access may still raise
    one of :data:`MALFORMED_INPUT_ERRORS`), and rfc3161-client. ``what``
    names the bytes in error messages ("the TSA's answer", "the token").

    Raises:
        TimestampError: the bytes are oversized or not a TimeStampResp.
    """
    if len(response_der) > MAX_TOKEN_SIZE:
        raise TimestampError(
            f"{what} is {len(response_der)} bytes, more than the {MAX_TOKEN_SIZE} allowed"
        )
    try:
        try:
            decode_timestamp_response(response_der)
            canonical = response_der
        except ValueError:
            # Strict DER refused it: perhaps only for unsorted SETs (re-encoded,
            # then parsed again), else for a reason the second parse gives.
            canonical = _sort_unsigned_sets(TimeStampResp.load(response_der), response_der)
            decode_timestamp_response(canonical)
        response = TimeStampResp.load(canonical, strict=True)
    except MALFORMED_INPUT_ERRORS as error:
        raise TimestampError(f"{what} is not a DER TimeStampResp: {error}") from None
    return canonical, response


def _sort_unsigned_sets(response: TimeStampResp, response_der: bytes) -> bytes:
    """``response_der``, with the unsigned SETs of its SignedData in DER order.

    Done on the encoding with asn1crypto's parser and emitter, not by
    re-encoding the parsed value: asn1crypto re-encodes every value whose
    length byte happens to end in 0x80 (taking it for an indefinite length),
    which could change signed bytes (and costs milliseconds each). Here every
    element keeps its bytes; only the SETs' order and the enclosing lengths
    change.
    """
    token = response["time_stamp_token"]
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        return response_der
    status, content_info = _elements(response_der)
    content_type, explicit = _elements(content_info)
    (signed_data,) = _elements(explicit)
    fields = _elements(signed_data)
    changed = False
    for index, encoded in enumerate(fields):
        class_, method, tag, _, _, _ = parser.parse(encoded)
        # digestAlgorithms is the second field; certificates [0] and crls [1].
        if method != _CONSTRUCTED or not (index == 1 or (class_ == _CONTEXT and tag in (0, 1))):
            continue
        members = _elements(encoded)
        if members != sorted(members):
            fields[index] = parser.emit(class_, method, tag, b"".join(sorted(members)))
            changed = True
    if not changed:
        return response_der
    signed_data = _reemit(signed_data, b"".join(fields))
    content_info = _reemit(content_info, content_type + _reemit(explicit, signed_data))
    return _reemit(response_der, status + content_info)


_CONSTRUCTED: Final = 1
_CONTEXT: Final = 2


def _elements(encoded: bytes) -> list[bytes]:
    """The encodings of the elements inside one constructed encoding."""
    contents = parser.parse(encoded, strict=True)[4]
    elements = []
    while contents:
        length = parser.peek(contents)
        elements.append(contents[:length])
        contents = contents[length:]
    return elements


def _reemit(encoded: bytes, contents: bytes) -> bytes:
    """``encoded``'s class and tag around new ``contents`` (definite length)."""
    class_, method, tag, _, _, _ = parser.parse(encoded, strict=True)
    return parser.emit(class_, method, tag, contents)


def token_as_response(data: bytes, *, what: str) -> bytes:
    """A TimeStampResp from a token file: a TimeStampResp, or a bare TimeStampToken.

    Tools write either: ``openssl ts -reply`` the whole TimeStampResp, ``-token_out``
    and signature formats (CAdES, PAdES) only the TimeStampToken (a CMS
    ContentInfo). A bare token is wrapped in a TimeStampResp with status
    ``granted`` (with asn1crypto; the signed bytes are unchanged). Nothing is
    verified here.

    Raises:
        TimestampError: the bytes are neither, or oversized.
    """
    if len(data) > MAX_TOKEN_SIZE:
        raise TimestampError(f"{what} is {len(data)} bytes, more than the {MAX_TOKEN_SIZE} allowed")
    try:
        content_info = cms.ContentInfo.load(data, strict=True)
        is_token = content_info["content_type"].native == "signed_data"
    except MALFORMED_INPUT_ERRORS:
        is_token = False
    if not is_token:
        return data
    return TimeStampResp(
        {"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": content_info}
    ).dump()


def normalize_token(data: bytes, *, what: str = "the token") -> bytes:
    """A token file's bytes as secmark stores a token, nothing verified.

    ``data`` is a DER TimeStampResp or a bare TimeStampToken (see
    :func:`token_as_response`); the result is the TimeStampResp DER with the
    unsigned SETs of its SignedData in DER order (see :func:`load_response`).

    Raises:
        TimestampError: neither a TimeStampResp nor a token, or oversized.
    """
    return load_response(token_as_response(data, what=what), what=what)[0]


def describe_status(status_info: tsp.PKIStatusInfo) -> str:
    """PKIStatusInfo in RFC 3161 words: ``rejection (badAlg): text``."""
    status = _STATUS_NAMES.get(status_info["status"].native, str(status_info["status"].native))
    fail_info = status_info["fail_info"]
    failures = ""
    if not isinstance(fail_info, core.Void) and fail_info.native:
        failures = (
            " (" + ", ".join(sorted(_FAILURE_NAMES.get(f, f) for f in fail_info.native)) + ")"
        )
    status_string = status_info["status_string"]
    text = ""
    if not isinstance(status_string, core.Void) and status_string.native:
        text = ": " + "; ".join(status_string.native)
    return f"{status}{failures}{text}"
