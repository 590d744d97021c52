"""Keystreams and the exact mappings from keystream bytes to values.

Everything a trigger contains is read from a ChaCha20 keystream by the rules
of ``specs/derivation.md`` section 7.3: uniform integers by rejection sampling
(never a biased modulo), float32 values from 24 bits, float64 values from 53
bits. Each rule has one sequential definition; the functions here compute it
with numpy on blocks of candidates and return exactly the same values and
leave the stream at exactly the same position, so an implementation that
draws one value at a time interoperates with this one.

numpy's random generators are never used: their algorithms are not part of
any standard and have changed between numpy versions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secmark.errors import EncodingError

__all__ = [
    "INPUT_STREAM_INFO",
    "LABEL_STREAM_INFO",
    "MAX_UNIFORM_RANGE",
    "KeyStream",
    "distinct_uniform_integers",
    "integer_width",
    "stream_keys",
    "uniform_float32",
    "uniform_float32_rows",
    "uniform_float64",
    "uniform_integer",
    "uniform_integers",
]

INPUT_STREAM_INFO = b"secmark-v1 input stream"
"""HKDF info of the stream a trigger's input is drawn from."""

LABEL_STREAM_INFO = b"secmark-v1 label stream"
"""HKDF info of the stream a trigger's label is drawn from."""

MAX_UNIFORM_RANGE = 1 << 32
"""Largest ``n`` of a uniform draw: the largest pool (2^32 items) a
commitment may name; every other range a commitment fixes is smaller."""

# Keystream is produced in pieces of at most this size: PITFALLS measured
# update_into at about 4.9 GB/s with 1 MiB pieces, against 1.1 GB/s for one
# large update().
_PIECE = 1 << 20
# The first refill of a stream is small: a label needs a few bytes only.
_FIRST_REFILL = 64
# Below this many draws a Python loop beats numpy's per-call overhead; the
# two paths compute the same sequential definition.
_SCALAR_DRAWS = 8
# Bound on the candidates examined at once, to keep temporaries bounded.
_MAX_BLOCK = 1 << 20
# Float32 values decoded at once: the block's uint32 and float64
# temporaries (96 KiB) stay in the CPU cache and are reused.
_FLOAT_BLOCK = 1 << 13
# Float32 values of many short rows decoded at once: the rows' keystream,
# uint32 and (off [0, 1)) float64 buffers, 480 KiB at most, stay in a 1 MiB
# L2 cache; measured 15 % faster than blocks of _FLOAT_BLOCK values, which
# pay numpy's per-call cost every row or two.
_FLOAT_ROWS_BLOCK = 1 << 15
_FLOAT32_UNIT = np.float32(1.0 / (1 << 24))

_EMPTY: npt.NDArray[np.uint8] = np.empty(0, dtype=np.uint8)
_EMPTY.flags.writeable = False
_SHA256 = hashes.SHA256()
# cryptography's ChaCha20 takes 16 bytes: the 32-bit little-endian block
# counter, then the 96-bit nonce. Both are zero.
_COUNTER_AND_NONCE = bytes(16)


def stream_keys(beta: bytes) -> tuple[bytes, bytes]:
    """The ChaCha20 keys of the input and the label stream for VRF output ``beta``.

    Each is HKDF-SHA256 (RFC 5869) with an empty salt, input keying material
    ``beta``, info :data:`INPUT_STREAM_INFO` or :data:`LABEL_STREAM_INFO`,
    and 32 bytes of output.
    """
    return (
        HKDF(algorithm=_SHA256, length=32, salt=None, info=INPUT_STREAM_INFO).derive(beta),
        HKDF(algorithm=_SHA256, length=32, salt=None, info=LABEL_STREAM_INFO).derive(beta),
    )


def _encryptor(key: bytes) -> CipherContext:
    """A ChaCha20 context at the start of the keystream under ``key``.

    Raises:
        EncodingError: the key is not 32 bytes.
    """
    if not isinstance(key, bytes) or len(key) != KeyStream.KEY_SIZE:
        raise EncodingError(f"a keystream key must be exactly {KeyStream.KEY_SIZE} bytes long")
    return Cipher(algorithms.ChaCha20(key, _COUNTER_AND_NONCE), mode=None).encryptor()


