"""DSSE v1 envelopes (the signing envelope of in-toto and Sigstore).

An envelope carries a payload, its media type and signatures; each signature
covers the pre-authentication encoding (PAE) of type and payload, so a
signature for one payload type never verifies for another. secmark writes
envelopes as RFC 8785 canonical JSON with canonical base64, and reads nothing
else, so an envelope has exactly one byte representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secmark.crypto.keys import IdentityKeys, PublicKeys, verify_ed25519
from secmark.encoding import (
    b64_decode,
    b64_decode_ascii,
    b64_encode,
    canonical_json,
    parse_canonical_json,
)
from secmark.errors import EncodingError, SignatureError

__all__ = ["MAX_ENVELOPE_SIZE", "MAX_SIGNATURES", "Envelope", "EnvelopeSignature", "pae"]

MAX_ENVELOPE_SIZE = 16 * 1024 * 1024
"""Default bound on an envelope's bytes: parsing is refused past it (denial of service)."""

MAX_SIGNATURES = 4
"""Every secmark document has one signer; a few more are tolerated, not hundreds."""

_MAX_KEYID_LENGTH = 128

# Canonical JSON sorts an envelope's keys: payload, payloadType, signatures.
_PAYLOAD_START = b'{"payload":"'
_PAYLOAD_END = b'","payloadType":'


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of a payload and its type."""
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(encoded_type), encoded_type, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. Build with :meth:`sign` or :meth:`from_json`."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    @classmethod
    def sign(cls, payload_type: str, payload: bytes, keys: IdentityKeys) -> Envelope:
        """An envelope over ``payload`` signed by ``keys``, named by its key id."""
        signature = EnvelopeSignature(keys.key_id, keys.sign(pae(payload_type, payload)))
        return cls(payload_type, payload, (signature,))

    def to_json(self) -> bytes:
        """The envelope's canonical JSON bytes."""
        value: dict[str, Any] = {
            "payload": b64_encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": b64_encode(s.sig)} for s in self.signatures],
        }
        return canonical_json(value)

    @classmethod
    def from_json(cls, data: bytes, *, max_size: int = MAX_ENVELOPE_SIZE) -> Envelope:
        """Parse an envelope without verifying it.

        The payload, nearly all of a large envelope, is never parsed as JSON:
        canonical JSON puts it first, and base64 text needs no escaping, so it
        runs from the opening quote to the next one. It is decoded from the
        bytes in place, and only the rest of the envelope (its type and
        signatures) is parsed as canonical JSON. The envelope is canonical
        exactly when that rest is and the base64 is (peak memory: the input
        and the decoded payload, no text copy of either).

        Raises:
            EncodingError: the bytes are over ``max_size``, not canonical JSON,
                lack or add fields, or carry bad base64 or too many signatures.
        """
        if not isinstance(data, bytes):
            raise EncodingError("a DSSE envelope must be bytes")
        if len(data) > max_size:
            raise EncodingError(f"DSSE envelope is {len(data)} bytes, over the limit of {max_size}")
        end = data.find(b'"', len(_PAYLOAD_START))
        if not data.startswith(_PAYLOAD_START) or end < 0 or not data.startswith(_PAYLOAD_END, end):
            raise EncodingError(
                "a DSSE envelope must be a canonical JSON object of exactly payload, "
                "payloadType and signatures, in that order"
            )
        # The rest, from "payloadType" on, as an object of its own.
        value = parse_canonical_json(
            b"{" + data[end + len(b'",') :], max_size=max_size, what="DSSE envelope"
        )
        if not isinstance(value, dict) or set(value) != {"payloadType", "signatures"}:
            raise EncodingError(
                "a DSSE envelope must be an object with exactly payload, payloadType, signatures"
            )
        payload = b64_decode_ascii(memoryview(data)[len(_PAYLOAD_START) : end], what="DSSE payload")
        payload_type = value["payloadType"]
        if not isinstance(payload_type, str):
            raise EncodingError("DSSE payloadType must be a string")
        signatures = value["signatures"]
        if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
            raise EncodingError(f"a DSSE envelope must carry 1 to {MAX_SIGNATURES} signatures")
        parsed = []
        for entry in signatures:
            if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
                raise EncodingError("a DSSE signature must be an object with exactly keyid, sig")
            keyid = entry["keyid"]
            if not isinstance(keyid, str) or not 0 < len(keyid) <= _MAX_KEYID_LENGTH:
                raise EncodingError("a DSSE keyid must be a non-empty short string")
            parsed.append(EnvelopeSignature(keyid, b64_decode(entry["sig"], what="DSSE sig")))
        return cls(payload_type, payload, tuple(parsed))

    def verify(self, signer: PublicKeys) -> None:
        """Check that ``signer`` signed this envelope.

        The signature must name the signer's key id and verify under its
        Ed25519 key; signatures by other keys are ignored, not trusted.

        Raises:
            SignatureError: no signature by ``signer`` is present, or it does
                not verify.
        """
        matching = [s for s in self.signatures if s.keyid == signer.key_id]
        if not matching:
            # ascii(): a keyid is any short string a stranger wrote; the
            # message is printed, and must not carry escapes or newlines.
            names = ", ".join(ascii(s.keyid) for s in self.signatures)
            raise SignatureError(
                f"the document is not signed by the expected key {signer.key_id} "
                f"(signed by: {names})"
            )
        message = pae(self.payload_type, self.payload)
        for signature in matching:
            verify_ed25519(signer.signing_key, message, signature.sig)
