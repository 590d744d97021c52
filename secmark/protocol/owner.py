"""The owner's side of a dispute: file a claim, answer a challenge.

:func:`answer_challenge` checks the challenge before revealing anything: the
arbiter's signature, that it is for the owner's commitment, that it has not
expired, and that its indices are the ones the arbiter's VRF output selects.
It then reveals exactly those indices, sealed to the arbiter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import format_time, utc_now
from secmark.errors import ProtocolError
from secmark.messages.challenge import open_challenge
from secmark.messages.claim import create_claim, evidence_kinds_for
from secmark.messages.commitment import Commitment, open_commitment
from secmark.messages.document import SignedDocument, sign_document
from secmark.messages.identity import Identity
from secmark.messages.responses import ResponseList
from secmark.messages.reveal import Reveal, RevealContents, RevealedTrigger
from secmark.protocol.challenge import check_challenge_indices
from secmark.protocol.reveals import check_response_list
from secmark.protocol.suspects import canonical_suspect
from secmark.triggers import CommittedPool, derive_trigger

__all__ = ["answer_challenge", "file_claim"]


def file_claim(
    keys: IdentityKeys,
    *,
    commitment: bytes,
    commitment_evidence: bytes,
    suspect: str,
    arbiter: SignedDocument[Identity],
    release: bytes | None = None,
    release_evidence: bytes | None = None,
) -> bytes:
    """A signed claim against ``suspect`` (canonicalised), addressed to ``arbiter``.

    The claim states the evidence kind the commitment's family gives
    (:func:`~secmark.messages.claim.evidence_kinds_for`): white-box for a
    weights commitment, black-box for any other.

    Raises:
        EncodingError, SignatureError: ``commitment`` is malformed or not
            signed by the owner it names.
    """
    family = open_commitment(commitment).document.family
    return create_claim(
        keys,
        commitment=commitment,
        commitment_evidence=commitment_evidence,
        suspect=canonical_suspect(suspect),
        arbiter=arbiter.document.key_id,
        release=release,
        release_evidence=release_evidence,
        evidence_kinds=evidence_kinds_for(family),
    ).to_json()


def answer_challenge(
    keys: IdentityKeys,
    signed_commitment: SignedDocument[Commitment],
    challenge_bytes: bytes,
    arbiter: SignedDocument[Identity],
    *,
    pool: CommittedPool | None = None,
    responses: ResponseList | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> bytes:
    """The signed, sealed reveal answering a challenge.

    ``pool`` is the committed pool of a pool or overlay commitment;
    ``responses`` the committed list of a commitment with ``responses``
    labels, revealed whole.

    Raises:
        SignatureError: the challenge is not signed by ``arbiter``.
        ProofError: its indices are not those its VRF proof selects.
        ProtocolError: it is for another commitment, or has expired; a
            response list missing, not the committed one, or given to a
            commitment without response labels.
    """
    arbiter_keys = arbiter.document.public_keys
    challenge = open_challenge(challenge_bytes, arbiter_keys)
    document = challenge.document
    if document.commitment_id != signed_commitment.digest:
        raise ProtocolError("the challenge is for another commitment than this one")
    if clock() > document.expires:
        raise ProtocolError(f"the challenge expired at {format_time(document.expires)}")
    check_challenge_indices(document, arbiter_keys.vrf_key, signed_commitment.document.size)
    check_response_list(signed_commitment.document, responses)
    revealed = []
    for index in document.indices:
        trigger = derive_trigger(keys, signed_commitment, index, pool=pool)
        item = path = None
        if pool is not None and trigger.pool_index is not None:
            array = pool.item(trigger.pool_index)
            item = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            path = pool.inclusion_path(trigger.pool_index)
        revealed.append(RevealedTrigger(index, trigger.proof, item, path))
    contents = RevealContents(
        challenge.digest, tuple(revealed), None if responses is None else responses.responses
    )
    reveal = Reveal(challenge.digest, contents.seal(arbiter_keys))
    return sign_document(reveal, keys).to_json()