class KeyStream:
    """The ChaCha20 keystream under a 32-byte key, read front to back.

    The keystream is RFC 8439's ChaCha20 block function with a zero 96-bit
    nonce and the block counter starting at 0, i.e. the encryption of zero
    bytes. It is produced lazily in growing pieces; :meth:`peek` looks ahead
    without consuming, so a vectorised sampler can examine a block of
    candidates and then consume exactly as many bytes as the one-at-a-time
    definition would.
    """

    KEY_SIZE: ClassVar[int] = 32

    def __init__(self, key: bytes) -> None:
        """Raises:
        EncodingError: the key is not 32 bytes.
        """
        self._encryptor = _encryptor(key)
        self._buffer: npt.NDArray[np.uint8] = _EMPTY
        self._position = 0
        self._refill = _FIRST_REFILL

    def peek(self, size: int) -> npt.NDArray[np.uint8]:
        """The next ``size`` bytes, not consumed (a read-only view)."""
        missing = self._position + size - len(self._buffer)
        if missing > 0:
            self._extend(missing)
        return self._buffer[self._position : self._position + size]

    def advance(self, size: int) -> None:
        """Consume ``size`` bytes that :meth:`peek` has produced."""
        if not 0 <= size <= len(self._buffer) - self._position:
            raise ValueError("advance past the bytes peeked")
        self._position += size

    def read(self, size: int) -> npt.NDArray[np.uint8]:
        """The next ``size`` bytes, consumed (a read-only view)."""
        block = self.peek(size)
        self._position += size
        return block

    def read_int(self, size: int) -> int:
        """The next ``size`` bytes, consumed, as a little-endian integer."""
        return int.from_bytes(self.read(size).tobytes(), "little")

    def _extend(self, missing: int) -> None:
        fresh = max(missing, self._refill)
        self._refill = min(2 * self._refill, _PIECE)
        kept = len(self._buffer) - self._position
        if kept == 0 and fresh <= _PIECE:
            # The common case, a short stream's first read: one call, no copy
            # (frombuffer over bytes is read-only).
            self._buffer = np.frombuffer(self._encryptor.update(bytes(fresh)), dtype=np.uint8)
        else:
            buffer = np.empty(kept + fresh, dtype=np.uint8)
            buffer[:kept] = self._buffer[self._position :]
            for start in range(kept, kept + fresh, _PIECE):
                stop = min(start + _PIECE, kept + fresh)
                # An ndarray is a writable buffer; the stubs only name bytes-likes.
                self._encryptor.update_into(bytes(stop - start), buffer[start:stop])  # type: ignore[arg-type]
            buffer.flags.writeable = False
            self._buffer = buffer
        self._position = 0


def integer_width(n: int) -> tuple[int, int]:
    """``(w, mask)`` for uniform draws from ``[0, n)``: bytes per candidate and
    the mask of the low ``b`` bits, ``b`` the bit length of ``n - 1``."""
    bits = (n - 1).bit_length()
    return max(1, math.ceil(bits / 8)), (1 << bits) - 1


