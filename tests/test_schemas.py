"""The JSON Schemas shipped in secmark.schemas accept what the code writes and the vectors hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from secmark import schemas
from secmark.crypto import INTERACTIVE_KDF, IdentityKeys, encode_key_file
from secmark.errors import SecmarkError
from secmark.messages import Envelope, create_identity
from tests.conftest import load_vector

DOCUMENTS = (
    "bundle",
    "bundle-report",
    "challenge",
    "claim",
    "commitment",
    "envelope",
    "extraction-bundle",
    "extraction-claim",
    "extraction-verdict",
    "identity",
    "keyfile",
    "log-checkpoint",
    "public-keys",
    "release",
    "reveal",
    "reveal-contents",
    "scan-finding",
    "serving-policy",
    "timestamp-evidence",
    "transcript",
    "verdict",
)


def _registry() -> Registry:
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.load_all().values()
    )


def validator(name: str) -> Draft202012Validator:
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def test_every_document_has_a_shipped_schema() -> None:
    assert set(schemas.names()) == set(DOCUMENTS)


def test_every_schema_is_valid_draft_2020_12() -> None:
    for name, schema in schemas.load_all().items():
        Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"https://secmark.invalid/schemas/{name}.schema.json"


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, member in value.items():
            if key == "$ref" and isinstance(member, str):
                yield member
            else:
                yield from _references(member)
    elif isinstance(value, list):
        for member in value:
            yield from _references(member)


def test_every_reference_resolves_to_a_shipped_schema() -> None:
    shipped = schemas.load_all()
    ids = {schema["$id"] for schema in shipped.values()}
    for schema in shipped.values():
        for reference in _references(schema):
            target = urljoin(schema["$id"], reference).partition("#")[0]
            assert target in ids, (schema["$id"], reference)


@pytest.mark.parametrize("name", ["../envelope", "envelope.schema.json", "", "Envelope"])
def test_an_unknown_schema_name_is_refused(name: str) -> None:
    with pytest.raises(SecmarkError, match="no schema is named"):
        schemas.load(name)


def test_the_specification_links_only_to_shipped_schemas() -> None:
    specs = Path(__file__).resolve().parent.parent / "specs"
    assert not (specs / "schemas").exists(), "the schemas live in secmark/schemas only"
    for page in specs.glob("*.md"):
        for link in page.read_text(encoding="utf-8").split("](../secmark/schemas/")[1:]:
            target = link.split(")", 1)[0]
            assert not target or target[: -len(".schema.json")] in schemas.names(), (page, target)


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
        (
            OverlayFamily(50, (8, 8), "uint8", 4, 0, 255),
            RegressionLabels(0.0, 1.0, 0.01),
            "00" * 32,
        ),
    ]
    for family, labels, root in cases:
        signed = create_commitment(
            owner_keys, family=family, labels=labels, size=16, model_label="m", pool_root=root
        )
        validator("commitment").validate(json.loads(signed.payload))
    authority = TimestampAuthority.initialize(
        tmp_path / "tsa", passphrase=None, allow_unencrypted=True
    )
    evidence = collect_evidence(signed.digest, [authority.respond])
    validator("timestamp-evidence").validate(json.loads(evidence.to_json()))


# -- the dispute documents (specs/dispute.md) -------------------------------------


@pytest.fixture(scope="module")
def dispute_documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Every document of real disputes, by schema name: two rival claims
    with releases and cross-checks, one without a release whose suspect
    refuses some queries."""
    import numpy as np

    from secmark.models import CallableSuspect
    from tests.protocol.conftest import SUSPECT, World, memorising_suspect

    world = World(tmp_path_factory.mktemp("dispute"))
    owner, thief = world.commit(world.owner), world.commit(world.thief)
    path_a, path_b = world.model_file("A"), world.model_file("B")
    world.register_release(owner, path_a)
    world.register_release(thief, path_b)
    model_a, model_b = memorising_suspect(owner), memorising_suspect(owner, thief)
    models = {path_a.read_bytes(): model_a, path_b.read_bytes(): model_b}
    arbiter = world.arbiter()
    runs = [world.run_case(mark, model_b, arbiter=arbiter, decide=False) for mark in (owner, thief)]
    released = {runs[0].case.name: path_a, runs[1].case.name: path_b}
    for run in runs:
        run.verdict = arbiter.decide(
            run.case, released_models=released, load_model=lambda path: models[path.read_bytes()]
        )
    assert runs[0].decision.cross_checks and runs[1].decision.rivals

    calls = 0

    def refusing(batch: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls % 16 == 1:  # a few refusals, within the failure budget
            raise RuntimeError("refused")
        return model_a.predict(batch)

    other = world.arbiter(folder="other")
    runs.append(
        world.run_case(
            owner,
            CallableSuspect(refusing, batch_size=1, reference=SUSPECT),
            arbiter=other,
            with_release=False,
        )
    )
    assert runs[-1].decision.test.trigger_errors + runs[-1].decision.test.decoy_errors > 0

    documents: dict[str, list[bytes]] = {
        name: [] for name in ("release", "claim", "challenge", "reveal")
    }
    documents.update({name: [] for name in ("reveal-contents", "transcript", "verdict", "bundle")})
    documents["release"] = [owner.release or b"", thief.release or b""]
    for run in runs:
        documents["claim"].append(run.claim)
        documents["challenge"].append(run.challenge)
        documents["reveal"].append(run.reveal)
        documents["transcript"].append(run.case.read("transcript.json"))
        documents["verdict"].append(run.verdict or b"")
        documents["reveal-contents"].append(run.case.read("reveal-contents.json"))
        documents["bundle"].append(run.bundle)
    return documents


UNSIGNED = ("reveal-contents", "bundle")


@pytest.mark.parametrize(
    "name",
    [
        "release",
        "claim",
        "challenge",
        "reveal",
        "reveal-contents",
        "transcript",
        "verdict",
        "bundle",
    ],
)
def test_dispute_documents_match_schemas(
    dispute_documents: dict[str, list[bytes]], name: str
) -> None:
    for data in dispute_documents[name]:
        if name in UNSIGNED:
            payload = json.loads(data)
        else:
            validator("envelope").validate(json.loads(data))
            payload = json.loads(Envelope.from_json(data).payload)
        validator(name).validate(payload)
        if name == "bundle":
            for member in (
                "arbiter_identity",
                "claim",
                "challenge",
                "reveal",
                "transcript",
                "verdict",
            ):
                validator("envelope").validate(json.loads(payload[member]))
            validator("reveal-contents").validate(json.loads(payload["reveal_contents"]))
        extra = {**payload, "extra": 1}
        assert not validator(name).is_valid(extra)


def test_dispute_schemas_refuse_what_the_code_refuses(
    dispute_documents: dict[str, list[bytes]],
) -> None:
    claim = json.loads(Envelope.from_json(dispute_documents["claim"][0]).payload)
    assert claim["release"] is not None
    assert not validator("claim").is_valid({**claim, "release_evidence": None})
    assert not validator("claim").is_valid({**claim, "evidence_kinds": []})
    transcript = json.loads(Envelope.from_json(dispute_documents["transcript"][0]).payload)
    entry = transcript["entries"][0]
    assert not validator("transcript").is_valid(
        {**transcript, "entries": [{**entry, "error": "x"}]}
    )
    assert not validator("transcript").is_valid(
        {**transcript, "entries": [{**entry, "answer": None}]}
    )
    # A decoy may carry a known label; a trigger never does.
    trigger = next(e for e in transcript["entries"] if e["trigger_index"] is not None)
    decoy = next(e for e in transcript["entries"] if e["trigger_index"] is None)
    assert validator("transcript").is_valid(
        {**transcript, "entries": [{**decoy, "decoy_label": 3}]}
    )
    assert not validator("transcript").is_valid(
        {**transcript, "entries": [{**trigger, "decoy_label": 3}]}
    )
    verdict = json.loads(Envelope.from_json(dispute_documents["verdict"][0]).payload)
    assert not validator("verdict").is_valid({**verdict, "outcome": "won"})
    assert not validator("verdict").is_valid(
        {**verdict, "test": {**verdict["test"], "alpha": "1e-3"}}
    )
    challenge = json.loads(Envelope.from_json(dispute_documents["challenge"][0]).payload)
    assert not validator("challenge").is_valid({**challenge, "indices": []})
    assert not validator("challenge").is_valid(
        {**challenge, "vrf_proof": challenge["vrf_proof"][:-1]}
    )


def test_serving_policies_match_their_schema(owner_keys: IdentityKeys) -> None:
    from fractions import Fraction

    from secmark.messages.serving_policy import InputEncoding, create_serving_policy

    raw = load_vector("serving/marking.json")["policy"].encode()
    validator("envelope").validate(json.loads(raw))
    validator("serving-policy").validate(json.loads(Envelope.from_json(raw).payload))
    for classes, log_rate in ((2, Fraction(1)), (1000, Fraction(0))):
        signed = create_serving_policy(
            owner_keys,
            operator=owner_keys.public_keys,
            release_id="00" * 32,
            num_classes=classes,
            rate=Fraction(3, 1000),
            log_rate=log_rate,
            input_encoding=InputEncoding("uint8", (3, 32, 32)),
        )
        payload = json.loads(signed.payload)
        validator("serving-policy").validate(payload)
        payload["labels"] = {"kind": "tokens", "vocab_size": 10, "length": 2}
        assert not validator("serving-policy").is_valid(payload)


def test_extraction_documents_match_their_schemas(tmp_path: Path) -> None:
    from secmark.encoding import b64url_decode
    from tests.serving.extraction_world import World, random_model

    world = World(tmp_path)
    served = world.serve(queries=60)
    claim, extract = world.claim(served)
    bundle = json.loads(world.decide(claim, extract, random_model))
    validator("extraction-bundle").validate(bundle)
    payloads = {
        name: json.loads(Envelope.from_json(bundle[name].encode()).payload)
        for name in ("claim", "verdict")
    }
    validator("extraction-claim").validate(payloads["claim"])
    validator("extraction-verdict").validate(payloads["verdict"])
    raw = b64url_decode(json.loads(extract)["checkpoint"])
    validator("envelope").validate(json.loads(raw))
    validator("log-checkpoint").validate(json.loads(Envelope.from_json(raw).payload))
    payloads["verdict"]["log_word"] = "platform"
    assert not validator("extraction-verdict").is_valid(payloads["verdict"])


def test_a_scan_finding_matches_its_schema(owner_keys: IdentityKeys) -> None:
    from datetime import datetime, timezone
    from fractions import Fraction

    from secmark.messages.document import sign_document
    from secmark.messages.finding import ScanFinding

    finding = ScanFinding(
        scan_id="nightly 2026-12-01",
        deposit_id="ab" * 32,
        commitment_id="cd" * 32,
        owner=owner_keys.key_id,
        model="sha256:" + "ef" * 32,
        p0=Fraction(1, 10),
        alpha=Fraction(1, 2**64),
        models=10_000,
        deposits=1_000,
        trials=64,
        threshold=40,
        matches=61,
        scanned=datetime(2026, 12, 1, tzinfo=timezone.utc),
    )
    raw = sign_document(finding, owner_keys).to_json()
    payload = json.loads(Envelope.from_json(raw).payload)
    validator("scan-finding").validate(payload)
    payload["p0"] = "0.1"
    assert not validator("scan-finding").is_valid(payload)
