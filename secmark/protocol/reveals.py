"""Checking a reveal: exactly the challenged indices, each proof valid, and
for response labels the committed response list."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, ProofError, ProtocolError
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import OverlayFamily, PoolFamily
from secmark.messages.labels import response_list_mismatch
from secmark.messages.responses import ResponseList
from secmark.messages.reveal import RevealContents
from secmark.triggers import Trigger, verify_triggers

__all__ = [
    "check_response_list",
    "revealed_pool_items",
    "revealed_responses",
    "revealed_triggers",
]


def check_response_list(commitment: Commitment, responses: ResponseList | None) -> None:
    """Check that ``responses`` is the list ``commitment`` committed to: None
    unless its labels are ``responses``, else K responses of the committed
    digest (the list's own rules hold by construction).

    Raises:
        ProtocolError: a list where none is committed, none where one is, or
            another list than the committed one.
    """
    mismatch = response_list_mismatch(commitment.labels, responses)
    if mismatch is not None:
        raise ProtocolError(mismatch)


def revealed_responses(commitment: Commitment, contents: RevealContents) -> ResponseList | None:
    """The committed response list a reveal opens, or None for other labels.

    Raises:
        ProofError: the list missing, broken (a response that is not
            committable text, two responses one of which starts with the
            other) or not the committed one; a list revealed for a
            commitment without response labels.
    """
    try:
        responses = None if contents.responses is None else ResponseList(contents.responses)
        check_response_list(commitment, responses)
    except (EncodingError, ProtocolError) as error:
        raise ProofError(f"the reveal's response list does not check: {error}") from None
    return responses


def _item_array(item: bytes, commitment: Commitment) -> npt.NDArray[Any]:
    family = commitment.family
    if not isinstance(family, (PoolFamily, OverlayFamily)):
        raise ProofError(f"the {family.NAME} family reveals no pool items")
    shape, dtype = family.item_shape, np.dtype(family.item_dtype).newbyteorder("<")
    if len(item) != math.prod(shape) * dtype.itemsize:
        raise ProofError("a revealed pool item has the wrong size for the committed item shape")
    return np.frombuffer(item, dtype=dtype).reshape(shape)


def revealed_pool_items(commitment: Commitment, contents: RevealContents) -> list[npt.NDArray[Any]]:
    """The pool items a reveal opens (pool and overlay families), as arrays.

    Raises:
        ProofError: an item of the wrong size, or a family without a pool.
    """
    return [
        _item_array(entry.pool_item, commitment)
        for entry in contents.triggers
        if entry.pool_item is not None
    ]


def revealed_triggers(
    signed_commitment: SignedDocument[Commitment],
    contents: RevealContents,
    indices: tuple[int, ...],
) -> list[Trigger]:
    """Check a reveal against the challenged ``indices`` and re-derive its triggers.

    The response list, if any, is checked too (:func:`revealed_responses`).

    Raises:
        ProofError: indices missing, extra or repeated (a reveal answers
            exactly the challenge), any proof or Merkle path invalid, or a
            response list that does not check.
    """
    revealed = [trigger.index for trigger in contents.triggers]
    if revealed != list(indices):
        missing = sorted(set(indices) - set(revealed))
        extra = sorted(set(revealed) - set(indices))
        raise ProofError(
            "a reveal must answer exactly the challenged indices, in order "
            f"(missing {missing[:10]}, not challenged {extra[:10]})"
        )
    commitment = signed_commitment.document
    revealed_responses(commitment, contents)
    return verify_triggers(
        signed_commitment,
        [
            (
                entry.index,
                entry.proof,
                None if entry.pool_item is None else _item_array(entry.pool_item, commitment),
                entry.merkle_path,
            )
            for entry in contents.triggers
        ],
    )
