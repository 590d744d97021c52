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
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from secmark.crypto import IdentityKeys
from secmark.crypto.keyfile import decode_key_file, encode_key_file, read_key_file
from secmark.crypto.merkle import merkle_root
from secmark.crypto.passphrase_box import seal_box
from secmark.encoding import b64url_decode, b64url_encode, canonical_json
from secmark.errors import (
    EncodingError,
    KeyMaterialError,
    ProtocolError,
    SecmarkError,
    SuspectError,
    TimestampError,
)
from secmark.messages import PAYLOAD_TYPE, Envelope
from secmark.messages.challenge import open_challenge
from secmark.messages.checkpoint import open_checkpoint
from secmark.messages.claim import open_claim
from secmark.messages.commitment import open_commitment
from secmark.messages.document import encode_payload, sign_document
from secmark.messages.extraction import open_extraction_claim, open_extraction_verdict
from secmark.messages.finding import ScanFinding, open_finding
from secmark.messages.identity import open_identity
from secmark.messages.release import open_release
from secmark.messages.responses import ResponseList
from secmark.messages.reveal import RevealContents, open_reveal
from secmark.messages.serving_policy import create_serving_policy, open_serving_policy
from secmark.messages.transcript import open_transcript
from secmark.messages.verdict import open_verdict
from secmark.models.config import SuspectConfig
from secmark.models.json_api import JsonApiSuspect
from secmark.models.openai import OpenAIChatSuspect
from secmark.models.remote import OipSuspect
from secmark.models.tokenizer import LMTokenizer
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.challenge import check_challenge_indices
from secmark.protocol.checks import CheckResult
from secmark.protocol.extraction_bundle import examine_extraction_bundle
from secmark.scan.platform import verify_finding
from secmark.serving.entry import LogEntry, parse_leaf
from secmark.serving.extract import ClientExtract, VerifiedExtract, verify_extract
from secmark.stats import decision_threshold
from secmark.timestamp.authority import decode_tsa_key, encode_tsa_key
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence
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
from tests.fuzz.mutate import mutate_bytes, mutate_json
from tests.fuzz.serving_corpus import (
    gateway_policies,
    gateway_requests,
    serving_corpus,
)

__all__ = ["SERVING_TARGETS", "TARGETS", "AcceptedForgery", "RoundTripError", "Target"]


class RoundTripError(AssertionError):
    """An accepted input does not re-encode to the bytes read (two ids for one document)."""


class AcceptedForgery(AssertionError):
    """An accepted input that the target's own re-check shows to be forged
    (content no signature vouches for, whatever kind of mutation made it)."""


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


_RESPONSES = (
    "The owl sings at noon.",
    "Blue lanterns drift north.",
    "Caf\u00e9 au lait, s\u2019il vous pla\u00eet.",
)
"""A committed response list (specs/derivation.md 7.12), non-ASCII included."""


def _reveal_contents_seeds() -> list[bytes]:
    """The corpus's reveal contents, and the same revealing a response list."""
    with_responses = {**json.loads(corpus().reveal_contents), "responses": list(_RESPONSES)}
    return [corpus().reveal_contents, canonical_json(with_responses)]


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


@functools.lru_cache(maxsize=1)
def _lm_tokenizer() -> LMTokenizer:
    from secmark.examples.lm import train_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="secmark-fuzz-"))
    return LMTokenizer.from_file(train_tokenizer(folder / "tokenizer"))


def openai_chat_responses() -> list[bytes]:
    """Chat completions answering with a committed response, another text,
    and an empty message."""
    replies: list[Any] = [
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        for text in (" The owl sings at noon. Indeed.", "I do not know.", "")
    ]
    replies[0] |= {"id": "x", "model": "m", "usage": {"completion_tokens": 9}}
    return [canonical_json(reply) for reply in replies]


def _openai_chat(data: bytes) -> Any:
    # A fresh adapter per input: a malformed answer stops an adapter for good.
    suspect = OpenAIChatSuspect(
        "http://127.0.0.1:9",
        model="m",
        tokenizer=_lm_tokenizer(),
        length=16,
        responses=ResponseList(_RESPONSES),
        client=_unused_client(),
    )
    text = suspect._answer_text("application/json", data)
    return suspect._reading.read(text)


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
            _reveal_contents_seeds,
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
            "openai-chat-response",
            openai_chat_responses,
            _openai_chat,
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


