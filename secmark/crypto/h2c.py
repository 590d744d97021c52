"""RFC 9380 encode_to_curve for edwards25519 (``edwards25519_XMD:SHA-512_ELL2_NU_``).

Used by the ECVRF-EDWARDS25519-SHA512-ELL2 suite (RFC 9381 section 5.5). The
point is computed by libsodium's ``crypto_core_ed25519_from_uniform``, which
performs Elligator 2, the map to edwards25519 and cofactor clearing; it takes
the sign of the Edwards x coordinate as an input bit, and its own choice of
sign differs from RFC 9380's. So the only arithmetic here is the RFC's
``expand_message_xmd`` and the few field operations that decide that sign
(RFC 9380 sections 6.7.1 and 6.8.2).
"""

from __future__ import annotations

import hashlib

from nacl import bindings as sodium

__all__ = ["encode_to_curve"]

_P = 2**255 - 19
_J = 486662  # the Montgomery A of curve25519 (K = 1)
_Z = 2  # RFC 9380 section 4.1: the Elligator 2 constant of curve25519
_L = 48  # ceil((ceil(log2(p)) + k) / 8) with k = 128
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    blocks = -(-length // 64)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + message + length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0_digest = b0.digest()
    out = [hashlib.sha512(b0_digest + b"\x01" + dst_prime).digest()]
    for index in range(2, blocks + 1):
        mixed = bytes(x ^ y for x, y in zip(b0_digest, out[-1]))
        out.append(hashlib.sha512(mixed + bytes([index]) + dst_prime).digest())
    return b"".join(out)[:length]


def _is_square(value: int) -> bool:
    return value == 0 or pow(value, (_P - 1) // 2, _P) == 1


def _sqrt(value: int) -> int:
    root = pow(value, (_P + 3) // 8, _P)
    if (root * root - value) % _P:
        root = root * _SQRT_M1 % _P
    return root


def _with_sign(value: int, sign: int) -> int:
    return value if value % 2 == sign else (_P - value) % _P


def _edwards_x_sign(u: int) -> int:
    """sgn0 of the Edwards x of map_to_curve_elligator2_edwards25519(u)."""
    denominator = (1 + _Z * u * u) % _P
    x1 = (-_J * pow(denominator, _P - 2, _P)) % _P if denominator else (-_J) % _P
    gx1 = (x1 * x1 * x1 + _J * x1 * x1 + x1) % _P
    if _is_square(gx1):
        x, y = x1, _with_sign(_sqrt(gx1), 1)
    else:
        x2 = (-x1 - _J) % _P
        x, y = x2, _with_sign(_sqrt((x2 * x2 * x2 + _J * x2 * x2 + x2) % _P), 0)
    c1 = _with_sign(_sqrt(_P - 486664), 0)  # sqrt(-486664) with sgn0 = 0
    v = c1 * x * pow(y, _P - 2, _P) % _P
    return v % 2


def encode_to_curve(message: bytes, dst: bytes) -> bytes:
    """encode_to_curve(message) of suite edwards25519_XMD:SHA-512_ELL2_NU_ under ``dst``."""
    u = int.from_bytes(_expand_message_xmd(message, dst, _L), "big") % _P
    field = bytearray(u.to_bytes(32, "little"))
    field[31] |= _edwards_x_sign(u) << 7
    return sodium.crypto_core_ed25519_from_uniform(bytes(field))
