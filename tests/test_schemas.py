"""The JSON Schemas in specs/schemas/ accept what the code writes and the vectors hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from secmark.crypto import INTERACTIVE_KDF, IdentityKeys, encode_key_file
from secmark.messages import Envelope, create_identity
from tests.conftest import load_vector

SCHEMAS = Path(__file__).resolve().parent.parent / "specs" / "schemas"


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def test_every_schema_is_valid_draft_2020_12() -> None:
    for path in SCHEMAS.glob("*.schema.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_identity_vector_matches_schemas() -> None:
    raw = load_vector("documents/identity.json")["envelope"].encode()
    validator("envelope").validate(json.loads(raw))
    validator("identity").validate(json.loads(Envelope.from_json(raw).payload))


def test_identity_schema_refuses_an_extra_field(owner_keys: IdentityKeys) -> None:
    payload: dict[str, Any] = json.loads(create_identity(owner_keys, "x").payload)
    payload["extra"] = 1
    assert not validator("identity").is_valid(payload)


@pytest.mark.parametrize("unencrypted", [False, True])
def test_key_files_match_schema(owner_keys: IdentityKeys, unencrypted: bool) -> None:
    data = encode_key_file(
        owner_keys, None if unencrypted else b"pass", kdf=INTERACTIVE_KDF, unencrypted=unencrypted
    )
    validator("keyfile").validate(json.loads(data))
    validator("keyfile").validate(json.loads(load_vector("documents/keyfile.json")["key_file"]))


def test_commitment_and_evidence_match_schemas(owner_keys: IdentityKeys, tmp_path: Path) -> None:
    from secmark.messages.commitment import create_commitment
    from secmark.messages.families import NoiseFamily, OverlayFamily, TokensFamily
    from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
    from secmark.timestamp import TimestampAuthority
    from secmark.timestamp.evidence import collect_evidence

    cases = [
        (NoiseFamily((1, 8, 8), "float32", 0.0, 1.0), ClassLabels(10), None),
        (TokensFamily(16, 1000, (0,)), TokenLabels(1000, 2), None),
        (OverlayFamily(50, (8, 8), "uint8", 4, 0, 255), RegressionLabels(0.0, 1.0, 0.01), "00" * 32),
    ]
    for family, labels, root in cases:
        signed = create_commitment(
            owner_keys, family=family, labels=labels, size=16, model_label="m", pool_root=root
        )
        validator("commitment").validate(json.loads(signed.payload))
    authority = TimestampAuthority.initialize(tmp_path / "tsa", passphrase=None, allow_unencrypted=True)
    evidence = collect_evidence(signed.digest, [authority.respond])
    validator("timestamp-evidence").validate(json.loads(evidence.to_json()))
