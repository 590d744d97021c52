"""Challenge indices: the arbiter's VRF output picks which triggers are revealed.

``alpha = "secmark-v1 challenge" || commitment id (32 bytes) ||
SHA-256(canonical suspect reference)``; the arbiter proves it with its own
VRF key. Indices that earlier challenges of the same commitment revealed are
excluded (once a bundle is published they are public, and a suspect could
answer them with anything); of the ``N - |E|`` remaining indices in
ascending order, the challenge takes those at the first k distinct values
of the uniform integers in ``[0, N - |E|)`` drawn from the ChaCha20 stream
keyed by ``HKDF-SHA256(beta, info="secmark-v1 challenge indices")`` (the
samplers of ``specs/derivation.md``). With nothing excluded these are the
drawn values themselves. So the owner cannot predict them before claiming,
the arbiter cannot choose them, re-filing a claim gives the same indices
until a reveal adds to the excluded set, and anyone holding the arbiter's
public key can check all of this; the excluded set itself is the arbiter's
word.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
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


def challenge_indices(
    beta: bytes, size: int, count: int, excluded: Sequence[int] = ()
) -> tuple[int, ...]:
    """The ``count`` challenged indices of ``[0, size)`` minus ``excluded``
    for VRF output ``beta``, ascending.

    Raises:
        EncodingError: ``count`` is not in ``[1, size - len(excluded)]``, or
            ``excluded`` is not ascending, distinct and inside ``[0, size)``.
    """
    if list(excluded) != sorted(set(excluded)) or (
        excluded and not 0 <= excluded[0] <= excluded[-1] < size
    ):
        raise EncodingError("excluded indices must be distinct, ascending and below N")
    remaining = size - len(excluded)
    if not 1 <= count <= remaining:
        raise EncodingError(
            f"cannot challenge {count} of the {remaining} triggers that earlier challenges "
            f"left unrevealed (N = {size}): this commitment is spent at this arbiter"
        )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INDEX_STREAM_INFO).derive(beta)
    drawn = distinct_uniform_integers(KeyStream(key), remaining, count)
    if not excluded:
        return tuple(sorted(int(value) for value in drawn))
    # The j-th remaining index is j plus the number of excluded indices e_i
    # with e_i - i <= j (e_i - i remaining indices lie below e_i).
    below = np.asarray(excluded, dtype=np.int64) - np.arange(len(excluded), dtype=np.int64)
    chosen = drawn + np.searchsorted(below, drawn, side="right")
    return tuple(sorted(int(value) for value in chosen))


def prove_challenge(
    vrf: VrfSecretKey,
    commitment_id: str,
    suspect: str,
    size: int,
    count: int,
    excluded: Sequence[int] = (),
) -> tuple[bytes, tuple[int, ...]]:
    """The arbiter's proof and the indices it selects."""
    proof, beta = vrf.prove_and_hash(challenge_alpha(commitment_id, suspect))
    return proof, challenge_indices(beta, size, count, excluded)


def check_challenge_indices(challenge: Challenge, arbiter_vrf: VrfPublicKey, size: int) -> None:
    """Check that the challenge's indices are the ones its VRF proof selects
    from those its excluded set leaves.

    Raises:
        ProofError: the proof does not verify for this commitment and
            suspect, or the indices differ from those it selects.
        EncodingError: the excluded set does not fit the commitment's N.
    """
    beta = arbiter_vrf.verify(
        challenge_alpha(challenge.commitment_id, challenge.suspect), challenge.vrf_proof
    )
    selected = challenge_indices(beta, size, len(challenge.indices), challenge.excluded)
    if selected != challenge.indices:
        raise ProofError("the challenged indices are not those the arbiter's VRF output selects")
