"""Trigger sets for the evaluation, derived as a real owner (or thief) derives them.

Each role holds fixed, publicly known evaluation keys and commits, per task
and seed, to the task's family and label space with a nonce fixed by the
seed; the N triggers are then derived with :func:`secmark.triggers.iter_triggers`
from that signed commitment. The figures therefore repeat from run to run
and cover a different trigger set for every seed. The keys are public:
nothing derived here has evidential value outside the evaluation.

The owner's trigger family is chosen per run (:data:`FAMILY_NAMES`):
``noise`` is the task's own noise family; ``pool`` and ``overlay`` draw from
in-distribution candidates built by :func:`pool_candidates` (each training
input with its ink moved by one grey level, or a jittered tabular row), committed by
their Merkle root. :func:`draw_decoys` draws an arbiter's decoys from the
candidates that are not triggers, as :func:`secmark.triggers.generate_decoys`
does for a real dispute.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, get_args

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError
from secmark.evaluate.datasets import Task
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import NoiseFamily, OverlayFamily, PoolFamily
from secmark.triggers import CommittedPool, generate_decoys, iter_triggers, pool_root

__all__ = [
    "FAMILY_NAMES",
    "FamilyName",
    "OwnerTriggers",
    "Role",
    "TriggerData",
    "derive_triggers",
    "draw_decoys",
    "evaluation_family",
    "evaluation_keys",
    "owner_triggers",
    "pool_candidates",
]

Role = Literal["owner", "thief"]

FamilyName = Literal["noise", "pool", "overlay"]
"""The owner's trigger family in an evaluation run."""

FAMILY_NAMES: tuple[FamilyName, ...] = get_args(FamilyName)

_CANDIDATE_SALT = 0x706F_6F6C
"""Separates the candidates' shift (or jitter) draw from every other use of a seed."""
_TABULAR_JITTER = 0.1
"""Tabular candidates are training rows plus Gaussian noise of 0.1 standard
deviations per standardised feature: close enough to stay inside the data's
bulk, far enough that no candidate is a training row."""
_OVERLAY_SHARE = 0.1
"""The overlay family replaces a tenth of an item's values, as the
trigger-safety check's overlay models do (:mod:`secmark.evaluate.safety`)."""

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


def pool_candidates(task: Task, seed: int) -> np.ndarray:
    """The owner's in-distribution candidates for ``task`` and ``seed``.

    Image tasks (items of two or more dimensions; digits): every training
    input with each non-zero value moved one grey level (the smallest gap
    between distinct values of the training split: 1/16 on digits) up or
    down with probability 1/2 each way, clipped to the task's noise range;
    zero (background) values stay zero. Tabular tasks: every training row
    plus Gaussian noise of std 0.1 per standardised feature. Both draw from
    ``default_rng([seed, salt])``. Candidates equal to a training or test
    input, or to an earlier candidate, are dropped, so no trigger is an
    input the thief holds with its true label and no two candidates share an
    input. Returns a fresh float32 array ``(M, *item shape)``, M at most the
    training split's size.

    Why grey levels and not a one-pixel shift: the digits are centred, and a
    PCA of the thief's data (the ``ood_reconstruction`` filter at a 1-2 %
    flagged share) flags 78-83 % of shifted digits but 2-6 % of these, as it
    does real test digits; the background filter flags under 1 % of either.
    """
    rng = np.random.default_rng([seed, _CANDIDATE_SALT])
    source = np.asarray(task.train_inputs, dtype=np.float32)
    if source.ndim >= 3:
        level = float(np.diff(np.unique(source)).min())
        moves = rng.choice(np.array([-1.0, 1.0]), size=source.shape) * (source != 0)
        low, high = float(task.family.low), float(task.family.high)
        candidates = np.clip(source + level * moves, low, high).astype(np.float32)
    else:
        noise = rng.normal(0.0, _TABULAR_JITTER, size=source.shape)
        candidates = (source + noise).astype(np.float32)
    seen = {item.tobytes() for item in source}
    seen |= {item.tobytes() for item in np.asarray(task.test_inputs, dtype=np.float32)}
    kept = []
    for row, item in enumerate(candidates):
        key = item.tobytes()
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return np.ascontiguousarray(candidates[kept])


