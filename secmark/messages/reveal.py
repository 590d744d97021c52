"""The reveal: the owner's VRF proofs for exactly the challenged indices,
sealed to the arbiter.

The proofs (and, for pool families, the pool items with their Merkle paths;
for a committed response list, the whole list) are the :class:`RevealContents`, canonical JSON sealed with libsodium's
sealed box to the arbiter's X25519 key, so a claim does not publish the
watermark. The owner signs the :class:`Reveal` carrying the ciphertext and
the challenge id. After the verdict the arbiter puts the opened contents in
the bundle; they authenticate themselves, since only the owner's VRF key can
produce the proofs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from secmark.crypto.ecvrf import PROOF_SIZE
from secmark.crypto.keys import PublicKeys
from secmark.encoding import b64url_encode
from secmark.errors import ProofError
from secmark.messages.challenge import MAX_CHALLENGED
from secmark.messages.commitment import MAX_COMMITTED_TRIGGERS
from secmark.messages.document import (
    Fields,
    SignedDocument,
    decode_payload,
    encode_payload,
    open_document,
)
from secmark.messages.responses import MAX_RESPONSE_CHARACTERS, MAX_RESPONSES

__all__ = ["MAX_REVEAL_SIZE", "Reveal", "RevealContents", "RevealedTrigger", "open_reveal"]

MAX_REVEAL_SIZE = 256 * 1024 * 1024
"""Reveals of pool families carry items: the bound allows 16384 items of 16 KiB."""

_MAX_MERKLE_DEPTH = 64


@dataclass(frozen=True)
class RevealedTrigger:
    index: int
    proof: bytes = field(repr=False)
    pool_item: bytes | None = field(default=None, repr=False)
    merkle_path: tuple[bytes, ...] | None = field(default=None, repr=False)

    def to_fields(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "merkle_path": None
            if self.merkle_path is None
            else [b64url_encode(node) for node in self.merkle_path],
            "pool_item": None if self.pool_item is None else b64url_encode(self.pool_item),
            "proof": b64url_encode(self.proof),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> RevealedTrigger:
        index = fields.integer("index", minimum=0, maximum=MAX_COMMITTED_TRIGGERS - 1)
        merkle_path = None
        if not fields.is_null("merkle_path"):
            merkle_path = tuple(
                fields.bytes_list("merkle_path", size=32, max_items=_MAX_MERKLE_DEPTH)
            )
        pool_item = None if fields.is_null("pool_item") else fields.raw_bytes("pool_item")
        return cls(index, fields.raw_bytes("proof", size=PROOF_SIZE), pool_item, merkle_path)


@dataclass(frozen=True)
class RevealContents:
    """``secmark.reveal-contents`` version 1: what the sealed box holds."""

    TYPE: ClassVar[str] = "secmark.reveal-contents"
    VERSION: ClassVar[int] = 1

    challenge_id: str
    triggers: tuple[RevealedTrigger, ...]
    responses: tuple[str, ...] | None = None
    """The whole committed response list, for a commitment whose labels are
    ``responses`` (``secmark.messages.responses``); None otherwise."""

    def to_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "challenge_id": self.challenge_id,
            "triggers": [trigger.to_fields() for trigger in self.triggers],
        }
        # Written only when there is a list: every other reveal keeps its bytes.
        if self.responses is not None:
            fields["responses"] = list(self.responses)
        return fields

    @classmethod
    def from_fields(cls, fields: Fields) -> RevealContents:
        responses = None
        if fields.has("responses"):
            responses = tuple(
                fields.text_list(
                    "responses", max_items=MAX_RESPONSES, max_length=MAX_RESPONSE_CHARACTERS
                )
            )
        return cls(
            fields.hex_digest("challenge_id"),
            tuple(
                fields.objects("triggers", RevealedTrigger.from_fields, max_items=MAX_CHALLENGED)
            ),
            responses,
        )

    def to_json(self) -> bytes:
        return encode_payload(self)

    @classmethod
    def from_json(cls, data: bytes) -> RevealContents:
        return decode_payload(data, cls, MAX_REVEAL_SIZE)

    def seal(self, recipient: PublicKeys) -> bytes:
        return SealedBox(PublicKey(recipient.encryption_key)).encrypt(self.to_json())


@dataclass(frozen=True)
class Reveal:
    """``secmark.reveal`` version 1, signed by the owner."""

    TYPE: ClassVar[str] = "secmark.reveal"
    VERSION: ClassVar[int] = 1

    challenge_id: str
    sealed: bytes = field(repr=False)

    def to_fields(self) -> dict[str, Any]:
        return {"challenge_id": self.challenge_id, "sealed": b64url_encode(self.sealed)}

    @classmethod
    def from_fields(cls, fields: Fields) -> Reveal:
        return cls(fields.hex_digest("challenge_id"), fields.raw_bytes("sealed"))

    def open(self, key: PrivateKey) -> RevealContents:
        """Decrypt with the arbiter's X25519 key and check the inner challenge id.

        Raises:
            ProofError: the box does not open with this key, or it is for
                another challenge than the envelope says.
        """
        try:
            plaintext = SealedBox(key).decrypt(self.sealed)
        except CryptoError:
            raise ProofError(
                "the reveal is not sealed to this arbiter's key, or was altered"
            ) from None
        contents = RevealContents.from_json(plaintext)
        if contents.challenge_id != self.challenge_id:
            raise ProofError("the sealed reveal answers another challenge than its envelope names")
        return contents


def open_reveal(data: bytes, owner: PublicKeys) -> SignedDocument[Reveal]:
    """Parse a reveal and verify ``owner`` signed it."""
    return open_document(data, Reveal, owner, max_size=MAX_REVEAL_SIZE)
