"""The arbiter's own items that decoys of pool and overlay commitments are drawn from.

A pool or overlay trigger is made from an item of the owner's committed
pool, so a decoy must be an item of the same distribution that the owner
never revealed: anything else a suspect could tell apart from the triggers
(a random byte string among natural questions). Only the arbiter can hold
such items. The service is given one array of items per item layout (shape
and dtype; ``secmark arbiter serve --decoy-pool FILE``), and a query job of
a pool or overlay commitment draws its decoys from the array of the
commitment's layout; :meth:`Arbiter.query
<secmark.protocol.arbiter.Arbiter.query>` leaves out every trigger input
and every pool item the reveal opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from secmark.errors import EncodingError, ProtocolError
from secmark.messages.families import OverlayFamily, PoolFamily, TriggerFamily

__all__ = ["DecoyPools"]


class DecoyPools:
    """Arrays of decoy candidates, one per item layout: each array holds
    one item per row (shape ``(n, *item_shape)``, n >= 1), in any byte
    order; none may share its layout with another.

    Raises:
        EncodingError: an array of no items, or two of one layout.
    """

    __slots__ = ("_pools",)

    def __init__(self, pools: Iterable[npt.NDArray[Any]] = ()) -> None:
        self._pools: dict[tuple[tuple[int, ...], str], npt.NDArray[Any]] = {}
        for pool in pools:
            if not isinstance(pool, np.ndarray) or pool.ndim < 2 or len(pool) == 0:
                raise EncodingError(
                    "a decoy pool is an array of at least one item, one item per row"
                )
            layout = (tuple(int(n) for n in pool.shape[1:]), pool.dtype.name)
            if layout in self._pools:
                raise EncodingError(
                    f"two decoy pools hold items of shape {layout[0]} and dtype {layout[1]}: "
                    "join them into one"
                )
            self._pools[layout] = np.ascontiguousarray(pool, dtype=np.dtype(pool.dtype.name))

    def for_family(self, family: TriggerFamily) -> list[npt.NDArray[Any]] | None:
        """The candidates for decoys of ``family``: None for a family that
        draws its decoys itself, else the items of its layout.

        Raises:
            ProtocolError: a pool or overlay family of a layout no array has.
        """
        if not isinstance(family, (PoolFamily, OverlayFamily)):
            return None
        pool = self._pools.get((tuple(family.item_shape), family.item_dtype))
        if pool is None:
            raise ProtocolError(
                f"decoys of the {family.NAME} family are unrevealed items of its distribution, "
                f"shape {tuple(family.item_shape)} and dtype {family.item_dtype}, and this "
                "service holds none: start it with --decoy-pool FILE holding such items"
            )
        return list(pool)
