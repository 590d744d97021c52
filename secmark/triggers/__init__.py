"""Triggers: deterministic per-index derivation from a commitment.

Trigger ``i`` of a commitment is a function of the owner's VRF output on the
commitment id and ``i``; anyone holding the commitment checks it from the
VRF proof. ``specs/derivation.md`` is the normative definition; the vectors
in ``vectors/triggers/`` pin it.

- :func:`derive_trigger`, :func:`iter_triggers`: the owner's derivation.
- :func:`verify_trigger`, :func:`verify_triggers`: check revealed triggers
  and re-derive them.
- :func:`generate_decoys`: inputs from the same generator, fresh randomness;
  :func:`draw_decoys` also names the candidate each was drawn from.
- :func:`pool_root`, :class:`CommittedPool`: the Merkle-committed pool of the
  pool and overlay families.
- :func:`write_trigger_set`, :func:`read_trigger_set`,
  :func:`verify_trigger_set`: the owner's trigger set on disk.
"""

from __future__ import annotations

from secmark.triggers.derive import (
    DEFAULT_BATCH_SIZE,
    TRIGGER_DOMAIN,
    CommittedPool,
    Trigger,
    TriggerBatch,
    derive_trigger,
    draw_decoys,
    generate_decoys,
    iter_triggers,
    pool_root,
    trigger_alpha,
    verify_trigger,
    verify_triggers,
)
from secmark.triggers.generate import Label, PoolItems
from secmark.triggers.trigger_set import (
    TriggerSet,
    TriggerSetManifest,
    read_trigger_set,
    verify_trigger_set,
    write_trigger_set,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "TRIGGER_DOMAIN",
    "CommittedPool",
    "Label",
    "PoolItems",
    "Trigger",
    "TriggerBatch",
    "TriggerSet",
    "TriggerSetManifest",
    "derive_trigger",
    "draw_decoys",
    "generate_decoys",
    "iter_triggers",
    "pool_root",
    "read_trigger_set",
    "trigger_alpha",
    "verify_trigger",
    "verify_trigger_set",
    "verify_triggers",
    "write_trigger_set",
]
