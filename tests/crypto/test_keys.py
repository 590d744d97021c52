"""Identity keys and key files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from nacl import bindings as sodium

from secmark.crypto import (
    INTERACTIVE_KDF,
    IdentityKeys,
    PublicKeys,
    decode_key_file,
    encode_key_file,
    read_key_file,
    write_key_file,
)
from secmark.encoding import canonical_json
from secmark.errors import KeyMaterialError, SecmarkError
from tests.conftest import fixed_keys, flip_byte

ORDER_2_POINT = (2**255 - 20).to_bytes(32, "little")
PASSPHRASE = b"correct horse battery staple"


def test_key_id_is_sha256_of_canonical_public_keys(owner_keys: IdentityKeys) -> None:
    import hashlib

    fields = owner_keys.public_keys.canonical_fields()
    assert owner_keys.key_id == hashlib.sha256(canonical_json(fields)).hexdigest()
    assert set(fields) == {"encryption_key", "signing_key", "suite", "vrf_key"}


def test_the_three_keys_are_independent(owner_keys: IdentityKeys) -> None:
    public = owner_keys.public_keys
    assert len({public.signing_key, public.vrf_key.public_bytes_raw(), public.encryption_key}) == 3


def test_signatures_verify_under_the_public_signing_key(owner_keys: IdentityKeys) -> None:
    from secmark.crypto import verify_ed25519
    from secmark.errors import SignatureError

    signature = owner_keys.sign(b"message")
    verify_ed25519(owner_keys.public_keys.signing_key, b"message", signature)
    with pytest.raises(SignatureError):
        verify_ed25519(owner_keys.public_keys.signing_key, b"messagf", signature)


@pytest.mark.parametrize("which", ["signing", "vrf", "encryption"])
@pytest.mark.parametrize(
    "bad",
    [bytes(32), (1).to_bytes(32, "little"), ORDER_2_POINT, bytes(31)],
    ids=["zero", "identity", "order-2", "short"],
)
def test_weak_public_keys_are_refused(owner_keys: IdentityKeys, which: str, bad: bytes) -> None:
    public = owner_keys.public_keys
    keys = {
        "signing": public.signing_key,
        "vrf": public.vrf_key.public_bytes_raw(),
        "encryption": public.encryption_key,
    }
    keys[which] = bad
    with pytest.raises(KeyMaterialError):
        PublicKeys.from_raw(keys["signing"], keys["vrf"], keys["encryption"])


def test_mixed_order_signing_key_is_refused(owner_keys: IdentityKeys) -> None:
    public = owner_keys.public_keys
    mixed = sodium.crypto_core_ed25519_add(public.signing_key, ORDER_2_POINT)
    with pytest.raises(KeyMaterialError):
        PublicKeys.from_raw(mixed, public.vrf_key.public_bytes_raw(), public.encryption_key)


def test_key_file_round_trip(owner_keys: IdentityKeys) -> None:
    data = encode_key_file(owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF)
    assert decode_key_file(data, PASSPHRASE).key_id == owner_keys.key_id
    for secret in owner_keys.secret_fields().values():
        assert secret not in data


def test_wrong_passphrase_is_a_clear_error(owner_keys: IdentityKeys) -> None:
    data = encode_key_file(owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF)
    with pytest.raises(KeyMaterialError, match="wrong passphrase"):
        decode_key_file(data, b"not it")
    with pytest.raises(KeyMaterialError, match="passphrase is required"):
        decode_key_file(data, None)


@pytest.mark.parametrize("field", ["key_id", "nonce", "ciphertext", "kdf"])
def test_any_changed_field_is_detected(owner_keys: IdentityKeys, field: str) -> None:
    document = json.loads(encode_key_file(owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF))
    if field == "kdf":
        document["kdf"]["opslimit"] += 1
    elif field == "key_id":
        document["key_id"] = fixed_keys("other").key_id
    else:
        text = document[field]
        document[field] = ("B" if text[0] == "A" else "A") + text[1:]
    with pytest.raises(KeyMaterialError):
        decode_key_file(canonical_json(document), PASSPHRASE)


def test_every_byte_of_a_key_file_matters(owner_keys: IdentityKeys) -> None:
    data = encode_key_file(owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF)
    # Every tenth byte keeps the run short; each change must be refused.
    for position in range(0, len(data), 10):
        with pytest.raises(KeyMaterialError):
            decode_key_file(flip_byte(data, position), PASSPHRASE)


def test_hostile_kdf_cost_is_refused_before_deriving(owner_keys: IdentityKeys) -> None:
    document = json.loads(encode_key_file(owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF))
    document["kdf"]["memlimit"] = 2**52
    with pytest.raises(KeyMaterialError, match="memlimit"):
        decode_key_file(canonical_json(document), PASSPHRASE)


def test_unencrypted_only_when_asked(owner_keys: IdentityKeys) -> None:
    with pytest.raises(KeyMaterialError, match="passphrase is required"):
        encode_key_file(owner_keys, None)
    with pytest.raises(KeyMaterialError, match="not both"):
        encode_key_file(owner_keys, PASSPHRASE, unencrypted=True)
    data = encode_key_file(owner_keys, None, unencrypted=True)
    assert decode_key_file(data, None).key_id == owner_keys.key_id


def test_corrupted_unencrypted_file_is_detected(owner_keys: IdentityKeys) -> None:
    document = json.loads(encode_key_file(owner_keys, None, unencrypted=True))
    document["secrets"]["vrf_seed"] = document["secrets"]["signing_seed"]
    with pytest.raises(KeyMaterialError, match="corrupted"):
        decode_key_file(canonical_json(document), None)


def test_key_file_is_written_with_mode_0600_and_not_overwritten(
    tmp_path: Path, owner_keys: IdentityKeys
) -> None:
    path = tmp_path / "owner.key"
    write_key_file(path, owner_keys, PASSPHRASE, kdf=INTERACTIVE_KDF)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(SecmarkError, match="already exists"):
        write_key_file(path, fixed_keys("other"), PASSPHRASE, kdf=INTERACTIVE_KDF)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["owner.key"]
    assert read_key_file(path, PASSPHRASE).key_id == owner_keys.key_id


def test_key_file_readable_by_others_is_refused(tmp_path: Path, owner_keys: IdentityKeys) -> None:
    path = tmp_path / "owner.key"
    write_key_file(path, owner_keys, None, unencrypted=True)
    os.chmod(path, 0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        read_key_file(path, None)


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="cannot read key file"):
        read_key_file(tmp_path / "absent.key", PASSPHRASE)


def test_failed_write_leaves_nothing_behind(tmp_path: Path, owner_keys: IdentityKeys) -> None:
    with pytest.raises(KeyMaterialError):
        write_key_file(tmp_path / "owner.key", owner_keys, None)
    assert list(tmp_path.iterdir()) == []


def test_ed25519_verification_agrees_with_libsodium_strict_verification() -> None:
    """verify_ed25519 reads the message in place (OpenSSL) and keeps libsodium's
    rules: on valid, tampered, non-canonical-S and small-order-R signatures it
    accepts exactly what libsodium's crypto_sign_open accepts."""
    import random

    from nacl.signing import SigningKey, VerifyKey

    from secmark.crypto import verify_ed25519
    from secmark.errors import SignatureError

    order = 2**252 + 27742317777372353535851937790883648493
    rng = random.Random(7)

    def libsodium(key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            VerifyKey(key).verify(message, signature)
        except Exception:  # noqa: BLE001 - any refusal
            return False
        return True

    def ours(key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            verify_ed25519(key, message, signature)
        except SignatureError:
            return False
        return True

    for _ in range(200):
        signing = SigningKey(rng.randbytes(32))
        key, message = bytes(signing.verify_key), rng.randbytes(rng.randrange(64))
        signature = signing.sign(message).signature
        flipped = bytearray(signature)
        flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
        s = int.from_bytes(signature[32:], "little")
        for candidate in (
            signature,
            bytes(flipped),
            signature[:32] + (s + order).to_bytes(32, "little"),  # non-canonical S
            bytes(32) + signature[32:],  # R of small order
            b"\x01" + bytes(31) + signature[32:],  # R the identity
        ):
            assert ours(key, message, candidate) == libsodium(key, message, candidate)
