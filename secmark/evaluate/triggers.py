"""Trigger sets for the evaluation, derived as a real owner (or thief) derives them.

Each role holds fixed, publicly known evaluation keys and commits, per task
and seed, to the task's family and label space with a nonce fixed by the
seed; the N triggers are then derived with :func:`secmark.triggers.iter_triggers`
from that signed commitment. The figures therefore repeat from run to run
and cover a different trigger set for every seed. The keys are public:
nothing derived here has evidential value outside the evaluation.

The owner's trigger family is chosen per run (:data:`FAMILY_NAMES`):
``noise`` is the task's own noise family; ``pool`` and ``overlay`` draw from
in-distribution candidates built by :func:`pool_candidates` (perturbed
copies of a few training inputs the owner holds out of all training,
:func:`owner_task`), committed by their Merkle root. :func:`draw_decoys`
draws an arbiter's decoys from the candidates that are not triggers, as
:func:`secmark.triggers.generate_decoys` does for a real dispute.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Literal, get_args

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.errors import EncodingError
from secmark.evaluate.datasets import Task, perturb
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
    "candidate_targets",
    "derive_triggers",
    "draw_decoys",
    "evaluation_family",
    "evaluation_keys",
    "owner_task",
    "owner_triggers",
    "pool_candidates",
    "reserved_rows",
]

Role = Literal["owner", "thief"]

FamilyName = Literal["noise", "pool", "overlay"]
"""The owner's trigger family in an evaluation run."""

FAMILY_NAMES: tuple[FamilyName, ...] = get_args(FamilyName)

_CANDIDATE_SALT = 0x706F_6F6C
"""Separates the candidates' perturbation draw from every other use of a seed."""
_RESERVE_SALT = 0x7265_7365
"""Separates the owner's reserve draw from every other use of a seed."""
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


def reserved_rows(task: Task, seed: int) -> np.ndarray:
    """The training rows the owner of a pool or overlay family holds out for
    ``seed``: the first ``task.candidates.reserve`` rows, in the order of a
    permutation of the training split drawn from ``default_rng([seed,
    salt])``, whose input appears nowhere else in the training or test split
    (an input held out must not be one the owner or the thief trains on).
    Sorted int64 indices.

    Raises:
        EncodingError: fewer such rows than the rule reserves.
    """
    inputs = np.asarray(task.train_inputs, dtype=np.float32)
    counts: dict[bytes, int] = {}
    for item in np.concatenate([inputs, np.asarray(task.test_inputs, dtype=np.float32)]):
        counts[item.tobytes()] = counts.get(item.tobytes(), 0) + 1
    order = np.random.default_rng([seed, _RESERVE_SALT]).permutation(len(inputs))
    unique = [int(row) for row in order if counts[inputs[row].tobytes()] == 1]
    wanted = task.candidates.reserve
    if len(unique) < wanted:
        raise EncodingError(f"{task.name}: only {len(unique)} inputs to reserve, {wanted} needed")
    return np.sort(np.array(unique[:wanted], dtype=np.int64))


def owner_task(task: Task, name: FamilyName, seed: int) -> Task:
    """``task`` as the owner of family ``name`` trains on it for ``seed``: for
    ``noise`` the task itself; for ``pool`` and ``overlay`` the task without
    its :func:`reserved_rows` in the training split. The thief's share is
    drawn from this task's training split, so it never holds a reserved input.

    Raises:
        EncodingError: an unknown family name, or too few inputs to reserve.
    """
    if name not in FAMILY_NAMES:
        raise EncodingError(f"unknown trigger family {name!r} (known: {', '.join(FAMILY_NAMES)})")
    if name == "noise":
        return task
    kept = np.setdiff1d(np.arange(len(task.train_inputs)), reserved_rows(task, seed))
    return replace(
        task, train_inputs=task.train_inputs[kept], train_targets=task.train_targets[kept]
    )


def pool_candidates(task: Task, seed: int) -> np.ndarray:
    """The owner's in-distribution candidates for ``task`` and ``seed``:
    ``variants`` perturbed copies (:func:`secmark.evaluate.datasets.perturb`,
    drawn from ``default_rng([seed, salt])``) of each of the
    :func:`reserved_rows` of the task's :class:`~secmark.evaluate.datasets.CandidateRule`,
    item by item. A copy equal to a training or test input, or to an earlier
    copy, is dropped, so no candidate is an input the owner or the thief
    trains on and no two candidates share an input. Returns a fresh float32
    array ``(M, *item shape)``, M at most ``reserve * variants``.

    On digits (16 reserved images, 256 copies each, every non-zero pixel
    moved by up to two grey levels) the evaluation's detectors flag the
    candidates about as often as test digits; noise triggers, always.

    Raises:
        EncodingError: too few inputs to reserve.
    """
    return _candidates(task, seed)[0]


def candidate_targets(task: Task, seed: int) -> np.ndarray:
    """The true target of each of :func:`pool_candidates`, in its order: the
    target of the reserved input it is a copy of. An arbiter's decoys drawn
    from the candidates carry these as their known labels.

    Raises:
        EncodingError: too few inputs to reserve.
    """
    targets: np.ndarray = task.train_targets[_candidates(task, seed)[1]]
    return targets


def _candidates(task: Task, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidates and, for each, the training row it is a copy of."""
    rule = task.candidates
    rows = reserved_rows(task, seed)
    rng = np.random.default_rng([seed, _CANDIDATE_SALT])
    candidates = perturb(task, task.train_inputs[rows], rule.variants, rng)
    seen = {item.tobytes() for item in np.asarray(task.train_inputs, dtype=np.float32)}
    seen |= {item.tobytes() for item in np.asarray(task.test_inputs, dtype=np.float32)}
    kept = []
    for row, item in enumerate(candidates):
        key = item.tobytes()
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return np.ascontiguousarray(candidates[kept]), np.repeat(rows, rule.variants)[kept]


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
