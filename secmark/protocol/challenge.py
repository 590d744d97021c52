"""Challenge indices: the arbiter's VRF output picks which triggers are revealed.

``alpha = "secmark-v1 challenge" || commitment id (32 bytes) ||
SHA-256(canonical suspect reference)``; the arbiter proves it with its own
VRF key, and the k indices are the first k distinct values of the uniform
integers in ``[0, N)`` drawn from the ChaCha20 stream keyed by
``HKDF-SHA256(beta, info="secmark-v1 challenge indices")`` (the samplers of
``specs/derivation.md``). So the owner cannot predict them before claiming,
the arbiter cannot choose them, re-filing a claim gives the same indices,
and anyone holding the arbiter's public key can check all of this.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secmark.crypto.ecvrf import VrfPublicKey, VrfSecretKey
from secmark.errors import EncodingError, ProofError
from secmark.messages.challenge import Challenge
from secmark.triggers.sampling import KeyStream, distinct_uniform_integers

__all__ = [
    "CHALLENGE_DOMAIN",
    "INDEX_STREAM_INFO",
    "challenge_alpha",
    "challenge_indices",
    "check_challenge_indices",
    "prove_challenge",
]

CHALLENGE_DOMAIN = b"secmark-v1 challenge"
INDEX_STREAM_INFO = b"secmark-v1 challenge indices"


def challenge_alpha(commitment_id: str, suspect: str) -> bytes:
    return (
        CHALLENGE_DOMAIN
        + bytes.fromhex(commitment_id)
        + hashlib.sha256(suspect.encode("utf-8")).digest()
    )


def challenge_indices(beta: bytes, size: int, count: int) -> tuple[int, ...]:
    """The ``count`` challenged indices of ``[0, size)`` for VRF output ``beta``, ascending.

    Raises:
        EncodingError: ``count`` is not in ``[1, size]``.
    """
    if not 1 <= count <= size:
        raise EncodingError(f"cannot challenge {count} of {size} triggers")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INDEX_STREAM_INFO).derive(beta)
    drawn = distinct_uniform_integers(KeyStream(key), size, count)
    return tuple(sorted(int(value) for value in drawn))


def prove_challenge(
    vrf: VrfSecretKey, commitment_id: str, suspect: str, size: int, count: int
) -> tuple[bytes, tuple[int, ...]]:
    """The arbiter's proof and the indices it selects."""
    proof, beta = vrf.prove_and_hash(challenge_alpha(commitment_id, suspect))
    return proof, challenge_indices(beta, size, count)


def check_challenge_indices(challenge: Challenge, arbiter_vrf: VrfPublicKey, size: int) -> None:
    """Check that the challenge's indices are the ones its VRF proof selects.

    Raises:
        ProofError: the proof does not verify for this commitment and
            suspect, or the indices differ from those it selects.
    """
    beta = arbiter_vrf.verify(
        challenge_alpha(challenge.commitment_id, challenge.suspect), challenge.vrf_proof
    )
    if challenge_indices(beta, size, len(challenge.indices)) != challenge.indices:
        raise ProofError("the challenged indices are not those the arbiter's VRF output selects")
