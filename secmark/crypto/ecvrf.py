"""ECVRF on edwards25519 with SHA-512 (RFC 9381): suites TAI (0x03) and ELL2 (0x04).

The construction of RFC 9381 section 5, composed from libsodium's
edwards25519 group operations as PyNaCl binds them. secmark's protocol uses
TAI (:data:`TAI`); ELL2 (:data:`ELL2`, whose encode-to-curve is RFC 9380's,
see :mod:`secmark.crypto.h2c`) is provided for interoperability. Nothing here implements
field or group arithmetic: the only integer arithmetic is on scalars modulo
the group order and on the encoding checks of RFC 8032 section 5.1.3.

A verifier in this module is stricter than RFC 9381 requires in one respect,
stated in ``specs/``: the proof's Gamma must be the canonical encoding of a
point of the prime-order subgroup. Honest provers always produce such a Gamma;
accepting torsion components would let anyone derive a second valid proof
with the same output from a given one, and secmark relies on proofs being
non-malleable.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from secmark.crypto import h2c
from secmark.errors import KeyMaterialError, ProofError

__all__ = [
    "ELL2",
    "OUTPUT_SIZE",
    "PROOF_SIZE",
    "SUITE_STRING",
    "TAI",
    "Suite",
    "VrfPublicKey",
    "VrfSecretKey",
    "proof_to_hash",
]

SUITE_STRING = b"\x03"
"""Suite identifier of ECVRF-EDWARDS25519-SHA512-TAI, the suite of secmark-v1."""

PROOF_SIZE = 80
"""Bytes in a proof: Gamma (32) || c (16) || s (32)."""

OUTPUT_SIZE = 64
"""Bytes in a VRF output (beta)."""

_POINT_SIZE = 32
_CHALLENGE_SIZE = 16
_SCALAR_SIZE = 32

# Group order of edwards25519 and the field prime (RFC 8032 section 5.1).
_Q = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19

_IDENTITY = b"\x01" + bytes(31)
_ELL2_DST = b"ECVRF_edwards25519_XMD:SHA-512_ELL2_NU_\x04"
# Encodings whose x coordinate is zero (y = 1 and y = -1): RFC 8032 decoding
# fails for them when the sign bit is set.
_ZERO_X_Y_VALUES = (1, _P - 1)
_MAX_TAI_COUNTER = 255


def _scalar_bytes(value: int) -> bytes:
    return value.to_bytes(_SCALAR_SIZE, "little")


def _is_canonical_encoding(encoded: bytes) -> bool:
    """RFC 8032 section 5.1.3 steps 1 and 4: y < p, and no sign bit on x = 0."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    if y >= _P:
        return False
    sign_bit = encoded[31] >> 7
    return not (sign_bit and y in _ZERO_X_Y_VALUES)


def _mul(scalar: int, point: bytes) -> bytes:
    """scalar * point for a point of the prime-order subgroup.

    libsodium refuses to return the identity, so a scalar that is zero modulo
    the group order is answered here instead of inside the library.
    """
    scalar %= _Q
    if scalar == 0:
        return _IDENTITY
    return sodium.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(scalar), point)


def _mul_base(scalar: int) -> bytes:
    scalar %= _Q
    if scalar == 0:
        return _IDENTITY
    return sodium.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(scalar))


def _times_cofactor(point: bytes) -> bytes:
    """8 * point by three doublings; raises if the point is not on the curve.

    Doubling with ``crypto_core_ed25519_add`` works for every curve point,
    including those with a torsion component, unlike the scalar
    multiplications, which accept only the prime-order subgroup.
    """
    for _ in range(3):
        point = sodium.crypto_core_ed25519_add(point, point)
    return point


def _encode_to_curve(public_key: bytes, alpha: bytes) -> bytes:
    """ECVRF_encode_to_curve_try_and_increment (RFC 9381 section 5.4.1.1)."""
    prefix = SUITE_STRING + b"\x01" + public_key + alpha
    for counter in range(_MAX_TAI_COUNTER + 1):
        candidate = hashlib.sha512(prefix + bytes((counter, 0))).digest()[:_POINT_SIZE]
        if not _is_canonical_encoding(candidate):
            continue
        try:
            point = _times_cofactor(candidate)
        except SodiumRuntimeError:
            continue  # not the encoding of a curve point
        if point != _IDENTITY:
            return point
    # Each try succeeds with probability about 1/2: 256 failures do not happen.
    raise ProofError("encode_to_curve found no point in 256 tries")


def _encode_to_curve_ell2(public_key: bytes, alpha: bytes) -> bytes:
    """ECVRF_encode_to_curve_h2c_suite (RFC 9381 section 5.4.1.2)."""
    point = h2c.encode_to_curve(public_key + alpha, _ELL2_DST)
    if point == _IDENTITY:
        raise ProofError("encode_to_curve gave the identity")  # probability about 2^-252
    return point


