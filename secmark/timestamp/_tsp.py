"""Pieces of RFC 3161 shared by the client, the verifier and the authority.

Private to :mod:`secmark.timestamp`: the public names are re-exported by the
package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from asn1crypto import cms, core, tsp
from rfc3161_client import decode_timestamp_response

from secmark.errors import TimestampError

__all__ = [
    "HASH_ALGORITHMS",
    "MAX_TOKEN_SIZE",
    "QUERY_MEDIA_TYPE",
    "REPLY_MEDIA_TYPE",
    "TimeStampResp",
    "describe_status",
    "imprint",
    "load_response",
]

QUERY_MEDIA_TYPE: Final = "application/timestamp-query"
"""Content type of a DER TimeStampReq sent over HTTP (RFC 3161 section 3.4)."""

REPLY_MEDIA_TYPE: Final = "application/timestamp-reply"
"""Content type of a DER TimeStampResp sent over HTTP (RFC 3161 section 3.4)."""

HASH_ALGORITHMS: Final[dict[str, Callable[[bytes], hashlib._Hash]]] = {
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


def load_response(response_der: bytes, *, what: str) -> TimeStampResp:
    """Parse a TimeStampResp completely, so that no later access fails lazily.

    Both parsers must accept it: asn1crypto, which the checks here walk, and
    rfc3161-client (strict DER), which verification ends with, so a token
    accepted from a TSA is one that can be verified later. ``what`` names
    the bytes in the error message ("the TSA's answer", "the token").

    Raises:
        TimestampError: the bytes are oversized or not a TimeStampResp.
    """
    if len(response_der) > MAX_TOKEN_SIZE:
        raise TimestampError(
            f"{what} is {len(response_der)} bytes, more than the {MAX_TOKEN_SIZE} allowed"
        )
    try:
        response = TimeStampResp.load(response_der, strict=True)
        _parse_eagerly(response)
        decode_timestamp_response(response_der)
    except (ValueError, TypeError, KeyError) as error:
        raise TimestampError(f"{what} is not a DER TimeStampResp: {error}") from None
    return response


def _parse_eagerly(response: TimeStampResp) -> None:
    """Walk every field the checks read, so malformed bytes fail here.

    asn1crypto parses lazily; ``response.native`` would do the same but
    re-parses the nested content many times over (70 ms a token).
    """
    response["status"].native  # noqa: B018
    token = response["time_stamp_token"]
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        return
    signed_data = token["content"]
    signed_data["version"].native  # noqa: B018
    signed_data["certificates"].native  # noqa: B018
    signed_data["signer_infos"].native  # noqa: B018
    encapsulated = signed_data["encap_content_info"]
    if encapsulated["content_type"].native == "tst_info" and not isinstance(
        encapsulated["content"], core.Void
    ):
        encapsulated["content"].parsed.native  # noqa: B018


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
