"""The exceptions secmark raises.

Every failure the library reports is a :class:`SecmarkError`. The subclasses
name the layer that refused the input, so a caller can decide what to do
without parsing messages, and the command line maps each to its own exit code.
Where a builtin exception has the same meaning, the subclass also derives from
it (``EncodingError`` is a ``ValueError``), so either may be caught.
"""

from __future__ import annotations

__all__ = [
    "EncodingError",
    "KeyMaterialError",
    "ProofError",
    "ProtocolError",
    "SecmarkError",
    "SignatureError",
    "SuspectError",
    "TimestampError",
]


class SecmarkError(Exception):
    """Root of every error secmark raises on purpose.

    ``str(error)`` says what was wrong and, where there is one, what to do.
    ``exit_code`` is the status the command line exits with.
    """

    exit_code: int = 1


class EncodingError(SecmarkError, ValueError):
    """Bytes or JSON that are malformed, non-canonical, oversized or of an
    unknown type or version."""

    exit_code = 3


class SignatureError(SecmarkError):
    """A signature that does not verify, or one made by another key than the
    one expected."""

    exit_code = 4


class ProofError(SecmarkError):
    """A VRF proof, Merkle proof or derivation that does not check out."""

    exit_code = 5


class KeyMaterialError(SecmarkError, ValueError):
    """A key that is malformed or weak, or a key file that cannot be opened
    (wrong passphrase, corruption, unsafe permissions)."""

    exit_code = 6


class TimestampError(SecmarkError):
    """An RFC 3161 timestamp that cannot be obtained or does not verify."""

    exit_code = 7


class ProtocolError(SecmarkError):
    """A message that is well formed and correctly signed but not acceptable
    at this step of the protocol (wrong case, expired, replayed, out of order)."""

    exit_code = 8


class SuspectError(SecmarkError):
    """A suspect model that could not be queried or answered malformed data
    (unreachable endpoint, HTTP error, wrong shape or type, NaN)."""

    exit_code = 9