def evaluation_family(
    task: Task, name: FamilyName, candidates: np.ndarray | None = None
) -> NoiseFamily | PoolFamily | OverlayFamily:
    """The family ``name`` for ``task``: the task's noise family, or the pool
    or overlay family over ``candidates`` (overlay: a tenth of the values
    replaced, uniform over the task's noise range).

    Raises:
        EncodingError: an unknown name, or no candidates for pool or overlay.
    """
    if name not in FAMILY_NAMES:
        raise EncodingError(f"unknown trigger family {name!r} (known: {', '.join(FAMILY_NAMES)})")
    if name == "noise":
        return task.family
    if candidates is None:
        raise EncodingError(f"the {name} family needs its candidates")
    shape = tuple(int(size) for size in candidates.shape[1:])
    if name == "pool":
        return PoolFamily(len(candidates), shape, "float32")
    return OverlayFamily(
        pool_size=len(candidates),
        item_shape=shape,
        item_dtype="float32",
        pixels=max(1, round(_OVERLAY_SHARE * math.prod(shape))),
        low=float(task.family.low),
        high=float(task.family.high),
    )


@dataclass(frozen=True, eq=False)
class OwnerTriggers:
    """The owner's triggers in family ``name`` with the committed candidates
    they were drawn from (None for noise)."""

    name: FamilyName
    family: NoiseFamily | PoolFamily | OverlayFamily
    triggers: TriggerData
    candidates: np.ndarray | None


def owner_triggers(task: Task, name: FamilyName, seed: int) -> OwnerTriggers:
    """The owner's N triggers of family ``name`` for ``task`` and ``seed``.

    Raises:
        EncodingError: an unknown family name.
    """
    if name not in FAMILY_NAMES:
        raise EncodingError(f"unknown trigger family {name!r} (known: {', '.join(FAMILY_NAMES)})")
    candidates = None if name == "noise" else pool_candidates(task, seed)
    family = evaluation_family(task, name, candidates)
    triggers = derive_triggers(task, role="owner", seed=seed, family=family, pool=candidates)
    return OwnerTriggers(name, family, triggers, candidates)


def draw_decoys(task: Task, owner: OwnerTriggers, seed: int, count: int) -> np.ndarray:
    """``count`` decoys as an arbiter draws them for ``owner``'s commitment:
    :func:`secmark.triggers.generate_decoys` with the candidates as ``items``
    and the trigger inputs and their base items excluded, so no decoy is a
    trigger (or, for overlay, made from a trigger's base). The draw uses the
    system's randomness, as in a dispute: it does not repeat.

    Raises:
        EncodingError: a noise family (whose decoys need no candidates and
            are not drawn here), or too few non-trigger candidates.
    """
    if owner.candidates is None:
        raise EncodingError("decoys are drawn from candidates only for the pool or overlay family")
    signed = _commit(task, "owner", seed, owner.family, owner.candidates)
    exclude = list(owner.triggers.inputs)
    if owner.triggers.bases is not None:
        exclude += list(owner.triggers.bases)
    return generate_decoys(signed.document, count, items=list(owner.candidates), exclude=exclude)


def _commit(
    task: Task,
    role: Role,
    seed: int,
    family: NoiseFamily | OverlayFamily | PoolFamily,
    pool: np.ndarray | None,
) -> SignedDocument[Commitment]:
    root = None
    if isinstance(family, (PoolFamily, OverlayFamily)):
        if pool is None:
            raise EncodingError(f"a {family.NAME} family needs its candidate pool")
        root = pool_root(pool, family)
    return create_commitment(
        evaluation_keys(role),
        family=family,
        labels=task.labels,
        size=task.triggers,
        model_label=f"secmark evaluation {task.name}",
        pool_root=root,
        nonce=_digest(role, task.name, family.NAME, str(seed), "nonce"),
        created=_CREATED,
    )


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
    committed_pool = None
    signed = _commit(task, role, seed, chosen, pool)
    if pool is not None and signed.document.pool_root is not None:
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