def _little_endian(block: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.int64]:
    """Consecutive ``width``-byte little-endian integers (width <= 7) as int64."""
    if width == 1:
        return block.astype(np.int64)
    padded = np.zeros((len(block) // width, 8), dtype=np.uint8)
    padded[:, :width] = block.reshape(-1, width)
    return padded.view("<u8").reshape(-1).astype(np.int64)


def _candidates(
    stream: KeyStream, n: int, count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Examine the next ``count`` candidates without consuming them.

    Returns the accepted values in stream order, the stream offset just past
    each accepted candidate, and the bytes the ``count`` candidates span.
    """
    width, mask = integer_width(n)
    values = _little_endian(stream.peek(count * width), width) & mask
    accepted = np.flatnonzero(values < n)
    return values[accepted], (accepted + 1) * width, count * width


def _check_range(n: int) -> None:
    if not 1 <= n <= MAX_UNIFORM_RANGE:
        raise EncodingError(f"uniform draws need 1 <= n <= {MAX_UNIFORM_RANGE}")


def uniform_integer(stream: KeyStream, n: int) -> int:
    """One integer uniform on ``[0, n)``: :func:`uniform_integers` with one draw.

    Raises:
        EncodingError: ``n`` is not in ``[1, 2^32]``.
    """
    _check_range(n)
    width, mask = integer_width(n)
    while True:
        value = stream.read_int(width) & mask
        if value < n:
            return value


def uniform_integers(stream: KeyStream, n: int, count: int) -> npt.NDArray[np.int64]:
    """``count`` integers uniform on ``[0, n)``, by rejection sampling.

    Sequential definition (``specs/derivation.md`` 7.3.1): with ``b``
    the bit length of ``n - 1`` and ``w = max(1, ceil(b / 8))``, read ``w``
    bytes, interpret them little-endian, keep the low ``b`` bits; accept the
    value if it is below ``n``, else discard it and read again. ``n = 1``
    reads one byte per draw and always yields 0.

    Raises:
        EncodingError: ``n`` is not in ``[1, 2^32]`` or ``count`` is negative.
    """
    _check_range(n)
    if count < 0:
        raise EncodingError("the number of draws must not be negative")
    if count <= _SCALAR_DRAWS:
        return np.array([uniform_integer(stream, n) for _ in range(count)], dtype=np.int64)
    width, mask = integer_width(n)
    out = np.empty(count, dtype=np.int64)
    if n == mask + 1:
        # n is a power of two: every candidate is accepted.
        for start in range(0, count, _MAX_BLOCK):
            stop = min(start + _MAX_BLOCK, count)
            out[start:stop] = _little_endian(stream.read((stop - start) * width), width) & mask
        return out
    filled = 0
    while filled < count:
        need = count - filled
        # Each candidate is accepted with probability n / 2^b > 1/2; ask for
        # a few more than expected so one block usually suffices.
        block = min(_MAX_BLOCK, need * (mask + 1) // n + need // 16 + 16)
        values, ends, span = _candidates(stream, n, block)
        taken = values[:need]
        out[filled : filled + len(taken)] = taken
        filled += len(taken)
        # Consume up to the last candidate used; rejected candidates after it
        # belong to the next draw in the sequential definition.
        stream.advance(int(ends[need - 1]) if filled == count else span)
    return out


def distinct_uniform_integers(stream: KeyStream, n: int, count: int) -> npt.NDArray[np.int64]:
    """``count`` distinct integers from ``[0, n)`` in the order first drawn.

    Sequential definition (``specs/derivation.md`` 7.3.2): draw values
    one at a time as :func:`uniform_integers` does, skipping any value drawn
    before, until ``count`` distinct values are held.

    Raises:
        EncodingError: ``count`` is not in ``[0, n]``.
    """
    if not 0 <= count <= n:
        raise EncodingError("cannot draw more distinct values than there are")
    _, mask = integer_width(n)
    out = np.empty(count, dtype=np.int64)
    filled = 0
    while filled < count:
        need = count - filled
        # A candidate yields a new value with probability (n - filled) / 2^b.
        block = min(_MAX_BLOCK, need * (mask + 1) // (n - filled) + need // 8 + 16)
        values, ends, span = _candidates(stream, n, block)
        first = np.zeros(len(values), dtype=bool)
        first[np.unique(values, return_index=True)[1]] = True
        fresh = np.flatnonzero(first & ~np.isin(values, out[:filled]))[:need]
        out[filled : filled + len(fresh)] = values[fresh]
        filled += len(fresh)
        stream.advance(int(ends[fresh[-1]]) if filled == count else span)
    return out


def _exact_in_float32(low: float, width: float) -> bool:
    """Whether ``float32(low + width * (u / 2^24))`` is ``float32(u) * 2^-24``.

    Skipping "* 1.0" never changes a binary64 value; skipping "0.0 +" does
    not when the product cannot be -0.0, i.e. when width > 0. With neither
    (the range [0, 1)) every step is exact in binary32 too.
    """
    return width == 1.0 and low == 0.0


def _float32_values(
    ints: npt.NDArray[np.uint32],
    low: float,
    width: float,
    target: npt.NDArray[np.float32],
    scratch: npt.NDArray[np.float64] | None,
) -> None:
    """``target = float32(low + width * (ints / 2^24))`` (7.3.3), elementwise.

    ``scratch`` is a float64 array of ``ints``' shape, or None when
    :func:`_exact_in_float32` holds.
    """
    if scratch is None:
        # u < 2^24 converts to binary32 exactly and the product by 2^-24 is
        # exact: one binary32 multiplication gives the value.
        np.multiply(ints, _FLOAT32_UNIT, out=target, dtype=np.float32)
        return
    # u / 2^24 exactly, then width * that and low + that, each rounded in
    # binary64, and one rounding to binary32 on the assignment.
    np.multiply(ints, 1.0 / (1 << 24), out=scratch)
    if width != 1.0:
        np.multiply(scratch, width, out=scratch)
    if not (low == 0.0 and width > 0.0):
        np.add(scratch, low, out=scratch)
    target[...] = scratch


def uniform_float32_rows(
    keys: Sequence[bytes], low: float, high: float, out: npt.NDArray[np.float32]
) -> None:
    """Row ``r`` of ``out`` = :func:`uniform_float32` of the stream keyed by ``keys[r]``.

    ``out`` is a float32 array of shape ``(len(keys), count)``, written in place;
    each row is the first ``count`` values of a fresh stream, the same
    values as ``uniform_float32(KeyStream(key), low, high, count)``. Meant
    for many short rows: each row's keystream is written straight into a
    block of rows that is decoded at once, and the block's buffers (about
    15 bytes per value) are reused from block to block.

    Raises:
        EncodingError: a key is not 32 bytes.
    """
    rows, count = out.shape
    width = high - low
    # Value i is the little-endian 4-byte word at byte 3i masked to 24 bits,
    # so a row needs one keystream byte past its last value.
    span = 3 * count + 1
    block = max(1, min(rows, _FLOAT_ROWS_BLOCK // max(count, 1)))
    zeros = bytes(span)
    raw = np.empty((block, span), dtype=np.uint8)
    words = np.ndarray((block, count), dtype="<u4", buffer=raw, strides=(span, 3))
    ints = np.empty((block, count), dtype=np.uint32)
    scratch = None if _exact_in_float32(low, width) else np.empty((block, count), np.float64)
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        for row, key in enumerate(keys[start:stop]):
            _encryptor(key).update_into(zeros, raw[row])
        np.bitwise_and(words[: stop - start], 0xFFFFFF, out=ints[: stop - start])
        part = None if scratch is None else scratch[: stop - start]
        _float32_values(ints[: stop - start], low, width, out[start:stop], part)


def uniform_float32(
    stream: KeyStream, low: float, high: float, count: int
) -> npt.NDArray[np.float32]:
    """``count`` float32 values on ``[low, high)``, three bytes each.

    Definition (``specs/derivation.md`` 7.3.3): ``u`` = 3 bytes
    little-endian; ``float32(low + (high - low) * (u / 2^24))`` with every
    operation in IEEE binary64 and one final round-to-nearest-even to
    binary32. The rounding may give exactly ``high``.
    """
    out = np.empty(count, dtype=np.float32)
    width = high - low
    block = min(count, _FLOAT_BLOCK)
    # Decoded a block at a time into reused buffers: float64 temporaries of a
    # whole input (1.2 MB for 3x224x224) cost more in page faults than the
    # arithmetic.
    u = np.empty(block, dtype=np.uint32)
    value = None if _exact_in_float32(low, width) else np.empty(block, dtype=np.float64)
    for chunk in range(0, count, _MAX_BLOCK):
        values = min(_MAX_BLOCK, count - chunk)
        # Value i is the little-endian 4-byte word at byte 3i, masked to 24
        # bits: a strided view of the keystream, which needs one byte past
        # the last value (peeked, not consumed).
        raw = stream.peek(3 * values + 1)
        words = np.ndarray((values,), dtype="<u4", buffer=raw, strides=(3,))
        for start in range(0, values, block):
            stop = min(start + block, values)
            ints = u[: stop - start]
            np.bitwise_and(words[start:stop], 0xFFFFFF, out=ints)
            scratch = None if value is None else value[: stop - start]
            _float32_values(ints, low, width, out[chunk + start : chunk + stop], scratch)
        stream.advance(3 * values)
    return out


def uniform_float64(stream: KeyStream, low: float, high: float) -> float:
    """One float64 on ``[low, high]`` from 53 bits.

    Definition (``specs/derivation.md`` 7.3.4): ``u`` = 7 bytes
    little-endian with the low 53 bits kept; ``low + (high - low) * (u / 2^53)``
    in IEEE binary64, then the smaller of that and ``high``. Rounding may
    give exactly ``high``; the final minimum only matters when ``high - low``
    is not a binary64 number and the product rounds up past it.

    The values are binary64 numbers, not a continuous uniform: the result is
    non-decreasing in ``u`` and within ``ulp(W) + ulp(|low| + W)`` of
    ``low + W * u / 2^53`` (``W = high - low`` rounded), which is all that
    ``RegressionLabels.p0_bound`` assumes (``specs/statistics.md`` 2.1).

    Raises:
        EncodingError: ``high - low`` overflows binary64.
    """
    width = high - low
    if not math.isfinite(width):
        raise EncodingError("the width of the range overflows float64")
    u = stream.read_int(7) & ((1 << 53) - 1)
    return min(low + width * (u / float(1 << 53)), high)