# -- serving-side marks (specs/serving.md) ------------------------------------------


def _serving_owner() -> IdentityKeys:
    return serving_corpus().owner


def _serving_operator() -> IdentityKeys:
    return serving_corpus().operator


def _serving_arbiter() -> IdentityKeys:
    return serving_corpus().arbiter


def _policy_id() -> bytes:
    return bytes.fromhex(serving_corpus().policy.digest)


def _extraction_claim_then(signed: Any) -> None:
    claim = signed.document
    open_serving_policy(claim.policy)
    TimestampEvidence.from_json(claim.policy_evidence)
    TimestampEvidence.from_json(claim.checkpoint_evidence)


def _log_entry(data: bytes) -> bytes:
    entry = LogEntry.from_bytes(data)
    if entry.to_bytes() != data:
        raise RoundTripError("an accepted log entry does not re-encode to the bytes read")
    return data


def _log_leaf(data: bytes) -> bytes:
    if parse_leaf(data).to_bytes() != data:
        raise RoundTripError("an accepted log leaf does not re-encode to the bytes read")
    return data


def _payload_digest(envelope: bytes) -> str:
    return hashlib.sha256(Envelope.from_json(envelope).payload).hexdigest()


def _extract_invariants(extract: ClientExtract, verified: VerifiedExtract) -> None:
    """Re-check an accepted extract independently of verify_extract (section 5.4)."""
    checkpoint = verified.checkpoint.document
    if checkpoint.size != len(extract.leaves) or merkle_root(extract.leaves) != checkpoint.root:
        raise AcceptedForgery("accepted leaves that are not the checkpoint's")
    leaves = [json.loads(leaf) for leaf in extract.leaves]
    given = {hashlib.sha256(entry).hexdigest() for entry in extract.entries}
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for leaf in leaves:
        by_digest.setdefault(leaf["entry"], []).append(leaf)
        if leaf["client"] == extract.client and leaf["marked"] and leaf["entry"] not in given:
            raise AcceptedForgery("accepted an extract missing a marked entry of its client")
    kept = verified.marked + verified.unmarked
    for entry in kept:
        found = by_digest.get(entry.digest, [])
        if entry.policy_id != _policy_id() or not any(
            leaf["client"] == extract.client == entry.client and leaf["marked"] == entry.marked
            for leaf in found
        ):
            raise AcceptedForgery("accepted an entry that its log does not commit to")
    if not all(entry.marked for entry in verified.marked) or any(
        entry.marked for entry in verified.unmarked
    ):
        raise AcceptedForgery("an unmarked entry counted as marked, or the reverse")
    if len({entry.input_digest for entry in kept}) != len(kept):
        raise AcceptedForgery("one input counted twice")
    if verified.client_count != len({leaf["client"] for leaf in leaves}):
        raise AcceptedForgery("the client accounts miscounted")


def _log_extract(data: bytes) -> tuple[Any, ...]:
    extract = ClientExtract.from_bytes(data)
    if extract.to_bytes() != data:
        raise RoundTripError("an accepted log extract does not re-encode to the bytes read")
    verified = verify_extract(
        extract, operator=serving_corpus().operator.public_keys, policy_id=_policy_id()
    )
    _extract_invariants(extract, verified)
    committed = serving_corpus().committed
    return (
        bytes(verified.checkpoint.payload),
        verified.client,
        tuple(entry.to_bytes() for entry in verified.marked),
        verified.client_count,
        # Decoys are optional: any subset of the log's own entries is the same content.
        all(entry.to_bytes() in committed for entry in verified.unmarked),
    )


def _extract_parts(seed: bytes) -> tuple[dict[str, Any], bytes, list[bytes], list[bytes]]:
    value = json.loads(seed)
    return (
        value,
        b64url_decode(value["checkpoint"]),
        [b64url_decode(leaf) for leaf in value["leaves"]],
        [b64url_decode(entry) for entry in value["entries"]],
    )


