"""Private key files: an identity's secrets, encrypted at rest.

A key file is canonical JSON. When protected, the secrets are encrypted with
XChaCha20-Poly1305 under a key derived from the passphrase by Argon2id (both
from libsodium); every other field of the file is bound to the ciphertext as
associated data, so a changed KDF parameter or key id is detected like a
changed ciphertext. An unprotected file holds the secrets in clear and exists
only when the caller asks for it explicitly.

Files are written atomically with mode 0600 and refused on load when other
users can read them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secmark.crypto.keys import SUITE, IdentityKeys
from secmark.crypto.passphrase_box import (
    MODERATE_KDF,
    PROTECTED,
    UNPROTECTED,
    KdfParams,
    open_box,
    seal_box,
)
from secmark.encoding import b64url_decode, b64url_encode, canonical_json, parse_canonical_json
from secmark.errors import EncodingError, KeyMaterialError, SecmarkError
from secmark.files import SECRET_FILE_MODE, open_regular_file, write_atomic

__all__ = [
    "decode_key_file",
    "encode_key_file",
    "read_key_file",
    "write_key_file",
]

_TYPE = "secmark.keyfile"
_VERSION = 1
# A key file is a few hundred bytes; the bound keeps a hostile file from
# making the parser work on megabytes.
_MAX_FILE_SIZE = 4096


def encode_key_file(
    keys: IdentityKeys,
    passphrase: bytes | None,
    *,
    kdf: KdfParams = MODERATE_KDF,
    unencrypted: bool = False,
) -> bytes:
    """The bytes of a key file holding ``keys``.

    Exactly one of ``passphrase`` and ``unencrypted=True`` must be given.

    Raises:
        KeyMaterialError: neither or both were given, or the passphrase is empty.
    """
    header: dict[str, Any] = {
        "key_id": keys.key_id,
        "suite": SUITE,
        "type": _TYPE,
        "version": _VERSION,
    }
    secrets = {name: b64url_encode(value) for name, value in keys.secret_fields().items()}
    if unencrypted:
        if passphrase is not None:
            raise KeyMaterialError("give a passphrase or ask for an unencrypted file, not both")
        return canonical_json({**header, "protection": UNPROTECTED, "secrets": secrets})
    if not passphrase:
        raise KeyMaterialError(
            "a passphrase is required to protect the key file; "
            "ask explicitly for an unencrypted file if it is stored elsewhere safely"
        )
    return seal_box(header, canonical_json(secrets), passphrase, kdf)


def _expect_keys(value: dict[str, Any], required: set[str]) -> None:
    if set(value) != required:
        missing = sorted(required - set(value))
        extra = sorted(set(value) - required)
        raise EncodingError(f"key file fields are wrong (missing {missing}, unexpected {extra})")


def _keys_from_secrets(secrets: Any, key_id: str) -> IdentityKeys:
    if not isinstance(secrets, dict):
        raise EncodingError("key file secrets must be a JSON object")
    _expect_keys(secrets, {"encryption_key", "signing_seed", "vrf_seed"})
    keys = IdentityKeys(
        b64url_decode(secrets["signing_seed"], what="signing seed", size=32),
        b64url_decode(secrets["vrf_seed"], what="VRF seed", size=32),
        b64url_decode(secrets["encryption_key"], what="encryption key", size=32),
    )
    if keys.key_id != key_id:
        raise KeyMaterialError("the key file is corrupted: its secrets do not match its key id")
    return keys


def decode_key_file(data: bytes, passphrase: bytes | None) -> IdentityKeys:
    """Open the bytes of a key file.

    Raises:
        KeyMaterialError: the file is protected and no passphrase, or a wrong
            one, was given, or the file was modified or corrupted.
    """
    try:
        document = parse_canonical_json(data, max_size=_MAX_FILE_SIZE, what="key file")
        if not isinstance(document, dict):
            raise EncodingError("a key file must be a JSON object")
        version = document.get("version")
        # type() first: true == 1 in Python, but "version": true is not 1.
        if document.get("type") != _TYPE or type(version) is not int or version != _VERSION:
            raise EncodingError(f"not a {_TYPE} version {_VERSION} file")
        suite = document.get("suite")
        if suite != SUITE:
            raise EncodingError(
                f"unsupported suite {suite!r:.80} (this secmark implements {SUITE})"
            )
        protection = document.get("protection")
        common = {"key_id", "protection", "suite", "type", "version"}
        if protection == UNPROTECTED:
            _expect_keys(document, common | {"secrets"})
            return _keys_from_secrets(document["secrets"], document["key_id"])
        if protection != PROTECTED:
            raise EncodingError(f"unknown key file protection {protection!r}")
        _expect_keys(document, common | {"ciphertext", "kdf", "nonce"})
        plaintext = open_box(document, passphrase, what="the key file")
    except EncodingError as error:
        raise KeyMaterialError(f"the key file is malformed: {error}") from None
    try:
        secrets = parse_canonical_json(plaintext, max_size=_MAX_FILE_SIZE, what="key file secrets")
        return _keys_from_secrets(secrets, document["key_id"])
    except EncodingError as error:
        raise KeyMaterialError(f"the key file is malformed: {error}") from None


def write_key_file(
    path: str | os.PathLike[str],
    keys: IdentityKeys,
    passphrase: bytes | None,
    *,
    kdf: KdfParams = MODERATE_KDF,
    unencrypted: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a key file atomically with mode 0600; see :func:`encode_key_file`."""
    data = encode_key_file(keys, passphrase, kdf=kdf, unencrypted=unencrypted)
    return write_atomic(path, data, mode=SECRET_FILE_MODE, overwrite=overwrite)


def read_key_file(
    path: str | os.PathLike[str],
    passphrase: bytes | None | Callable[[], bytes],
) -> IdentityKeys:
    """Read and open a key file; see :func:`decode_key_file`.

    ``passphrase`` may be a callable, asked only when the file is encrypted
    (so a command line prompts only when it must).

    Raises:
        KeyMaterialError: the file is missing, readable by other users, or
            cannot be opened.
    """
    target = Path(path)
    try:
        handle, info = open_regular_file(target, what="key file")
        with handle:
            data = handle.read(_MAX_FILE_SIZE + 1)
    except OSError as error:
        raise KeyMaterialError(f"cannot read key file {target}: {error.strerror}") from None
    except SecmarkError as error:
        raise KeyMaterialError(str(error)) from None
    mode = info.st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"key file {target} is accessible by other users; run: chmod 600 {target}"
        )
    if callable(passphrase):
        passphrase = passphrase() if _is_protected(data) else None
    return decode_key_file(data, passphrase)


def _is_protected(data: bytes) -> bool:
    try:
        document = parse_canonical_json(data, max_size=_MAX_FILE_SIZE, what="key file")
    except EncodingError:
        return True  # let decode_key_file report the malformation
    return not (isinstance(document, dict) and document.get("protection") == UNPROTECTED)
