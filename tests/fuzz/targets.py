"""The fuzz targets: one per decoder that reads bytes from a stranger.

A :class:`Target` names its seeds, the check that decodes an input (and
returns what it accepted, for the oracles), whether its content is signed,
and how to make a *re-signed* JSON-level mutation of a seed, so that the
signature checks pass and the parser behind them is exercised.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from secmark.crypto import IdentityKeys
from secmark.crypto.keyfile import decode_key_file, encode_key_file, read_key_file
from secmark.crypto.passphrase_box import seal_box
from secmark.encoding import canonical_json
from secmark.errors import KeyMaterialError, SecmarkError, SuspectError, TimestampError
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.challenge import open_challenge
from secmark.messages.claim import open_claim
from secmark.messages.commitment import open_commitment
from secmark.messages.document import encode_payload
from secmark.messages.identity import open_identity
from secmark.messages.release import open_release
from secmark.messages.reveal import RevealContents, open_reveal
from secmark.messages.transcript import open_transcript
from secmark.messages.verdict import open_verdict
from secmark.models.config import SuspectConfig
from secmark.models.json_api import JsonApiSuspect
from secmark.models.remote import OipSuspect
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.challenge import check_challenge_indices
from secmark.timestamp.authority import decode_tsa_key, encode_tsa_key
from secmark.timestamp.evidence import TimestampEvidence
from secmark.timestamp.verify import verify_timestamp
from secmark.triggers import read_trigger_set, verify_trigger_set
from secmark.triggers.trigger_set import ARRAY_NAMES, MANIFEST_NAME
from tests.conftest import fixed_keys
from tests.fuzz.corpus import (
    CHEAP_KDF,
    PASSPHRASE,
    corpus,
    json_api_responses,
    oip_responses,
    suspect_configs,
)
from tests.fuzz.mutate import mutate_json

__all__ = ["TARGETS", "RoundTripError", "Target"]


class RoundTripError(AssertionError):
    """An accepted input does not re-encode to the bytes read (two ids for one document)."""


@dataclass(frozen=True)
class Target:
    name: str
    seeds: Callable[[], list[bytes]]
    check: Callable[[bytes], Any]
    """Decode; return what was accepted (compared with the seed's for signed targets)."""
    signed: bool
    """A byte-level mutation accepted as other content than its seed's is a forgery."""
    expected: type[SecmarkError] = SecmarkError
    resign: Callable[[bytes, random.Random], bytes | None] | None = None
    """A JSON-level mutation of a seed, re-signed (or re-sealed) so that it
    passes the signature check; None where the target has no signature."""
    edit: Callable[[bytes, random.Random], bytes | None] | None = None
    """An unsigned JSON-level mutation of a seed (the forgery oracle applies
    to it as to byte-level ones); by default the seed parsed as JSON."""


def _round_trip(document: Any, payload: bytes) -> None:
    if encode_payload(document) != payload:
        raise RoundTripError("an accepted payload does not re-encode to the bytes read")


def _resign_with(
    keys: Callable[[], IdentityKeys],
) -> Callable[[bytes, random.Random], bytes | None]:
    def resign(seed: bytes, rng: random.Random) -> bytes | None:
        payload = json.loads(Envelope.from_json(seed).payload)
        mutated = mutate_json(payload, rng)
        if mutated is None:
            return None
        return Envelope.sign(PAYLOAD_TYPE, mutated, keys()).to_json()

    return resign


def _unsigned_json(seed: bytes, rng: random.Random) -> bytes | None:
    return mutate_json(json.loads(seed), rng)


def _document(
    name: str,
    seeds: Callable[[], list[bytes]],
    open_: Callable[[bytes], Any],
    signer: Callable[[], IdentityKeys],
    then: Callable[[Any], None] | None = None,
) -> Target:
    def check(data: bytes) -> bytes:
        signed = open_(data)
        _round_trip(signed.document, signed.payload)
        if then is not None:
            then(signed)
        return bytes(signed.payload)

    return Target(name, seeds, check, signed=True, resign=_resign_with(signer), edit=_unsigned_json)


def _owner() -> IdentityKeys:
    return corpus().owner


def _arbiter() -> IdentityKeys:
    return corpus().arbiter


def _claim_then(signed: Any) -> None:
    claim = signed.document
    open_commitment(claim.commitment)
    TimestampEvidence.from_json(claim.commitment_evidence)
    if claim.release is not None:
        open_release(claim.release, corpus().owner.public_keys)


def _challenge_then(signed: Any) -> None:
    check_challenge_indices(signed.document, corpus().arbiter.public_keys.vrf_key, 256)


def _reveal_then(signed: Any) -> None:
    contents = signed.document.open(corpus().arbiter.encryption_key)
    _round_trip(contents, contents.to_json())


def _reveal_contents(data: bytes) -> bytes:
    contents = RevealContents.from_json(data)
    _round_trip(contents, data)
    return data


def _evidence(data: bytes) -> bytes:
    evidence = TimestampEvidence.from_json(data)
    _round_trip(evidence, data)
    evidence.check(corpus().trust, now=corpus().now)
    return data


def _envelope(data: bytes) -> bytes:
    envelope = Envelope.from_json(data)
    envelope.verify(corpus().owner.public_keys)
    if envelope.to_json() != data:
        raise RoundTripError("an accepted envelope does not re-encode to the bytes read")
    return envelope.payload


def _bundle(data: bytes) -> bytes:
    verify_bundle(data, corpus().trust, arbiter_key_id=corpus().arbiter.key_id, now=corpus().now)
    return data


_BUNDLE_SIGNERS = {
    "challenge": _arbiter,
    "claim": _owner,
    "reveal": _owner,
    "transcript": _arbiter,
    "verdict": _arbiter,
}


def _bundle_resign(seed: bytes, rng: random.Random) -> bytes | None:
    """A member document's payload mutated and re-signed by its signer."""
    members = json.loads(seed)
    name = rng.choice(sorted(_BUNDLE_SIGNERS))
    document = _resign_with(_BUNDLE_SIGNERS[name])(members[name].encode(), rng)
    if document is None:
        return None
    members[name] = document.decode()
    return canonical_json(members)


# -- key files ------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _keyfile_seeds() -> list[bytes]:
    keys = corpus().owner
    return [
        encode_key_file(keys, PASSPHRASE, kdf=CHEAP_KDF),
        encode_key_file(keys, None, unencrypted=True),
    ]


def _clamped(scalar: bytes) -> bytes:
    """An X25519 secret as X25519 uses it (RFC 7748 5): bits 0-2 and 255
    cleared, bit 254 set. Secrets that differ only in those five bits are
    one key; an unprotected key file's integrity check (the key id) cannot
    and need not tell them apart (found by the key-file-path target)."""
    clamped = bytearray(scalar)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def _keys_content(keys: IdentityKeys) -> tuple[Any, ...]:
    secrets = keys.secret_fields()
    return (
        keys.key_id,
        secrets["signing_seed"],
        secrets["vrf_seed"],
        _clamped(secrets["encryption_key"]),
    )


def _keyfile(data: bytes) -> tuple[Any, ...]:
    return _keys_content(decode_key_file(data, PASSPHRASE))


def _keyfile_resign(seed: bytes, rng: random.Random) -> bytes | None:
    """The secrets mutated, then sealed again under the passphrase."""
    document = json.loads(seed)
    if document.get("protection") == "none":
        return None
    keys = corpus().owner
    secrets = {
        k: v
        for k, v in json.loads(encode_key_file(keys, None, unencrypted=True))["secrets"].items()
    }
    mutated = mutate_json(secrets, rng)
    if mutated is None:
        return None
    header = {k: document[k] for k in ("key_id", "suite", "type", "version")}
    return seal_box(header, mutated, PASSPHRASE, CHEAP_KDF)


def _keyfile_path(data: bytes) -> tuple[Any, ...]:
    path = corpus().folder / "fuzz.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return _keys_content(read_key_file(path, lambda: PASSPHRASE))


@functools.lru_cache(maxsize=1)
def _tsa_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _tsa_key_seeds() -> list[bytes]:
    return [encode_tsa_key(_tsa_key(), PASSPHRASE, kdf=CHEAP_KDF), encode_tsa_key(_tsa_key(), None)]


def _tsa_keyfile(data: bytes) -> int:
    passphrase = None if b'"protection":"none"' in data else PASSPHRASE
    key = decode_tsa_key(data, passphrase, what="the TSA key file")
    return key.private_numbers().private_value


# -- timestamp tokens, OIP responses, trigger sets ------------------------------


def _token(data: bytes) -> tuple[Any, ...]:
    verified = verify_timestamp(data, corpus().token_message, corpus().trust, now=corpus().now)
    return (verified.gen_time, verified.serial_number, verified.tsa_certificate_sha256)


@functools.lru_cache(maxsize=1)
def _oip_suspect() -> OipSuspect:
    return OipSuspect("http://127.0.0.1:9", "m", output="labels", output_name="label")


def _oip(data: bytes) -> bytes:
    _oip_suspect()._decode("application/json", data, rows=2)
    return data


@functools.lru_cache(maxsize=1)
def _unused_client() -> httpx.Client:
    return httpx.Client()


def _json_api(data: bytes) -> bytes:
    # A fresh adapter per input: a malformed answer stops an adapter for good.
    suspect = JsonApiSuspect(
        "http://127.0.0.1:9/predict",
        request={"instances": "{{inputs}}"},
        answers="/predictions",
        client=_unused_client(),
    )
    suspect._decode("application/json", data, rows=2)
    return data


def _suspect_config(data: bytes) -> str:
    return SuspectConfig.from_json(data, base=Path("/nonexistent")).reference()


_TRIGGER_FILES = (MANIFEST_NAME, *ARRAY_NAMES)


@functools.lru_cache(maxsize=1)
def _trigger_set_files() -> dict[str, bytes]:
    root = corpus().trigger_set
    return {name: (root / name).read_bytes() for name in _TRIGGER_FILES}


def _trigger_set_seeds() -> list[bytes]:
    files = _trigger_set_files()
    return [bytes([tag]) + files[name] for tag, name in enumerate(_TRIGGER_FILES)]


def _trigger_set(data: bytes) -> tuple[Any, ...]:
    """Replace one file of the set (the first byte says which); an array's
    digest in the manifest is updated (the 're-signing'), so the parser runs."""
    root: Path = corpus().trigger_set
    files = dict(_trigger_set_files())
    if not data:
        data = b"\x00"
    name = _TRIGGER_FILES[data[0] % len(_TRIGGER_FILES)]
    files[name] = data[1:]
    if name != MANIFEST_NAME:
        manifest = json.loads(files[MANIFEST_NAME])
        manifest["files"][name] = hashlib.sha256(files[name]).hexdigest()
        files[MANIFEST_NAME] = canonical_json(manifest)
    try:
        for file, content in files.items():
            os.chmod(root / file, 0o600)
            (root / file).write_bytes(content)
        trigger_set = read_trigger_set(root)
        verify_trigger_set(trigger_set, corpus().signed_commitment)
    finally:
        for file, content in _trigger_set_files().items():
            (root / file).write_bytes(content)
    return (
        canonical_json(trigger_set.manifest.to_fields()),
        trigger_set.indices.tobytes(),
        trigger_set.inputs.tobytes(),
        trigger_set.labels.tobytes(),
        trigger_set.proofs.tobytes(),
    )


def _trigger_set_json(seed: bytes, rng: random.Random) -> bytes | None:
    if seed[0] != 0:
        return None
    mutated = mutate_json(json.loads(seed[1:]), rng)
    return None if mutated is None else b"\x00" + mutated


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        _document(
            "identity",
            lambda: [corpus().identity],
            open_identity,
            lambda: fixed_keys("fuzz identity"),
        ),
        _document("commitment", lambda: corpus().commitments, open_commitment, _owner),
        _document(
            "release",
            lambda: [corpus().release],
            lambda d: open_release(d, corpus().owner.public_keys),
            _owner,
        ),
        _document(
            "claim",
            lambda: [corpus().claim],
            lambda d: open_claim(d, corpus().owner.public_keys),
            _owner,
            _claim_then,
        ),
        _document(
            "challenge",
            lambda: [corpus().challenge],
            lambda d: open_challenge(d, corpus().arbiter.public_keys),
            _arbiter,
            _challenge_then,
        ),
        _document(
            "reveal",
            lambda: [corpus().reveal],
            lambda d: open_reveal(d, corpus().owner.public_keys),
            _owner,
            _reveal_then,
        ),
        Target(
            "reveal-contents",
            lambda: [corpus().reveal_contents],
            _reveal_contents,
            signed=False,
            edit=_unsigned_json,
        ),
        _document(
            "transcript",
            lambda: [corpus().transcript],
            lambda d: open_transcript(d, corpus().arbiter.public_keys),
            _arbiter,
        ),
        _document(
            "verdict",
            lambda: [corpus().verdict],
            lambda d: open_verdict(d, corpus().arbiter.public_keys),
            _arbiter,
        ),
        Target(
            "timestamp-evidence",
            lambda: [corpus().evidence],
            _evidence,
            signed=False,
            edit=_unsigned_json,
        ),
        Target(
            "dsse-envelope",
            lambda: [corpus().release, corpus().claim],
            _envelope,
            signed=True,
            edit=_unsigned_json,
        ),
        Target(
            "bundle",
            lambda: [corpus().bundle],
            _bundle,
            signed=True,
            resign=_bundle_resign,
            edit=_unsigned_json,
        ),
        Target(
            "key-file",
            _keyfile_seeds,
            _keyfile,
            signed=True,
            expected=KeyMaterialError,
            resign=_keyfile_resign,
            edit=_unsigned_json,
        ),
        Target(
            "key-file-path",
            _keyfile_seeds,
            _keyfile_path,
            signed=True,
            expected=KeyMaterialError,
            resign=_keyfile_resign,
            edit=_unsigned_json,
        ),
        Target(
            "tsa-key-file",
            _tsa_key_seeds,
            _tsa_keyfile,
            signed=True,
            expected=KeyMaterialError,
            edit=_unsigned_json,
        ),
        Target(
            "timestamp-token",
            lambda: [corpus().token],
            _token,
            signed=True,
            expected=TimestampError,
        ),
        Target(
            "oip-response",
            oip_responses,
            _oip,
            signed=False,
            expected=SuspectError,
            resign=_unsigned_json,
        ),
        Target(
            "json-api-response",
            json_api_responses,
            _json_api,
            signed=False,
            expected=SuspectError,
            resign=_unsigned_json,
        ),
        Target(
            "suspect-config",
            suspect_configs,
            _suspect_config,
            signed=False,
            edit=_unsigned_json,
        ),
        Target(
            "trigger-set",
            _trigger_set_seeds,
            _trigger_set,
            signed=True,
            edit=_trigger_set_json,
        ),
    )
}