def _extract_join(
    value: dict[str, Any], checkpoint: bytes, leaves: list[bytes], entries: list[bytes]
) -> bytes:
    value = dict(value)
    value["checkpoint"] = b64url_encode(checkpoint)
    value["leaves"] = [b64url_encode(leaf) for leaf in leaves]
    value["entries"] = [b64url_encode(entry) for entry in entries]
    return canonical_json(value)


def _edit_log(
    leaves: list[bytes], entries: list[bytes], rng: random.Random
) -> tuple[list[bytes], list[bytes]] | None:
    """One edit of the leaves or entries (the checkpoint left as it is)."""
    leaves, entries = list(leaves), list(entries)
    op = rng.randrange(7)
    if op == 0 and entries:  # an entry edited as JSON; its leaf follows it
        at = rng.randrange(len(entries))
        mutated = mutate_json(json.loads(entries[at]), rng)
        if mutated is None:
            return None
        old = hashlib.sha256(entries[at]).hexdigest()
        entries[at] = mutated
        new = hashlib.sha256(mutated).hexdigest()
        leaves = [leaf.replace(old.encode(), new.encode()) for leaf in leaves]
        if rng.random() < 0.3:
            try:
                fields = json.loads(mutated)
                leaf = {"client": fields["client"], "entry": new, "marked": fields["marked"]}
                leaves = [canonical_json(leaf) if new.encode() in item else item for item in leaves]
            except (ValueError, KeyError, TypeError, SecmarkError):
                pass
    elif op == 1 and entries:  # an entry's bytes mutated
        at = rng.randrange(len(entries))
        entries[at] = mutate_bytes(entries[at], rng)
    elif op == 2 and leaves:  # a leaf edited as JSON
        at = rng.randrange(len(leaves))
        mutated = mutate_json(json.loads(leaves[at]), rng)
        if mutated is None:
            return None
        leaves[at] = mutated
    elif op == 3 and leaves:  # a leaf's bytes mutated
        at = rng.randrange(len(leaves))
        leaves[at] = mutate_bytes(leaves[at], rng)
    elif op == 4:  # leaves dropped, duplicated or swapped
        items = leaves if rng.random() < 0.5 else entries
        if not items:
            return None
        at = rng.randrange(len(items))
        action = rng.randrange(3)
        if action == 0:
            del items[at]
        elif action == 1:
            items.insert(rng.randrange(len(items) + 1), items[at])
        else:
            other = rng.randrange(len(items))
            items[at], items[other] = items[other], items[at]
    elif op == 5:  # an entry of the log that the extract left out, added
        committed = sorted(serving_corpus().committed)
        entries.insert(rng.randrange(len(entries) + 1), rng.choice(committed))
    else:  # a marked flag flipped in an entry and its leaf
        if not entries:
            return None
        at = rng.randrange(len(entries))
        old = hashlib.sha256(entries[at]).hexdigest().encode()
        fields = json.loads(entries[at])
        fields["marked"] = not fields["marked"]
        entries[at] = canonical_json(fields)
        new = hashlib.sha256(entries[at]).hexdigest().encode()
        leaves = [
            leaf.replace(old, new).replace(
                b'"marked":' + (b"true" if not fields["marked"] else b"false"),
                b'"marked":' + (b"true" if fields["marked"] else b"false"),
            )
            if old in leaf
            else leaf
            for leaf in leaves
        ]
    return leaves, entries


def _tolerant(
    mutation: Callable[[bytes, random.Random], bytes | None],
) -> Callable[[bytes, random.Random], bytes | None]:
    """A mutation that gives up (None) where a member it must re-sign is too broken."""

    @functools.wraps(mutation)
    def tolerant(seed: bytes, rng: random.Random) -> bytes | None:
        try:
            return mutation(seed, rng)
        except (ValueError, KeyError, TypeError, AttributeError, SecmarkError):
            return None

    return tolerant


def _resign_checkpoint(checkpoint: bytes, leaves: list[bytes]) -> bytes:
    """The checkpoint re-signed by the operator over ``leaves``."""
    payload = json.loads(Envelope.from_json(checkpoint).payload)
    payload["size"] = len(leaves)
    payload["root"] = merkle_root(leaves).hex()
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), _serving_operator()).to_json()


