"""Trigger sets for the evaluation, derived as a real owner (or thief) derives them.

Each role holds fixed, publicly known evaluation keys and commits, per task
and seed, to the task's family and label space with a nonce fixed by the
seed; the N triggers are then derived with :func:`secmark.triggers.iter_triggers`
from that signed commitment. The figures therefore repeat from run to run
and cover a different trigger set for every seed. The keys are public:
nothing derived here has evidential value outside the evaluation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError
from secmark.evaluate.datasets import Task
from secmark.messages.commitment import create_commitment
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily
from secmark.triggers import CommittedPool, iter_triggers, pool_root

__all__ = ["Role", "TriggerData", "derive_triggers", "evaluation_keys"]

Role = Literal["owner", "thief"]

_CREATED = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, eq=False)
class TriggerData:
    """N derived triggers: float32 inputs (N, ...), labels int64 (classes) or
    float64 (regression), and for a pool or overlay family the pool item
    each input was built from (else None). Arrays must not be modified."""

    inputs: np.ndarray
    labels: np.ndarray
    bases: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _digest(*parts: str) -> bytes:
    return hashlib.sha256(" ".join(("secmark evaluation", *parts)).encode()).digest()


def evaluation_keys(role: Role) -> IdentityKeys:
    """The fixed, public keys of ``role`` in the evaluation."""
    return IdentityKeys(_digest(role, "signing"), _digest(role, "vrf"), _digest(role, "encryption"))


def derive_triggers(
    task: Task,
    *,
    role: Role,
    seed: int,
    family: NoiseFamily | OverlayFamily | PoolFamily | None = None,
    pool: np.ndarray | None = None,
) -> TriggerData:
    """All N = ``task.triggers`` triggers of ``role``'s commitment for ``task`` and ``seed``.

    ``family`` defaults to the task's; a :class:`PoolFamily` or
    :class:`OverlayFamily` needs its candidate ``pool`` (float32 items of
    the family's item shape), whose Merkle root the commitment then names.

    Raises:
        EncodingError: a pool or overlay family without a pool, or a pool
            whose size, shape or dtype is not the family's.
    """
    chosen = task.family if family is None else family
    keys = evaluation_keys(role)
    root = None
    committed_pool = None
    if isinstance(chosen, (PoolFamily, OverlayFamily)):
        if pool is None:
            raise EncodingError(f"a {chosen.NAME} family needs its candidate pool")
        root = pool_root(pool, chosen)
    signed = create_commitment(
        keys,
        family=chosen,
        labels=task.labels,
        size=task.triggers,
        model_label=f"secmark evaluation {task.name}",
        pool_root=root,
        nonce=_digest(role, task.name, chosen.NAME, str(seed), "nonce"),
        created=_CREATED,
    )
    if pool is not None and root is not None:
        committed_pool = CommittedPool.open(pool, signed.document)
    batches = list(iter_triggers(keys, signed, range(task.triggers), pool=committed_pool))
    inputs = np.concatenate([batch.inputs for batch in batches]).astype(np.float32)
    labels = np.concatenate([batch.labels for batch in batches])
    bases = None
    if pool is not None:
        indices = np.concatenate(
            [batch.pool_indices for batch in batches if batch.pool_indices is not None]
        )
        bases = np.asarray(pool)[indices]
    return TriggerData(inputs=inputs, labels=labels, bases=bases)
