"""Secrets at rest under a passphrase: Argon2id + XChaCha20-Poly1305 (libsodium).

A *passphrase box* is a canonical JSON object: the caller's header fields,
``protection``, the Argon2id parameters (``kdf``), a ``nonce`` and the
``ciphertext``. Every field but the ciphertext is the AEAD's associated data,
so a changed KDF cost, type or key id is detected like a changed ciphertext.
Key files and the built-in TSA's signing key are stored this way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nacl import bindings as sodium
from nacl import pwhash
from nacl.exceptions import CryptoError

from secmark.encoding import b64url_decode, b64url_encode, canonical_json
from secmark.errors import EncodingError, KeyMaterialError

__all__ = [
    "BOX_FIELDS",
    "INTERACTIVE_KDF",
    "MODERATE_KDF",
    "PROTECTED",
    "UNPROTECTED",
    "KdfParams",
    "open_box",
    "seal_box",
]

PROTECTED = "argon2id-xchacha20poly1305"
UNPROTECTED = "none"
BOX_FIELDS = frozenset({"protection", "kdf", "nonce", "ciphertext"})
"""The fields a sealed box adds to its header."""

_SALT_SIZE = pwhash.argon2id.SALTBYTES
_NONCE_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_KEY_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_TAG_SIZE = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
# A hostile file could otherwise ask Argon2id for gigabytes of memory.
_MAX_OPSLIMIT = pwhash.argon2id.OPSLIMIT_SENSITIVE
_MAX_MEMLIMIT = pwhash.argon2id.MEMLIMIT_SENSITIVE


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters (libsodium's opslimit and memlimit in bytes)."""

    opslimit: int
    memlimit: int


MODERATE_KDF = KdfParams(pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE)
"""The default: libsodium's recommendation for keys kept at rest (256 MiB)."""

INTERACTIVE_KDF = KdfParams(
    pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE
)
"""Cheaper parameters (64 MiB) for machines short of memory, and for tests."""


def _derive_key(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return pwhash.argon2id.kdf(
        _KEY_SIZE, passphrase, salt, opslimit=params.opslimit, memlimit=params.memlimit
    )


def seal_box(
    header: dict[str, Any], secret: bytes, passphrase: bytes, kdf: KdfParams = MODERATE_KDF
) -> bytes:
    """The canonical JSON of ``header`` with ``secret`` sealed under ``passphrase``.

    Raises:
        KeyMaterialError: the passphrase is empty.
        EncodingError: the header already uses a box field.
    """
    if not passphrase:
        raise KeyMaterialError("the passphrase is empty")
    if BOX_FIELDS & set(header):
        raise EncodingError(f"a box header may not use the fields {sorted(BOX_FIELDS)}")
    salt, nonce = os.urandom(_SALT_SIZE), os.urandom(_NONCE_SIZE)
    sealed = {
        **header,
        "kdf": {"memlimit": kdf.memlimit, "opslimit": kdf.opslimit, "salt": b64url_encode(salt)},
        "nonce": b64url_encode(nonce),
        "protection": PROTECTED,
    }
    ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        secret, canonical_json(sealed), nonce, _derive_key(passphrase, salt, kdf)
    )
    return canonical_json({**sealed, "ciphertext": b64url_encode(ciphertext)})


def _cost(kdf: dict[str, Any], name: str, upper: int) -> int:
    value = kdf[name]
    if type(value) is not int or not 1 <= value <= upper:
        raise EncodingError(f"KDF {name} must be an integer in [1, {upper}]")
    return value


def open_box(document: dict[str, Any], passphrase: bytes | None, *, what: str) -> bytes:
    """The secret of a parsed box (``protection`` already known to be protected).

    The caller checks the header's own fields; this checks the box fields.

    Raises:
        EncodingError: malformed box fields, or KDF costs above libsodium's
            SENSITIVE limits (refused before any work is done).
        KeyMaterialError: no passphrase, a wrong one, or a modified box.
    """
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or set(kdf) != {"memlimit", "opslimit", "salt"}:
        raise EncodingError(f"{what}: kdf must be an object with memlimit, opslimit, salt")
    params = KdfParams(_cost(kdf, "opslimit", _MAX_OPSLIMIT), _cost(kdf, "memlimit", _MAX_MEMLIMIT))
    salt = b64url_decode(kdf["salt"], what=f"{what} KDF salt", size=_SALT_SIZE)
    nonce = b64url_decode(document.get("nonce"), what=f"{what} nonce", size=_NONCE_SIZE)
    ciphertext = b64url_decode(document.get("ciphertext"), what=f"{what} ciphertext")
    if len(ciphertext) < _TAG_SIZE:
        # libsodium's binding fails on these with a bare ValueError.
        raise EncodingError(
            f"{what}: the ciphertext is {len(ciphertext)} bytes, shorter than the "
            f"{_TAG_SIZE}-byte Poly1305 tag every sealed secret carries"
        )
    if not passphrase:
        raise KeyMaterialError(f"{what} is encrypted: a passphrase is required")
    associated = {name: value for name, value in document.items() if name != "ciphertext"}
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, canonical_json(associated), nonce, _derive_key(passphrase, salt, params)
        )
    except CryptoError:
        raise KeyMaterialError(
            f"cannot open {what}: wrong passphrase, or the file was modified"
        ) from None