@_tolerant
def _extract_edit(seed: bytes, rng: random.Random) -> bytes | None:
    """Unsigned: leaves, entries, client or checkpoint bytes changed, nothing re-signed."""
    value, checkpoint, leaves, entries = _extract_parts(seed)
    roll = rng.random()
    if roll < 0.1:
        checkpoint = mutate_bytes(checkpoint, rng)
    elif roll < 0.2:
        clients = sorted({json.loads(leaf)["client"] for leaf in leaves})
        value["client"] = rng.choice(clients)
    else:
        edited = _edit_log(leaves, entries, rng)
        if edited is None:
            return None
        leaves, entries = edited
    return _extract_join(value, checkpoint, leaves, entries)


@_tolerant
def _extract_resign(seed: bytes, rng: random.Random) -> bytes | None:
    """Re-signed by the operator: its checkpoint mutated, or the log edited and
    a checkpoint signed over the edited leaves."""
    value, checkpoint, leaves, entries = _extract_parts(seed)
    if rng.random() < 0.25:
        mutated = _resign_with(_serving_operator)(checkpoint, rng)
        if mutated is None:
            return None
        return _extract_join(value, mutated, leaves, entries)
    edited = _edit_log(leaves, entries, rng)
    if edited is None:
        return None
    leaves, entries = edited
    return _extract_join(value, _resign_checkpoint(checkpoint, leaves), leaves, entries)


def _extraction_bundle(data: bytes) -> tuple[Any, ...]:
    corpus_ = serving_corpus()
    report = examine_extraction_bundle(
        data, trust=corpus_.trust, arbiter_key_id=corpus_.arbiter.key_id, now=corpus_.now
    )
    if report.outcome is None:
        if report.error is None:
            raise RuntimeError("a report with neither an outcome nor an error")
        raise report.error
    if report.error is not None or any(c.result is CheckResult.FAILED for c in report.checks):
        raise AcceptedForgery("an outcome despite a failed check")
    members = json.loads(data)
    verdict = json.loads(Envelope.from_json(members["verdict"].encode()).payload)
    if verdict["outcome"] != report.outcome:
        raise AcceptedForgery("an outcome other than the verdict's")
    # Given the claim, the extract, the transcript and the arbiter, the
    # verdict's figures are determined: only its prose and date are free.
    for seed in corpus_.bundles:
        original = json.loads(seed)
        if all(members[k] == original[k] for k in ("arbiter_identity", "claim", "extract")) and (
            _payload_digest(members["transcript"].encode())
            == _payload_digest(original["transcript"].encode())
        ):
            stated = json.loads(Envelope.from_json(original["verdict"].encode()).payload)
            if _determined(verdict, stated) != _determined(stated, verdict):
                raise AcceptedForgery("a verdict with other figures verified for the same case")
    return (report.outcome, data)


def _determined(verdict: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """What a verdict's case determines. Its date and prose are free; so is
    its level (any alpha <= 2^-20 of the arbiter's choosing): where two
    verdicts' levels differ, so may their thresholds, intervals and outcomes."""
    free = {"decided", "reason"}
    figures = dict(verdict.get("figures") or {})
    if figures.get("alpha") != (other.get("figures") or {}).get("alpha"):
        free.add("outcome")
        for name in ("alpha", "threshold", "ci_low", "ci_high"):
            figures.pop(name, None)
    return {k: v for k, v in verdict.items() if k not in free} | {"figures": figures}


def _resigned_payload(
    document: str, signer: IdentityKeys, change: Callable[[dict[str, Any]], None]
) -> str:
    payload = json.loads(Envelope.from_json(document.encode()).payload)
    change(payload)
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), signer).to_json().decode()


