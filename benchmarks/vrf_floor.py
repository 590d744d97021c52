"""The least libsodium work each ECVRF operation needs, as bare calls.

A floor replays no recorded calls: it is the operation count of RFC 9381
(suite ECVRF-EDWARDS25519-SHA512-TAI), each group operation done once with
PyNaCl's bindings on arguments prepared beforehand, so that nothing but the
unavoidable calls and SHA-512 is timed. Per input:

encode_to_curve (5.4.1.1), in every floor
    SHA-512 of each try; one decoding attempt (a refused
    ``crypto_core_ed25519_add``) for each candidate that is a canonical
    encoding but not a curve point; three doublings to clear the cofactor of
    the accepted one (only ``add`` takes points outside the subgroup).
beta (5.1 then 5.2, no proof)
    one scalar multiplication ``(8x mod q) * H``, which is ``cofactor * Gamma``
    (H is in the prime-order subgroup and the secret x is at hand), and
    SHA-512: nothing more can be left out (``x * H`` followed by three
    doublings does the same work with three more group operations).
prove (5.1)
    ``Gamma = x * H``, ``k * B``, ``k * H``: three scalar multiplications;
    SHA-512 for the nonce and the challenge.
verify (5.3, then 5.2 for beta)
    ``s * B``, ``c * Y``, ``s * H``, ``c * Gamma``: four scalar
    multiplications; ``U = s*B - c*Y`` and ``V = s*H - c*Gamma``: two
    subtractions; ``cofactor * Gamma`` for beta: three doublings (no secret
    scalar to fold it into); SHA-512 for the challenge and beta. The
    subtractions and doublings are as necessary as the multiplications;
    ``verify, multiplications only`` leaves them out for comparison.

Every libsodium scalar multiplication validates its point (canonical, on the
curve, in the prime-order subgroup); that cost is inside the floor, so a
separate ``is_valid_point`` of the same point counts as overhead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from secmark.crypto import ecvrf
from secmark.crypto.ecvrf import VrfSecretKey

__all__ = ["Floors", "prepare"]

_Q = 2**252 + 27742317777372353535851937790883648493
_sha512 = hashlib.sha512
_add = sodium.crypto_core_ed25519_add
_sub = sodium.crypto_core_ed25519_sub
_mul = sodium.crypto_scalarmult_ed25519_noclamp
_mul_base = sodium.crypto_scalarmult_ed25519_base_noclamp
_BETA_PREFIX = ecvrf.SUITE_STRING + b"\x03"


@dataclass(frozen=True)
class _Encode:
    """One input's encode_to_curve: its hash inputs and its candidates."""

    hash_inputs: tuple[bytes, ...]
    refused: tuple[bytes, ...]
    candidate: bytes
    point: bytes


def _encode(public_key: bytes, alpha: bytes) -> _Encode:
    prefix = ecvrf.SUITE_STRING + b"\x01" + public_key + alpha
    hash_inputs, refused = [], []
    for counter in range(256):
        data = prefix + bytes((counter, 0))
        hash_inputs.append(data)
        candidate = _sha512(data).digest()[:32]
        if not ecvrf._is_canonical_encoding(candidate):
            continue
        try:
            _add(candidate, candidate)
        except SodiumRuntimeError:
            refused.append(candidate)
            continue
        point = ecvrf._encode_to_curve(public_key, alpha)
        return _Encode(tuple(hash_inputs), tuple(refused), candidate, point)
    raise AssertionError("encode_to_curve found no point")


def _encode_floor(step: _Encode) -> None:
    for data in step.hash_inputs:
        _sha512(data).digest()
    for candidate in step.refused:
        try:
            _add(candidate, candidate)
        except SodiumRuntimeError:
            pass
    point = _add(step.candidate, step.candidate)
    point = _add(point, point)
    _add(point, point)


def _scalar(value: int) -> bytes:
    return (value % _Q).to_bytes(32, "little")


@dataclass(frozen=True)
class Floors:
    """Floor functions over prepared inputs; each runs once per input."""

    beta: Callable[[], None]
    prove: Callable[[], None]
    verify: Callable[[], None]
    verify_multiplications: Callable[[], None]


def prepare(secret: VrfSecretKey, alphas: Sequence[bytes], proofs: Sequence[bytes]) -> Floors:
    """Floors for ``alphas`` under ``secret``; ``proofs`` are their proofs (for verify)."""
    public_key = secret.public_key.public_bytes_raw()
    steps = [_encode(public_key, alpha) for alpha in alphas]
    x = secret._x
    x_bytes, x8_bytes = _scalar(x), _scalar(8 * x)
    nonce_key = bytes(32)
    # The challenge's SHA-512 input has the right length (its contents do
    # not change the cost); beta's is built as the code must build it.
    challenge_input = bytes(2 + 5 * 32 + 1)
    nonces = [
        _scalar(int.from_bytes(_sha512(nonce_key + s.point).digest(), "little")) for s in steps
    ]
    decoded = [
        (
            proof[:32],
            _scalar(int.from_bytes(proof[32:48], "little")),
            proof[48:],
        )
        for proof in proofs
    ]

    def beta() -> None:
        for step in steps:
            _encode_floor(step)
            _sha512(_BETA_PREFIX + _mul(x8_bytes, step.point) + b"\x00").digest()

    def prove() -> None:
        for step, k in zip(steps, nonces):
            _encode_floor(step)
            _mul(x_bytes, step.point)
            _sha512(nonce_key + step.point).digest()
            _mul_base(k)
            _mul(k, step.point)
            _sha512(challenge_input).digest()

    def verify() -> None:
        for step, (gamma, c, s) in zip(steps, decoded):
            _encode_floor(step)
            _sub(_mul_base(s), _mul(c, public_key))
            _sub(_mul(s, step.point), _mul(c, gamma))
            _sha512(challenge_input).digest()
            cleared = _add(gamma, gamma)
            cleared = _add(cleared, cleared)
            _sha512(_BETA_PREFIX + _add(cleared, cleared) + b"\x00").digest()

    def verify_multiplications() -> None:
        for step, (gamma, c, s) in zip(steps, decoded):
            _encode_floor(step)
            _mul_base(s)
            _mul(c, public_key)
            _mul(s, step.point)
            _mul(c, gamma)

    return Floors(beta, prove, verify, verify_multiplications)
