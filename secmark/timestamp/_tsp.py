"""Pieces of RFC 3161 shared by the client, the verifier and the authority.

Private to :mod:`secmark.timestamp`: the public names are re-exported by the
package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

from asn1crypto import core, tsp

from secmark.errors import TimestampError

__all__ = [
    "HASH_ALGORITHMS",
    "MAX_TOKEN_SIZE",
    "imprint",
    "load_response",
    "describe_status",
]

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


def load_response(response_der: bytes, *, what: str) -> tsp.TimeStampResp:
    """Parse a TimeStampResp completely, so that no later access fails lazily.

    ``what`` names the bytes in the error message ("the TSA's answer", "the token").

    Raises:
        TimestampError: the bytes are oversized or not a TimeStampResp.
    """
    if len(response_der) > MAX_TOKEN_SIZE:
        raise TimestampError(
            f"{what} is {len(response_der)} bytes, more than the {MAX_TOKEN_SIZE} allowed"
        )
    try:
        response = tsp.TimeStampResp.load(response_der, strict=True)
        # asn1crypto parses lazily; .native walks every field, token included.
        response.native  # noqa: B018
    except (ValueError, TypeError, KeyError) as error:
        raise TimestampError(f"{what} is not a DER TimeStampResp: {error}") from None
    return response


def describe_status(status_info: tsp.PKIStatusInfo) -> str:
    """PKIStatusInfo in RFC 3161 words: ``rejection (badAlg): text``."""
    status = _STATUS_NAMES.get(status_info["status"].native, str(status_info["status"].native))
    fail_info = status_info["fail_info"]
    failures = ""
    if not isinstance(fail_info, core.Void) and fail_info.native:
        failures = " (" + ", ".join(sorted(_FAILURE_NAMES.get(f, f) for f in fail_info.native)) + ")"
    status_string = status_info["status_string"]
    text = ""
    if not isinstance(status_string, core.Void) and status_string.native:
        text = ": " + "; ".join(status_string.native)
    return f"{status}{failures}{text}"