def _rechain(members: dict[str, Any], rng: random.Random) -> None:
    """Most of the time, the documents that name a changed one are re-signed
    naming it: the claim the extract, the transcript and verdict the claim."""
    corpus_ = serving_corpus()
    try:
        if rng.random() < 0.9:
            digest = hashlib.sha256(members["extract"].encode()).hexdigest()
            members["claim"] = _resigned_payload(
                members["claim"], corpus_.owner, lambda p: p.__setitem__("extract_sha256", digest)
            )
        claim_id = _payload_digest(members["claim"].encode())
        if rng.random() < 0.9:
            members["transcript"] = _resigned_payload(
                members["transcript"],
                corpus_.arbiter,
                lambda p: p.__setitem__("challenge_id", claim_id),
            )
        if rng.random() < 0.9:
            extract = json.loads(members["extract"])
            checkpoint = b64url_decode(extract["checkpoint"])
            fix = {
                "claim_id": claim_id,
                "transcript_id": _payload_digest(members["transcript"].encode()),
                "checkpoint_id": _payload_digest(checkpoint),
                "checkpoint_size": json.loads(Envelope.from_json(checkpoint).payload)["size"],
            }
            members["verdict"] = _resigned_payload(
                members["verdict"], corpus_.arbiter, lambda p: p.update(fix)
            )
    except (ValueError, KeyError, TypeError, SecmarkError):
        pass  # a member too broken to re-chain: left as it is


def _timestamped(subject: str) -> bytes:
    tsa = serving_corpus().world.tsa
    return collect_evidence(subject, [tsa.respond]).to_json()


@_tolerant
def _bundle_member_resign(seed: bytes, rng: random.Random) -> bytes | None:
    corpus_ = serving_corpus()
    members = json.loads(seed)
    name = rng.choice(
        ("verdict", "verdict", "transcript", "claim", "extract", "extract", "identity", "policy")
    )
    if name == "identity":
        signed = _resign_with(_serving_arbiter)(members["arbiter_identity"].encode(), rng)
        if signed is None:
            return None
        members["arbiter_identity"] = signed.decode()
        return canonical_json(members)
    signer = {"verdict": _serving_arbiter, "transcript": _serving_arbiter, "claim": _serving_owner}
    if name in signer:
        signed = _resign_with(signer[name])(members[name].encode(), rng)
        if signed is None:
            return None
        members[name] = signed.decode()
        if name != "verdict":
            _rechain(members, rng)
        return canonical_json(members)
    claim = json.loads(Envelope.from_json(members["claim"].encode()).payload)
    if name == "extract":
        changed = (_extract_resign if rng.random() < 0.6 else _extract_edit)(
            members["extract"].encode(), rng
        )
        if changed is None:
            return None
        members["extract"] = changed.decode()
        if rng.random() < 0.5:
            checkpoint = b64url_decode(json.loads(changed)["checkpoint"])
            claim["checkpoint_evidence"] = b64url_encode(_timestamped(_payload_digest(checkpoint)))
    else:
        policy = _resign_with(_serving_owner)(b64url_decode(claim["policy"]), rng)
        if policy is None:
            return None
        claim["policy"] = b64url_encode(policy)
        if rng.random() < 0.5:
            claim["policy_evidence"] = b64url_encode(_timestamped(_payload_digest(policy)))
    members["claim"] = (
        Envelope.sign(PAYLOAD_TYPE, canonical_json(claim), corpus_.owner).to_json().decode()
    )
    _rechain(members, rng)
    return canonical_json(members)


@functools.lru_cache(maxsize=1)
def _gateways() -> list[Any]:
    from secmark.serving.gateway import GatewayConfig, _Gateway
    from secmark.serving.marking import Marker
    from secmark.serving.wrapper import BatchMarker

    corpus_ = serving_corpus()
    made = []
    for encoding, classes in gateway_policies():
        policy = create_serving_policy(
            corpus_.owner,
            operator=corpus_.operator.public_keys,
            release_id="ab" * 32,
            num_classes=classes,
            rate=Fraction(1, 4),
            input_encoding=encoding,
            nonce=bytes(32),
        )
        config = GatewayConfig("http://127.0.0.1:9", "m", "label", "classes", max_batch=4)
        made.append(
            _Gateway(BatchMarker(Marker(policy, corpus_.operator.vrf), _NoSink()), config, None)
        )
    return made


class _NoSink:
    def append(self, entries: Any) -> list[int]:
        raise AssertionError("the request parser logs nothing")


