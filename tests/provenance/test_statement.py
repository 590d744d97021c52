"""Commitments, releases and verdicts as signed in-toto Statements v1."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from secmark.crypto import IdentityKeys
from secmark.encoding import b64_decode, canonical_json
from secmark.errors import EncodingError, SignatureError
from secmark.messages import Envelope, sign_document
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.families import NoiseFamily
from secmark.messages.labels import ClassLabels
from secmark.messages.release import MODEL_SIGNING_FILES_SHA256, Release, create_release
from secmark.messages.verdict import ReleaseTime, Verdict
from secmark.messages.verdict import TestFigures as Figures
from secmark.provenance import (
    IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPES,
    attest,
    model_folder_digest,
    open_statement,
)
from tests.provenance.conftest import (
    sign_folder,
    signed_subject,
    write_key_pair,
    write_model_folder,
)

_T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _commitment(keys: IdentityKeys) -> bytes:
    return create_commitment(
        keys,
        family=NoiseFamily((1, 8, 8), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=256,
        model_label="tiny",
        created=_T,
    ).to_json()


def _folder_release(keys: IdentityKeys, digest: str) -> bytes:
    return create_release(
        keys,
        commitment_id="ab" * 32,
        model_digest=digest,
        model_digest_algorithm=MODEL_SIGNING_FILES_SHA256,
        model_name="tiny-model",
        model_version="1.0",
        created=_T,
    ).to_json()


def _verdict(keys: IdentityKeys) -> bytes:
    figures = Figures(
        128, 120, "1/10", "1/18446744073709551616", 53, 0.0, -300.0, 0.9, 1.0, 0, 0, 0, 0
    )
    verdict = Verdict(
        claim_id="01" * 32,
        challenge_id="02" * 32,
        commitment_id="03" * 32,
        transcript_id="04" * 32,
        owner="05" * 32,
        suspect="sha256:" + "06" * 32,
        commitment_time=_T,
        release=ReleaseTime("07" * 32, "08" * 32, _T),
        test=figures,
        prior_challenges=0,
        rivals=(),
        cross_checks=(),
        outcome="upheld",
        reason="the watermark holds",
        issued=_T,
    )
    return sign_document(verdict, keys).to_json()


def _payload(statement: bytes) -> dict[str, object]:
    value = json.loads(statement)
    assert value["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    return json.loads(b64_decode(value["payload"]))  # type: ignore[no-any-return]


def _resign(keys: IdentityKeys, statement: dict[str, object]) -> bytes:
    return Envelope.sign(IN_TOTO_PAYLOAD_TYPE, canonical_json(statement), keys).to_json()


def test_a_folder_release_statement_names_the_model_signing_subject(
    owner_keys: IdentityKeys, tmp_path: Path
) -> None:
    folder = write_model_folder(tmp_path / "tiny-model")
    private, _ = write_key_pair(tmp_path, "signer")
    sign_folder(folder, private, tmp_path / "model.sig")
    release = _folder_release(owner_keys, model_folder_digest(folder))
    statement = attest(release, owner_keys)
    payload = _payload(statement)
    # Valid for the in-toto-attestation package's own v1 models.
    message = json_format.Parse(json.dumps(payload), statement_pb2.Statement())
    Statement.copy_from_pb(message).validate()
    assert payload["predicateType"] == PREDICATE_TYPES["secmark.release"]
    opened = open_statement(statement, owner_keys.public_keys)
    assert opened.subject_digest == signed_subject(tmp_path / "model.sig")
    assert isinstance(opened.document, Release)
    assert opened.document.model_digest_algorithm == MODEL_SIGNING_FILES_SHA256
    assert opened.document_id == hashlib.sha256(Envelope.from_json(release).payload).hexdigest()


@pytest.mark.parametrize("kind", ["commitment", "verdict"])
def test_commitment_and_verdict_statements_round_trip_with_the_document_id(
    owner_keys: IdentityKeys, kind: str
) -> None:
    document = _commitment(owner_keys) if kind == "commitment" else _verdict(owner_keys)
    opened = open_statement(attest(document, owner_keys), owner_keys.public_keys)
    original = Envelope.from_json(document)
    assert canonical_json(json.loads(original.payload)) == original.payload
    assert opened.document_id == hashlib.sha256(original.payload).hexdigest()
    assert opened.subject_digest == opened.document_id
    assert opened.subject_name == f"secmark.{kind}"
    assert isinstance(opened.document, Commitment if kind == "commitment" else Verdict)


def test_a_changed_predicate_or_subject_breaks_the_signature(owner_keys: IdentityKeys) -> None:
    statement = attest(_folder_release(owner_keys, "cd" * 32), owner_keys)
    envelope = json.loads(statement)
    payload = _payload(statement)
    for change in ("predicate", "subject"):
        forged = json.loads(json.dumps(payload))
        if change == "predicate":
            forged["predicate"]["model_version"] = "2.0"
        else:
            forged["subject"][0]["digest"]["sha256"] = "ef" * 32
        envelope["payload"] = base64.b64encode(canonical_json(forged)).decode()
        with pytest.raises(SignatureError):
            open_statement(canonical_json(envelope), owner_keys.public_keys)


def test_a_subject_the_predicate_does_not_give_is_refused_even_signed(
    owner_keys: IdentityKeys,
) -> None:
    payload = _payload(attest(_folder_release(owner_keys, "cd" * 32), owner_keys))
    payload["subject"] = [{"digest": {"sha256": "ef" * 32}, "name": "tiny-model"}]
    with pytest.raises(EncodingError, match="subject"):
        open_statement(_resign(owner_keys, payload), owner_keys.public_keys)


def test_another_signer_is_refused(owner_keys: IdentityKeys, other_keys: IdentityKeys) -> None:
    statement = attest(_folder_release(owner_keys, "cd" * 32), owner_keys)
    with pytest.raises(SignatureError):
        open_statement(statement, other_keys.public_keys)
    # Nor may anyone but its owner attest a commitment, or re-sign its statement.
    with pytest.raises(SignatureError):
        attest(_commitment(owner_keys), other_keys)
    payload = _payload(attest(_commitment(owner_keys), owner_keys))
    with pytest.raises(SignatureError, match="not by its owner"):
        open_statement(_resign(other_keys, payload), other_keys.public_keys)


def test_an_invalid_in_toto_statement_is_refused(owner_keys: IdentityKeys) -> None:
    payload = _payload(attest(_folder_release(owner_keys, "cd" * 32), owner_keys))
    for field, value in (("_type", "https://in-toto.io/Statement/v0.1"), ("subject", [])):
        forged = {**payload, field: value}
        with pytest.raises(EncodingError):
            open_statement(_resign(owner_keys, forged), owner_keys.public_keys)
    forged = {**payload, "predicateType": "https://model_signing/signature/v1.0"}
    with pytest.raises(EncodingError, match="predicate type"):
        open_statement(_resign(owner_keys, forged), owner_keys.public_keys)


def test_a_secmark_envelope_is_not_a_statement(owner_keys: IdentityKeys) -> None:
    with pytest.raises(EncodingError, match="payload type"):
        open_statement(_commitment(owner_keys), owner_keys.public_keys)
