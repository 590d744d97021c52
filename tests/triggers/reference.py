"""An independent, one-value-at-a-time reading of ``specs/derivation.md``.

Written from the specification, not from ``secmark.triggers``: it shares no
code with the library except the ECVRF (tested against RFC 9381 elsewhere).
Every read is a fresh ``update`` on the ChaCha20 context, every draw a loop
iteration, the allowed-token list is materialised and the HKDF is spelled out
with ``hmac``. Slow, and meant to be: the library's vectorised sampler must
agree with it value for value.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    TriggerFamily,
)
from secmark.messages.labels import ClassLabels, LabelSpace, RegressionLabels


class Stream:
    def __init__(self, key: bytes) -> None:
        self._context = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def read(self, size: int) -> bytes:
        return self._context.update(bytes(size))


def hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 with an absent salt and L = 32 (one expand block)."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def streams(beta: bytes) -> tuple[Stream, Stream]:
    return (
        Stream(hkdf_sha256(beta, b"secmark-v1 input stream")),
        Stream(hkdf_sha256(beta, b"secmark-v1 label stream")),
    )


def uniform(stream: Stream, n: int) -> int:
    b = (n - 1).bit_length()
    w = max(1, -(-b // 8))
    while True:
        v = int.from_bytes(stream.read(w), "little") & ((1 << b) - 1)
        if v < n:
            return v


def distinct(stream: Stream, n: int, k: int) -> list[int]:
    held: list[int] = []
    while len(held) < k:
        v = uniform(stream, n)
        if v not in held:
            held.append(v)
    return held


def f32(stream: Stream, low: float, high: float) -> np.float32:
    u = int.from_bytes(stream.read(3), "little")
    return np.float32(low + (high - low) * (u / 2**24))


def f64(stream: Stream, lo: float, hi: float) -> float:
    u = int.from_bytes(stream.read(7), "little") & (2**53 - 1)
    return min(lo + (hi - lo) * (u / 2**53), hi)


def value(stream: Stream, dtype: str, low: float, high: float) -> Any:
    if dtype == "uint8":
        return int(low) + uniform(stream, int(high) - int(low) + 1)
    return f32(stream, low, high)


def trigger_input(
    family: TriggerFamily, stream: Stream, items: Any = None, pool_size: int | None = None
) -> tuple[np.ndarray, int | None]:
    if isinstance(family, NoiseFamily):
        count = int(np.prod(family.shape))
        values = [value(stream, family.dtype, family.low, family.high) for _ in range(count)]
        return np.array(values, dtype=family.dtype).reshape(family.shape), None
    if isinstance(family, TokensFamily):
        allowed = [t for t in range(family.vocab_size) if t not in family.reserved]
        ids = [allowed[uniform(stream, len(allowed))] for _ in range(family.length)]
        return np.array(ids, dtype=np.int64), None
    assert isinstance(family, (PoolFamily, OverlayFamily))
    p = uniform(stream, family.pool_size if pool_size is None else pool_size)
    item = np.array(items[p], dtype=family.item_dtype)
    if isinstance(family, PoolFamily):
        return item, p
    flat = item.reshape(-1).copy()
    positions = distinct(stream, flat.size, family.pixels)
    values = [value(stream, family.item_dtype, family.low, family.high) for _ in positions]
    for position, v in zip(positions, values):
        flat[position] = v
    return flat.reshape(item.shape), p


def label(labels: LabelSpace, stream: Stream) -> Any:
    if isinstance(labels, ClassLabels):
        return uniform(stream, labels.num_classes)
    if isinstance(labels, RegressionLabels):
        return f64(stream, labels.lo, labels.hi)
    return [uniform(stream, labels.vocab_size) for _ in range(labels.length)]


def derive(
    family: TriggerFamily, labels: LabelSpace, beta: bytes, items: Any = None
) -> tuple[np.ndarray, Any, int | None]:
    """(input, label, pool index) of the trigger whose VRF output is ``beta``."""
    input_stream, label_stream = streams(beta)
    value_, pool_index = trigger_input(family, input_stream, items)
    return value_, label(labels, label_stream), pool_index


def alpha(commitment_id_hex: str, index: int) -> bytes:
    return b"secmark-v1 trigger" + bytes.fromhex(commitment_id_hex) + index.to_bytes(4, "big")
