"""Commitments and pools shared by the trigger tests."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    TriggerFamily,
)
from secmark.messages.labels import (
    ClassLabels,
    LabelSpace,
    RegressionLabels,
    TokenLabels,
)
from secmark.triggers import pool_root

CREATED = datetime(2026, 3, 1, tzinfo=timezone.utc)
POOL_SHAPE = (3, 5, 5)

# One case per family and label space: (name, family, labels, pool dtype or None).
CASES: list[tuple[str, TriggerFamily, LabelSpace, str | None]] = [
    ("noise-uint8", NoiseFamily((3, 6, 6), "uint8", 0, 255), ClassLabels(10), None),
    ("noise-uint8-range", NoiseFamily((5, 7), "uint8", 40, 42), ClassLabels(3), None),
    (
        "noise-float32",
        NoiseFamily((4, 4), "float32", -3.5, 2.0),
        RegressionLabels(0.0, 1.0, 0.1),
        None,
    ),
    ("tokens", TokensFamily(20, 300, (0, 1, 5, 6, 7, 299)), TokenLabels(1000, 5), None),
    ("pool", PoolFamily(9, POOL_SHAPE, "uint8"), ClassLabels(7), "uint8"),
    ("overlay-uint8", OverlayFamily(9, POOL_SHAPE, "uint8", 6, 0, 255), ClassLabels(2), "uint8"),
    (
        "overlay-float32",
        OverlayFamily(9, POOL_SHAPE, "float32", 4, -1.0, 1.0),
        ClassLabels(5),
        "float32",
    ),
]


def make_pool(
    dtype: str, count: int = 9, shape: tuple[int, ...] = POOL_SHAPE, label: str = "pool"
) -> np.ndarray:
    size = count * int(np.prod(shape))
    raw = np.frombuffer(hashlib.shake_256(label.encode()).digest(size), dtype=np.uint8)
    if dtype == "uint8":
        return raw.reshape(count, *shape).copy()
    return (raw.astype(np.float32) / np.float32(97)).reshape(count, *shape)


def commit(
    keys: IdentityKeys,
    family: TriggerFamily,
    labels: LabelSpace,
    *,
    pool: np.ndarray | None = None,
    size: int = 64,
    nonce: bytes = bytes(32),
) -> SignedDocument[Commitment]:
    return create_commitment(
        keys,
        family=family,
        labels=labels,
        size=size,
        model_label="trigger tests",
        pool_root=pool_root(pool, family) if pool is not None else None,
        nonce=nonce,
        created=CREATED,
    )
