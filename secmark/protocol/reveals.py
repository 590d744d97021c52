"""Checking a reveal: exactly the challenged indices, each proof valid."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import ProofError
from secmark.messages.commitment import Commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import OverlayFamily, PoolFamily
from secmark.messages.reveal import RevealContents
from secmark.triggers import Trigger, verify_triggers

__all__ = ["revealed_pool_items", "revealed_triggers"]


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

    Raises:
        ProofError: indices missing, extra or repeated (a reveal answers
            exactly the challenge), or any proof or Merkle path invalid.
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