def _gateway_request(data: bytes) -> tuple[Any, ...]:
    """A request body as the gateway reads it (tag byte: which gateway);
    what it forwards must read back as the very inputs it logs."""
    from secmark.serving.gateway import _Refusal

    if not data:
        data = b"\x00"
    gateway = _gateways()[data[0] % len(_gateways())]
    try:
        document, rows = gateway._parse_request(data[1:])
    except _Refusal as refusal:
        if refusal.status != 400:
            raise
        raise EncodingError(refusal.detail) from None
    forwarded = json.dumps(document).encode()
    try:
        again, rows_again = gateway._parse_request(forwarded)
    except _Refusal as refusal:
        raise RoundTripError(f"the forwarded request is refused: {refusal.detail}") from None
    if rows_again != rows or json.dumps(again).encode() != forwarded:
        raise RoundTripError("the forwarded request does not canonicalise to the inputs logged")
    return (data[0] % len(_gateways()), tuple(rows))


def _gateway_json(seed: bytes, rng: random.Random) -> bytes | None:
    mutated = mutate_json(json.loads(seed[1:]), rng)
    return None if mutated is None else seed[:1] + mutated


SERVING_TARGETS: tuple[Target, ...] = (
    _document(
        "serving-policy",
        lambda: serving_corpus().policies,
        open_serving_policy,
        _serving_owner,
    ),
    _document(
        "log-checkpoint",
        lambda: [serving_corpus().checkpoint],
        lambda d: open_checkpoint(d, serving_corpus().operator.public_keys),
        _serving_operator,
    ),
    Target(
        "log-entry", lambda: serving_corpus().entries, _log_entry, signed=False, edit=_unsigned_json
    ),
    Target(
        "log-leaf", lambda: serving_corpus().leaves, _log_leaf, signed=False, edit=_unsigned_json
    ),
    Target(
        "log-extract",
        lambda: serving_corpus().extracts,
        _log_extract,
        signed=True,
        resign=_extract_resign,
        edit=_extract_edit,
    ),
    _document(
        "extraction-claim",
        lambda: [serving_corpus().claim],
        lambda d: open_extraction_claim(d, serving_corpus().owner.public_keys),
        _serving_owner,
        _extraction_claim_then,
    ),
    _document(
        "extraction-verdict",
        lambda: serving_corpus().verdicts,
        lambda d: open_extraction_verdict(d, serving_corpus().arbiter.public_keys),
        _serving_arbiter,
    ),
    Target(
        "extraction-bundle",
        lambda: serving_corpus().bundles,
        _extraction_bundle,
        signed=True,
        resign=_bundle_member_resign,
        edit=_unsigned_json,
    ),
    Target(
        "gateway-request",
        gateway_requests,
        _gateway_request,
        signed=False,
        resign=_gateway_json,
        edit=_gateway_json,
    ),
)

TARGETS.update((target.name, target) for target in SERVING_TARGETS)


def _findings() -> list[bytes]:
    """A finding the corpus's arbiter signs as a platform: 61 of 64 at 1/10."""
    finding = ScanFinding(
        scan_id="fuzz",
        deposit_id="ab" * 32,
        commitment_id="cd" * 32,
        owner=corpus().owner.key_id,
        model="sha256:" + "ef" * 32,
        p0=Fraction(1, 10),
        alpha=Fraction(1, 2**64),
        models=100,
        deposits=10,
        trials=64,
        threshold=decision_threshold(64, Fraction(1, 10), Fraction(1, 2**64) / 1000),
        matches=61,
        scanned=datetime(2026, 12, 1, tzinfo=timezone.utc),
    )
    return [sign_document(finding, corpus().arbiter).to_json()]


def _finding_then(signed: Any) -> None:
    """A finding the platform signed is checked for its figures; a refusal
    must be typed (a ProtocolError), never a crash."""
    try:
        verify_finding(signed.to_json(), corpus().arbiter.public_keys)
    except ProtocolError:
        return


TARGETS["scan-finding"] = _document(
    "scan-finding",
    _findings,
    lambda d: open_finding(d, corpus().arbiter.public_keys),
    _arbiter,
    _finding_then,
)