@dataclass(frozen=True)
class Suite:
    """An ECVRF ciphersuite on edwards25519 with SHA-512."""

    name: str
    suite_string: bytes
    encode_to_curve: Callable[[bytes, bytes], bytes]


TAI = Suite("ECVRF-EDWARDS25519-SHA512-TAI", SUITE_STRING, _encode_to_curve)
"""Try-and-increment encode-to-curve (suite 0x03): the suite of secmark-v1."""

ELL2 = Suite("ECVRF-EDWARDS25519-SHA512-ELL2", b"\x04", _encode_to_curve_ell2)
"""Elligator 2 encode-to-curve of RFC 9380 (suite 0x04)."""


def _challenge(suite: Suite, *points: bytes) -> int:
    """ECVRF_challenge_generation (RFC 9381 section 5.4.3)."""
    digest = hashlib.sha512(suite.suite_string + b"\x02" + b"".join(points) + b"\x00").digest()
    return int.from_bytes(digest[:_CHALLENGE_SIZE], "little")


def _cleared_to_hash(suite: Suite, cleared: bytes) -> bytes:
    """ECVRF_proof_to_hash (RFC 9381 section 5.2) steps 4 to 6 from cofactor * Gamma."""
    return hashlib.sha512(suite.suite_string + b"\x03" + cleared + b"\x00").digest()


def _gamma_to_hash(suite: Suite, gamma: bytes) -> bytes:
    return _cleared_to_hash(suite, _times_cofactor(gamma))


_INVALID_GAMMA = (
    "the proof's Gamma is not the canonical encoding of a point of the prime-order subgroup"
)


def _decode_proof(proof: bytes, *, check_gamma: bool = True) -> tuple[bytes, int, int]:
    """ECVRF_decode_proof (RFC 9381 section 5.4.4), with Gamma in the subgroup.

    ``check_gamma=False`` leaves the check of Gamma to the caller, which must
    then pass Gamma to a libsodium scalar multiplication (which refuses the
    same points) before trusting it.
    """
    if not isinstance(proof, bytes) or len(proof) != PROOF_SIZE:
        raise ProofError(f"a VRF proof must be exactly {PROOF_SIZE} bytes long")
    gamma = proof[:_POINT_SIZE]
    if check_gamma and not sodium.crypto_core_ed25519_is_valid_point(gamma):
        raise ProofError(_INVALID_GAMMA)
    c = int.from_bytes(proof[_POINT_SIZE : _POINT_SIZE + _CHALLENGE_SIZE], "little")
    s = int.from_bytes(proof[_POINT_SIZE + _CHALLENGE_SIZE :], "little")
    if s >= _Q:
        raise ProofError("the proof's scalar s is not reduced modulo the group order")
    return gamma, c, s


def proof_to_hash(proof: bytes, *, suite: Suite = TAI) -> bytes:
    """ECVRF_proof_to_hash (RFC 9381 section 5.2): the 64-byte output beta.

    This does not verify the proof; use :meth:`VrfPublicKey.verify` on any proof
    that was not just produced by :meth:`VrfSecretKey.prove`.

    Raises:
        ProofError: the proof cannot be decoded.
    """
    gamma, _, _ = _decode_proof(proof)
    return _gamma_to_hash(suite, gamma)


