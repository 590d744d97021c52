"""Primitives: ECVRF, identity keys, passphrase boxes and key files."""

from __future__ import annotations

from secmark.crypto.ecvrf import ELL2, TAI, Suite, VrfPublicKey, VrfSecretKey, proof_to_hash
from secmark.crypto.keyfile import (
    decode_key_file,
    encode_key_file,
    read_key_file,
    write_key_file,
)
from secmark.crypto.keys import SUITE, IdentityKeys, PublicKeys, verify_ed25519
from secmark.crypto.passphrase_box import INTERACTIVE_KDF, MODERATE_KDF, KdfParams

__all__ = [
    "ELL2",
    "INTERACTIVE_KDF",
    "MODERATE_KDF",
    "SUITE",
    "TAI",
    "IdentityKeys",
    "KdfParams",
    "PublicKeys",
    "Suite",
    "VrfPublicKey",
    "VrfSecretKey",
    "decode_key_file",
    "encode_key_file",
    "proof_to_hash",
    "read_key_file",
    "verify_ed25519",
    "write_key_file",
]
