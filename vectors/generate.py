"""Regenerate the known-answer vectors that secmark itself defines.

Run from the repository root: ``python3 vectors/generate.py``. Every input is
fixed, so the output is identical on every run; a difference after a code
change means the change altered an encoding that other implementations rely
on. Files copied from RFCs are not written here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from nacl import bindings as sodium

from secmark.crypto import INTERACTIVE_KDF, IdentityKeys, VrfSecretKey, encode_key_file
from secmark.encoding import b64_encode, canonical_json
from secmark.messages import Envelope, EnvelopeSignature, create_identity
from secmark.messages.commitment import create_commitment
from secmark.messages.document import PAYLOAD_TYPE
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels

ROOT = Path(__file__).resolve().parent
Q = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
ORDER_2_POINT = (P - 1).to_bytes(32, "little")
IDENTITY_POINT = (1).to_bytes(32, "little")


def seed(label: str) -> bytes:
    return hashlib.sha256(f"secmark test vector seed: {label}".encode()).digest()


def write(relative: str, content: dict) -> None:
    path = ROOT / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def torsion_malleated_proof(sk: VrfSecretKey, alpha: bytes) -> bytes:
    """A proof RFC 9381's verifier accepts whose Gamma carries an order-2 component.

    With Gamma' = Gamma + T (T of order 2) the verifier's V = s*H - c*Gamma'
    equals k*H whenever c is even, so the prover retries nonces until c is
    even. beta is unchanged: this is malleability, which secmark refuses.
    """
    from secmark.crypto import ecvrf

    y = sk.public_key.public_bytes_raw()
    h = ecvrf._encode_to_curve(y, alpha)
    gamma = ecvrf._mul(sk._x, h)
    gamma_prime = sodium.crypto_core_ed25519_add(gamma, ORDER_2_POINT)
    for attempt in range(256):
        k = int.from_bytes(hashlib.sha512(b"malleate" + bytes([attempt])).digest(), "little") % Q
        c = ecvrf._challenge(ecvrf.TAI, y, h, gamma_prime, ecvrf._mul_base(k), ecvrf._mul(k, h))
        if c % 2 == 0:
            s = (k + c * sk._x) % Q
            return gamma_prime + c.to_bytes(16, "little") + s.to_bytes(32, "little")
    raise AssertionError("no even challenge in 256 tries")


def ecvrf_negative() -> None:
    rfc = json.loads((ROOT / "ecvrf/rfc9381-tai.json").read_text())["vectors"]
    first, second = rfc[0], rfc[1]
    pk, alpha, pi = first["pk"], first["alpha"], bytes.fromhex(first["pi"])
    s = int.from_bytes(pi[48:], "little")
    mixed_pk = sodium.crypto_core_ed25519_add(bytes.fromhex(pk), ORDER_2_POINT)
    non_canonical_identity = (P + 1).to_bytes(32, "little")
    flipped = bytearray(pi)
    flipped[40] ^= 0x01
    cases = [
        (
            "s + q instead of s (s >= q)",
            pk,
            alpha,
            pi[:48] + (s + Q).to_bytes(32, "little"),
            "ProofError",
        ),
        ("proof for another alpha", pk, "00", pi.hex(), "ProofError"),
        ("proof checked under another public key", second["pk"], alpha, pi.hex(), "ProofError"),
        ("one bit of c flipped", pk, alpha, bytes(flipped).hex(), "ProofError"),
        ("truncated proof", pk, alpha, pi[:79].hex(), "ProofError"),
        ("identity public key", IDENTITY_POINT.hex(), alpha, pi.hex(), "KeyMaterialError"),
        ("order-2 public key", ORDER_2_POINT.hex(), alpha, pi.hex(), "KeyMaterialError"),
        ("order-4 public key (y = 0)", bytes(32).hex(), alpha, pi.hex(), "KeyMaterialError"),
        (
            "mixed-order public key (pk + order-2 point)",
            mixed_pk.hex(),
            alpha,
            pi.hex(),
            "KeyMaterialError",
        ),
        (
            "non-canonical public key (identity with y = p + 1)",
            non_canonical_identity.hex(),
            alpha,
            pi.hex(),
            "KeyMaterialError",
        ),
        (
            "public key not on the curve",
            (2).to_bytes(32, "little").hex(),
            alpha,
            pi.hex(),
            "KeyMaterialError",
        ),
        ("Gamma is the identity", pk, alpha, IDENTITY_POINT.hex() + pi[32:].hex(), "ProofError"),
        ("Gamma is of order 2", pk, alpha, ORDER_2_POINT.hex() + pi[32:].hex(), "ProofError"),
        (
            "Gamma with its sign bit flipped",
            pk,
            alpha,
            bytes([*pi[:31], pi[31] ^ 0x80]).hex() + pi[32:].hex(),
            "ProofError",
        ),
        (
            "Gamma with a torsion component (accepted by RFC 9381, refused by secmark)",
            pk,
            alpha,
            torsion_malleated_proof(VrfSecretKey(bytes.fromhex(first["sk"])), b"").hex(),
            "ProofError",
        ),
    ]
    write(
        "ecvrf/negative-tai.json",
        {
            "kind": "ecvrf-tai-negative",
            "suite": "ECVRF-EDWARDS25519-SHA512-TAI",
            "source": "secmark; built from RFC 9381 Example 16 by vectors/generate.py",
            "note": "each case must be rejected: the public key with KeyMaterialError, else the proof with ProofError",
            "vectors": [
                {
                    "description": d,
                    "pk": k,
                    "alpha": a,
                    "pi": p if isinstance(p, str) else p.hex(),
                    "error": e,
                }
                for d, k, a, p, e in cases
            ],
        },
    )


def fixed_identity() -> IdentityKeys:
    return IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))


def documents() -> None:
    keys = fixed_identity()
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    identity = create_identity(keys, "secmark test vector identity", created=created)
    other = IdentityKeys(seed("other signing"), seed("other vrf"), seed("other encryption"))
    envelope = identity.envelope
    payload = json.loads(envelope.payload)

    def resigned(new_payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
        return Envelope.sign(payload_type, new_payload, keys).to_json()

    raw = envelope.to_json()
    sig_text = b64_encode(envelope.signatures[0].sig)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # 64 bytes leave two unused bits in the last character before "==".
    stray_sig = sig_text[:85] + alphabet[alphabet.index(sig_text[85]) ^ 1] + "=="
    envelope_fields = json.loads(raw)
    reordered = json.dumps(
        {k: envelope_fields[k] for k in ("payloadType", "payload", "signatures")},
        separators=(",", ":"),
    ).encode()
    negative = [
        (
            "payload changed after signing (name)",
            Envelope(
                envelope.payload_type,
                envelope.payload.replace(b"vector identity", b"vector identitx"),
                envelope.signatures,
            ).to_json(),
            "SignatureError",
        ),
        (
            "signature by another key under the same keyid",
            Envelope(
                envelope.payload_type,
                envelope.payload,
                (
                    EnvelopeSignature(
                        keys.key_id,
                        Envelope.sign(PAYLOAD_TYPE, envelope.payload, other).signatures[0].sig,
                    ),
                ),
            ).to_json(),
            "SignatureError",
        ),
        (
            "signature named by another keyid",
            Envelope(
                envelope.payload_type,
                envelope.payload,
                (EnvelopeSignature(other.key_id, envelope.signatures[0].sig),),
            ).to_json(),
            "SignatureError",
        ),
        ("wrong payloadType", resigned(envelope.payload, "application/json"), "EncodingError"),
        (
            "envelope not canonical (space after colon)",
            raw.replace(b'"payloadType":', b'"payloadType": '),
            "EncodingError",
        ),
        ("envelope keys out of order", reordered, "EncodingError"),
        ("duplicate key in envelope", raw[:-1] + b',"payloadType":"x"}', "EncodingError"),
        ("extra envelope field", raw[:-1] + b',"zz":1}', "EncodingError"),
        (
            "signature base64 with a stray trailing bit",
            raw.replace(sig_text.encode(), stray_sig.encode()),
            "EncodingError",
        ),
        (
            "payload not canonical JSON (resigned)",
            resigned(envelope.payload.replace(b'{"created"', b'{ "created"', 1)),
            "EncodingError",
        ),
        (
            "duplicate key in payload (resigned)",
            resigned(envelope.payload[:-1] + b',"name":"x"}'),
            "EncodingError",
        ),
        (
            "unknown version (resigned)",
            resigned(canonical_json({**payload, "version": 2})),
            "EncodingError",
        ),
        (
            "unknown type (resigned)",
            resigned(canonical_json({**payload, "type": "secmark.other"})),
            "EncodingError",
        ),
        (
            "missing field (resigned)",
            resigned(canonical_json({k: v for k, v in payload.items() if k != "created"})),
            "EncodingError",
        ),
        (
            "extra field (resigned)",
            resigned(canonical_json({**payload, "extra": 1})),
            "EncodingError",
        ),
        (
            "integer beyond 2^53 (resigned)",
            resigned(envelope.payload.replace(b'"version":1', b'"version":9007199254740993')),
            "EncodingError",
        ),
        (
            "key_id does not match the keys (resigned)",
            resigned(canonical_json({**payload, "key_id": "0" * 64})),
            "EncodingError",
        ),
    ]
    write(
        "documents/identity.json",
        {
            "kind": "identity",
            "source": "secmark; vectors/generate.py",
            "note": "seeds are hex; envelope is the exact canonical bytes, as UTF-8 text",
            "signing_seed": seed("signing").hex(),
            "vrf_seed": seed("vrf").hex(),
            "encryption_key": seed("encryption").hex(),
            "name": "secmark test vector identity",
            "created": "2026-01-01T00:00:00Z",
            "key_id": keys.key_id,
            "payload_sha256": identity.digest,
            "envelope": raw.decode(),
        },
    )
    write(
        "documents/identity-negative.json",
        {
            "kind": "identity-negative",
            "source": "secmark; vectors/generate.py",
            "note": "each envelope must be refused when opened as the identity of documents/identity.json, with the error named",
            "vectors": [
                {"description": d, "envelope": e.decode(), "error": err} for d, e, err in negative
            ],
        },
    )
    commitment = create_commitment(
        keys,
        family=NoiseFamily((1, 8, 8), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=256,
        model_label="secmark test vector commitment",
        nonce=seed("commitment nonce"),
        created=created,
    )
    write(
        "documents/commitment.json",
        {
            "kind": "commitment",
            "source": "secmark; vectors/generate.py",
            "note": "the identity of documents/identity.json commits; commitment_id is the hex SHA-256 of the payload",
            "identity": "identity.json",
            "family": commitment.document.family.to_fields(),
            "labels": commitment.document.labels.to_fields(),
            "size": 256,
            "model_label": "secmark test vector commitment",
            "nonce": seed("commitment nonce").hex(),
            "created": "2026-01-01T00:00:00Z",
            "commitment_id": commitment.digest,
            "envelope": commitment.to_json().decode(),
        },
    )
    if not (ROOT / "documents/keyfile.json").exists():
        write_keyfile_vector(keys)


def write_keyfile_vector(keys: IdentityKeys) -> None:
    # Salt and nonce are random: the file is written once and then kept.
    write(
        "documents/keyfile.json",
        {
            "kind": "keyfile",
            "source": "secmark; vectors/generate.py (written once: salt and nonce are random)",
            "passphrase": "correct horse battery staple",
            "key_id": keys.key_id,
            "key_file": encode_key_file(
                keys, b"correct horse battery staple", kdf=INTERACTIVE_KDF
            ).decode(),
        },
    )


if __name__ == "__main__":
    ecvrf_negative()
    documents()