@dataclass(frozen=True)
class VrfPublicKey:
    """A validated ECVRF public key: a prime-order point other than the identity."""

    SIZE: ClassVar[int] = _POINT_SIZE
    _encoded: bytes

    def __post_init__(self) -> None:
        """Every key is validated, however it is built: a key that could
        reach :meth:`verify` unchecked would make libsodium raise there.

        Raises:
            KeyMaterialError: as :meth:`from_public_bytes`.
        """
        if not isinstance(self._encoded, bytes) or len(self._encoded) != self.SIZE:
            raise KeyMaterialError(f"a VRF public key must be exactly {self.SIZE} bytes long")
        if not sodium.crypto_core_ed25519_is_valid_point(self._encoded):
            raise KeyMaterialError(
                "the VRF public key is not the canonical encoding of a point of the "
                "prime-order subgroup (small-order, torsion or non-canonical)"
            )

    @classmethod
    def from_public_bytes(cls, data: bytes) -> VrfPublicKey:
        """Validate and wrap a 32-byte encoded public key.

        RFC 9381's ECVRF_validate_key rejects small-order keys; this also
        rejects non-canonical encodings and points with a torsion component,
        which no honest key generation produces.

        Raises:
            KeyMaterialError: the bytes are not such a key.
        """
        return cls(data)

    def public_bytes_raw(self) -> bytes:
        return self._encoded

    def __bytes__(self) -> bytes:
        return self._encoded

    def verify(self, alpha: bytes, proof: bytes, *, suite: Suite = TAI) -> bytes:
        """ECVRF_verify (RFC 9381 section 5.3): return beta if the proof holds.

        Raises:
            ProofError: the proof is malformed or does not prove ``alpha``
                under this key.
        """
        # Gamma is checked once, by the scalar multiplication c * Gamma:
        # libsodium refuses a non-canonical encoding, a point off the curve,
        # of small order or outside the prime-order subgroup, exactly what
        # crypto_core_ed25519_is_valid_point refuses (PITFALLS). Only c = 0
        # skips that multiplication, so only then is Gamma checked apart.
        gamma, c, s = _decode_proof(proof, check_gamma=False)
        if c == 0 and not sodium.crypto_core_ed25519_is_valid_point(gamma):
            raise ProofError(_INVALID_GAMMA)
        try:
            c_gamma = _mul(c, gamma)
        except SodiumRuntimeError:
            raise ProofError(_INVALID_GAMMA) from None
        h = suite.encode_to_curve(self._encoded, alpha)
        u = sodium.crypto_core_ed25519_sub(_mul_base(s), _mul(c, self._encoded))
        v = sodium.crypto_core_ed25519_sub(_mul(s, h), c_gamma)
        expected = _challenge(suite, self._encoded, h, gamma, u, v)
        if not hmac.compare_digest(_scalar_bytes(c), _scalar_bytes(expected)):
            raise ProofError("the VRF proof does not verify for this key and input")
        return _gamma_to_hash(suite, gamma)


class VrfSecretKey:
    """An ECVRF secret key, kept as its 32-byte seed (RFC 9381 ``SK``)."""

    SEED_SIZE: ClassVar[int] = 32

    def __init__(self, seed: bytes) -> None:
        """Expand a 32-byte seed as RFC 8032 section 5.1.5 does.

        Raises:
            KeyMaterialError: the seed is not 32 bytes.
        """
        if not isinstance(seed, bytes) or len(seed) != self.SEED_SIZE:
            raise KeyMaterialError(f"a VRF seed must be exactly {self.SEED_SIZE} bytes long")
        expanded = bytearray(hashlib.sha512(seed).digest())
        expanded[0] &= 248
        expanded[31] &= 127
        expanded[31] |= 64
        self._seed = seed
        self._x = int.from_bytes(expanded[:32], "little") % _Q
        # cofactor * x: (8x) * H = 8 * (x * H) = 8 * Gamma for H in the
        # prime-order subgroup, which both suites' encode_to_curve return.
        self._x_cleared = 8 * self._x % _Q
        self._nonce_key = bytes(expanded[32:])
        self._public_key = VrfPublicKey(_mul_base(self._x))

    def __bytes__(self) -> bytes:
        return self._seed

    def __repr__(self) -> str:
        return f"VrfSecretKey(public_key={self._public_key.public_bytes_raw().hex()})"

    @property
    def public_key(self) -> VrfPublicKey:
        return self._public_key

    def prove(self, alpha: bytes, *, suite: Suite = TAI) -> bytes:
        """ECVRF_prove (RFC 9381 section 5.1): the 80-byte proof pi for ``alpha``."""
        y = self._public_key.public_bytes_raw()
        h = suite.encode_to_curve(y, alpha)
        gamma = _mul(self._x, h)
        # ECVRF_nonce_generation_RFC8032 (RFC 9381 section 5.4.2.2).
        k = int.from_bytes(hashlib.sha512(self._nonce_key + h).digest(), "little") % _Q
        c = _challenge(suite, y, h, gamma, _mul_base(k), _mul(k, h))
        s = (k + c * self._x) % _Q
        return gamma + c.to_bytes(_CHALLENGE_SIZE, "little") + _scalar_bytes(s)

    def prove_and_hash(self, alpha: bytes, *, suite: Suite = TAI) -> tuple[bytes, bytes]:
        """(pi, beta) for ``alpha``: the proof and the output it proves."""
        proof = self.prove(alpha, suite=suite)
        return proof, _gamma_to_hash(suite, proof[:_POINT_SIZE])

    def hash(self, alpha: bytes, *, suite: Suite = TAI) -> bytes:
        """beta for ``alpha`` without its proof: ``prove_and_hash(alpha)[1]``, byte for byte.

        The output is ECVRF_proof_to_hash of the proof :meth:`prove` would
        give, computed from RFC 9381 section 5.2's ``cofactor * Gamma`` as
        ``(8x mod q) * H``: one scalar multiplication after encode_to_curve,
        about half the work of a proof. Make the proof with :meth:`prove`
        when it is to be shown.
        """
        h = suite.encode_to_curve(self._public_key.public_bytes_raw(), alpha)
        return _cleared_to_hash(suite, _mul(self._x_cleared, h))
