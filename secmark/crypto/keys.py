"""Identity keys: one Ed25519 signing key, one ECVRF key, one X25519 key.

An owner or arbiter holds three independent keys, each used for one purpose
only: signing documents (Ed25519, RFC 8032), proving VRF outputs (ECVRF on
edwards25519, RFC 9381) and receiving sealed messages (X25519). Using the
signing key as the VRF key would be sound mathematically, but separate keys
keep each proof system's security argument free of the other's.

The public half is :class:`PublicKeys`; its :attr:`PublicKeys.key_id` is the
stable name of an identity.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError
from nacl.public import PrivateKey as X25519PrivateKey
from nacl.signing import SigningKey

from secmark.crypto.ecvrf import VrfPublicKey, VrfSecretKey
from secmark.encoding import b64url_encode, canonical_json
from secmark.errors import KeyMaterialError, SignatureError

__all__ = ["SUITE", "IdentityKeys", "PublicKeys", "verify_ed25519"]

SUITE = "secmark-v1"
"""The algorithm suite: Ed25519, ECVRF-EDWARDS25519-SHA512-TAI, X25519, SHA-256."""

_KEY_SIZE = 32


def _check_signing_key(data: bytes) -> bytes:
    if not isinstance(data, bytes) or len(data) != _KEY_SIZE:
        raise KeyMaterialError(f"an Ed25519 public key must be exactly {_KEY_SIZE} bytes long")
    if not sodium.crypto_core_ed25519_is_valid_point(data):
        raise KeyMaterialError(
            "the Ed25519 public key is not the canonical encoding of a point of the "
            "prime-order subgroup (small-order, torsion or non-canonical)"
        )
    return data


def _check_encryption_key(data: bytes) -> bytes:
    if not isinstance(data, bytes) or len(data) != _KEY_SIZE:
        raise KeyMaterialError(f"an X25519 public key must be exactly {_KEY_SIZE} bytes long")
    # libsodium refuses a Diffie-Hellman result of all zeros, which is what
    # every low-order point yields: one trial multiplication detects them.
    try:
        sodium.crypto_scalarmult(os.urandom(_KEY_SIZE), data)
    except SodiumRuntimeError:
        raise KeyMaterialError("the X25519 public key is a low-order point") from None
    return data


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Verify an Ed25519 signature, with libsodium's strict rules.

    The equation ``[S]B = R + [H(R || A || M)]A`` (cofactorless, RFC 8032
    5.1.7) is checked by OpenSSL through ``cryptography``, which reads
    ``message`` where it lies: libsodium's only binding here
    (``crypto_sign_open``) needs signature and message concatenated and
    writes the message out again, three copies of what may be a
    half-gigabyte transcript. libsodium's further rules are kept: S must be
    below the group order (OpenSSL checks it too), A a canonical point of
    the prime-order subgroup, and R canonical and not of small order; here R
    must be in the prime-order subgroup, as the R = [r]B of every honestly
    made signature is. So a signature is accepted only if libsodium's
    strict verification accepts it too.

    Raises:
        SignatureError: the signature is malformed or does not verify.
    """
    if len(signature) != 64:
        raise SignatureError("an Ed25519 signature must be exactly 64 bytes long")
    if not (
        len(public_key) == _KEY_SIZE
        and sodium.crypto_core_ed25519_is_valid_point(public_key)
        and sodium.crypto_core_ed25519_is_valid_point(signature[:32])
    ):
        raise SignatureError("the Ed25519 signature does not verify")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise SignatureError("the Ed25519 signature does not verify") from None


@dataclass(frozen=True)
class PublicKeys:
    """The public half of an identity; construct with :meth:`from_raw`."""

    signing_key: bytes
    vrf_key: VrfPublicKey
    encryption_key: bytes

    @classmethod
    def from_raw(cls, signing_key: bytes, vrf_key: bytes, encryption_key: bytes) -> PublicKeys:
        """Validate three raw 32-byte public keys.

        Raises:
            KeyMaterialError: a key has the wrong size, is not canonical, or is
                of small order.
        """
        return cls(
            _check_signing_key(signing_key),
            VrfPublicKey.from_public_bytes(vrf_key),
            _check_encryption_key(encryption_key),
        )

    def canonical_fields(self) -> dict[str, str]:
        """The keys as the JSON object that identity documents carry."""
        return {
            "encryption_key": b64url_encode(self.encryption_key),
            "signing_key": b64url_encode(self.signing_key),
            "suite": SUITE,
            "vrf_key": b64url_encode(self.vrf_key.public_bytes_raw()),
        }

    @property
    def key_id(self) -> str:
        """Lower-case hex SHA-256 of the canonical JSON of :meth:`canonical_fields`."""
        return hashlib.sha256(canonical_json(self.canonical_fields())).hexdigest()


class IdentityKeys:
    """The three secret keys of an identity, each kept as its 32-byte seed."""

    SEED_SIZE: ClassVar[int] = 32

    def __init__(self, signing_seed: bytes, vrf_seed: bytes, encryption_key: bytes) -> None:
        """Rebuild an identity from its secrets.

        Raises:
            KeyMaterialError: a secret is not 32 bytes.
        """
        for name, value in (
            ("signing seed", signing_seed),
            ("VRF seed", vrf_seed),
            ("encryption key", encryption_key),
        ):
            if not isinstance(value, bytes) or len(value) != self.SEED_SIZE:
                raise KeyMaterialError(f"the {name} must be exactly {self.SEED_SIZE} bytes long")
        self._signing = SigningKey(signing_seed)
        self._vrf = VrfSecretKey(vrf_seed)
        self._encryption = X25519PrivateKey(encryption_key)
        self._public = PublicKeys(
            bytes(self._signing.verify_key),
            self._vrf.public_key,
            bytes(self._encryption.public_key),
        )

    @classmethod
    def generate(cls) -> IdentityKeys:
        """Three fresh keys from the operating system's CSPRNG."""
        return cls(os.urandom(32), os.urandom(32), os.urandom(32))

    def __repr__(self) -> str:
        return f"IdentityKeys(key_id={self._public.key_id})"

    @property
    def public_keys(self) -> PublicKeys:
        return self._public

    @property
    def key_id(self) -> str:
        return self._public.key_id

    @property
    def vrf(self) -> VrfSecretKey:
        return self._vrf

    @property
    def encryption_key(self) -> X25519PrivateKey:
        return self._encryption

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        return self._signing.sign(message).signature

    def secret_fields(self) -> dict[str, bytes]:
        """The three secrets, for the key file only."""
        return {
            "encryption_key": bytes(self._encryption),
            "signing_seed": bytes(self._signing),
            "vrf_seed": bytes(self._vrf),
        }
