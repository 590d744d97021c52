"""Every file under vectors/ is checked against the code, by its ``kind``.

A vector file of a kind this module does not know fails the suite, so no
vector can be added without a check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmark import errors
from secmark.crypto import IdentityKeys, VrfPublicKey, VrfSecretKey, decode_key_file
from secmark.crypto.ecvrf import ELL2, TAI, Suite
from secmark.crypto.merkle import MerkleTree, merkle_root, verify_inclusion
from secmark.encoding import canonical_json
from secmark.messages import Fields, create_identity, open_identity
from secmark.messages.commitment import create_commitment, open_commitment
from secmark.messages.families import OverlayFamily, PoolFamily, WeightsFamily, family_from_fields
from secmark.messages.labels import ResponseLabels, label_space_from_fields
from secmark.messages.responses import ResponseList
from secmark.messages.serving_policy import InputEncoding, open_serving_policy
from secmark.models import WeightsSuspect
from secmark.models.canonical import feature_matrix
from secmark.models.prompts import question_item, question_text
from secmark.serving.marking import canonical_input, decide, marking_alpha, verify_marking
from secmark.timestamp import TrustStore, verify_timestamp
from secmark.triggers import (
    CommittedPool,
    derive_trigger,
    trigger_alpha,
    verify_trigger,
)
from secmark.triggers.sampling import KeyStream, stream_keys

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _check_ecvrf(content: dict[str, Any], suite: Suite) -> None:
    assert content["suite"] == suite.name
    for vector in content["vectors"]:
        secret = VrfSecretKey(bytes.fromhex(vector["sk"]))
        alpha = bytes.fromhex(vector["alpha"])
        assert secret.public_key.public_bytes_raw().hex() == vector["pk"]
        assert suite.encode_to_curve(bytes.fromhex(vector["pk"]), alpha).hex() == vector["H"]
        proof, beta = secret.prove_and_hash(alpha, suite=suite)
        assert proof.hex() == vector["pi"]
        assert beta.hex() == vector["beta"]
        public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
        proof = bytes.fromhex(vector["pi"])
        assert public.verify(alpha, proof, suite=suite).hex() == vector["beta"]


def check_ecvrf_tai(content: dict[str, Any]) -> None:
    _check_ecvrf(content, TAI)


def check_ecvrf_ell2(content: dict[str, Any]) -> None:
    _check_ecvrf(content, ELL2)


def check_ecvrf_tai_negative(content: dict[str, Any]) -> None:
    for vector in content["vectors"]:
        expected = getattr(errors, vector["error"])
        with pytest.raises(expected):
            public = VrfPublicKey.from_public_bytes(bytes.fromhex(vector["pk"]))
            public.verify(bytes.fromhex(vector["alpha"]), bytes.fromhex(vector["pi"]))


def _vector_identity(content: dict[str, Any]) -> IdentityKeys:
    return IdentityKeys(
        bytes.fromhex(content["signing_seed"]),
        bytes.fromhex(content["vrf_seed"]),
        bytes.fromhex(content["encryption_key"]),
    )


def check_identity(content: dict[str, Any]) -> None:
    keys = _vector_identity(content)
    assert keys.key_id == content["key_id"]
    created = datetime.strptime(content["created"], "%Y-%m-%dT%H:%M:%SZ")
    signed = create_identity(keys, content["name"], created=created.replace(tzinfo=timezone.utc))
    assert signed.to_json() == content["envelope"].encode()
    assert signed.digest == content["payload_sha256"]
    opened = open_identity(content["envelope"].encode())
    assert opened.document.key_id == content["key_id"]


def check_identity_negative(content: dict[str, Any]) -> None:
    for vector in content["vectors"]:
        with pytest.raises(getattr(errors, vector["error"])):
            open_identity(vector["envelope"].encode())


def check_commitment(content: dict[str, Any], folder: Path) -> None:
    identity = json.loads((folder / content["identity"]).read_text(encoding="utf-8"))
    keys = _vector_identity(identity)
    created = datetime.strptime(content["created"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    signed = create_commitment(
        keys,
        family=_parsed(content["family"], family_from_fields),
        labels=_parsed(content["labels"], label_space_from_fields),
        size=content["size"],
        model_label=content["model_label"],
        nonce=bytes.fromhex(content["nonce"]),
        created=created,
    )
    assert signed.to_json() == content["envelope"].encode()
    assert signed.digest == content["commitment_id"]
    opened = open_commitment(content["envelope"].encode(), owner_key_id=keys.key_id)
    assert opened.digest == content["commitment_id"]


def _parsed(value: dict[str, Any], build: Callable[[Fields], Any]) -> Any:
    fields = Fields(value, context="vector")
    result = build(fields)
    fields.finish()
    return result


def check_keyfile(content: dict[str, Any]) -> None:
    data = content["key_file"].encode()
    keys = decode_key_file(data, content["passphrase"].encode())
    assert keys.key_id == content["key_id"]
    with pytest.raises(errors.KeyMaterialError):
        decode_key_file(data, content["passphrase"].encode() + b"!")


def check_timestamp_token(content: dict[str, Any], folder: Path) -> None:
    trust = TrustStore.from_pem((folder / content["root_certificate_file"]).read_bytes())
    token = (folder / content["token_file"]).read_bytes()
    message = bytes.fromhex(content["message_hex"])
    verified = verify_timestamp(token, message, trust, nonce=content["nonce"])
    assert verified.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ") == content["gen_time"]
    assert verified.serial_number == content["serial_number"]
    assert verified.root_certificate_sha256 == content["root_sha256"]
    with pytest.raises(errors.TimestampError):
        verify_timestamp(token, bytes(32), trust)


def _pool_items(hex_items: list[str], family: PoolFamily | OverlayFamily) -> np.ndarray:
    dtype = np.dtype(family.item_dtype).newbyteorder("<")
    return np.stack(
        [np.frombuffer(bytes.fromhex(h), dtype=dtype).reshape(family.item_shape) for h in hex_items]
    )


def check_trigger_derivation(content: dict[str, Any]) -> None:
    keys = _vector_identity(content["owner"])
    fields = content["commitment"]
    family = _parsed(fields["family"], family_from_fields)
    created = datetime.strptime(fields["created"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    signed = create_commitment(
        keys,
        family=family,
        labels=_parsed(fields["labels"], label_space_from_fields),
        size=fields["size"],
        model_label=fields["model_label"],
        pool_root=fields["pool_root"],
        nonce=bytes.fromhex(fields["nonce"]),
        created=created,
    )
    assert signed.to_json() == content["envelope"].encode()
    opened = open_commitment(content["envelope"].encode(), owner_key_id=keys.key_id)
    assert opened.digest == content["commitment_id"]
    items, pool = None, None
    if isinstance(family, (PoolFamily, OverlayFamily)):
        items = _pool_items(content["pool"], family)
        pool = CommittedPool.open(items, opened.document)
        assert pool.root.hex() == fields["pool_root"]
    for vector in content["triggers"]:
        index = vector["index"]
        trigger = derive_trigger(keys, opened, index, pool=pool)
        assert trigger_alpha(bytes.fromhex(opened.digest), index).hex() == vector["alpha"]
        assert (trigger.proof.hex(), trigger.beta.hex()) == (vector["pi"], vector["beta"])
        data = np.ascontiguousarray(
            trigger.input, dtype=trigger.input.dtype.newbyteorder("<")
        ).tobytes()
        assert hashlib.sha256(data).hexdigest() == vector["input_sha256"]
        if "input_hex" in vector:
            assert data.hex() == vector["input_hex"]
        assert np.asarray(trigger.label).tolist() == vector["label"]
        assert trigger.pool_index == vector["pool_index"]
        reveal: dict[str, Any] = {}
        if pool is not None and items is not None and trigger.pool_index is not None:
            path = pool.inclusion_path(trigger.pool_index)
            assert [h.hex() for h in path] == vector["merkle_path"]
            reveal = {"pool_item": items[trigger.pool_index], "merkle_path": path}
        assert verify_trigger(opened, index, bytes.fromhex(vector["pi"]), **reveal) == trigger


def check_trigger_derivation_negative(content: dict[str, Any]) -> None:
    for vector in content["vectors"]:
        signed = open_commitment(vector["envelope"].encode())
        family = signed.document.family
        reveal: dict[str, Any] = {}
        if "pool_item" in vector:
            assert isinstance(family, (PoolFamily, OverlayFamily))
            reveal["pool_item"] = _pool_items([vector["pool_item"]], family)[0]
        if "merkle_path" in vector:
            reveal["merkle_path"] = [bytes.fromhex(h) for h in vector["merkle_path"]]
        with pytest.raises(getattr(errors, vector["error"])):
            verify_trigger(signed, vector["index"], bytes.fromhex(vector["pi"]), **reveal)


def check_weights_derivation(content: dict[str, Any]) -> None:
    """The trigger-derivation checks, then rows and bits re-derived one bit at
    a time from the streams (specs/derivation.md 7.11) and the bits a suspect
    with the vector's parameter answers."""
    check_trigger_derivation(content)
    family = _parsed(content["commitment"]["family"], family_from_fields)
    assert isinstance(family, WeightsFamily)
    size = family.projected_size
    for vector in content["triggers"]:
        input_key, label_key = stream_keys(bytes.fromhex(vector["beta"]))
        row_bytes = KeyStream(input_key).read(-(-size // 8)).tobytes()
        row = [1 if (row_bytes[j // 8] >> (j % 8)) & 1 else -1 for j in range(size)]
        assert np.frombuffer(bytes.fromhex(vector["input_hex"]), dtype=np.int8).tolist() == row
        # U(2): one byte, its lowest bit (b = 1, every candidate accepted).
        assert KeyStream(label_key).read(1)[0] & 1 == vector["label"]
    parameter = np.frombuffer(bytes.fromhex(content["parameter_hex"]), dtype="<f4").reshape(
        family.parameter_shape
    )
    rows = np.stack(
        [np.frombuffer(bytes.fromhex(v["input_hex"]), dtype=np.int8) for v in content["triggers"]]
    )
    answers = WeightsSuspect.from_family({family.parameter: parameter}, family).predict(rows)
    assert answers.tolist() == [vector["answer"] for vector in content["triggers"]]
    reduced = parameter.astype(np.float64).mean(axis=0).reshape(-1)
    assert [int(float(np.dot(r.astype(np.float64), reduced)) > 0) for r in rows] == answers.tolist()


def check_weights_canonical(content: dict[str, Any]) -> None:
    """The trigger-derivation checks, then each suspect's canonical vector,
    feature matrix and bits recomputed from its layers (specs/derivation.md
    7.11.1); the rearranged suspect agrees with the original."""
    check_trigger_derivation(content)
    family = _parsed(content["commitment"]["family"], family_from_fields)
    assert isinstance(family, WeightsFamily) and family.reduction == "canonical"
    assert family.producer is not None and family.consumer is not None
    features = feature_matrix(family.projected_size, family.unit_size)
    assert hashlib.sha256(features.tobytes()).hexdigest() == content["feature_sha256"]
    rows = np.stack(
        [np.frombuffer(bytes.fromhex(v["input_hex"]), dtype=np.int8) for v in content["triggers"]]
    )
    vectors = []
    for case in content["suspects"]:
        state = {
            name: np.frombuffer(bytes.fromhex(case[f"{key}_hex"]), dtype="<f4").reshape(
                case[f"{key}_shape"]
            )
            for key, name in (
                ("parameter", family.parameter),
                ("producer", family.producer),
                ("consumer", family.consumer),
            )
        }
        suspect = WeightsSuspect.from_family(state, family)
        assert np.allclose(suspect.reduced, case["vector"], rtol=0, atol=1e-9)
        assert suspect.predict(rows).tolist() == case["answers"]
        vectors.append(np.asarray(case["vector"]))
    assert np.allclose(vectors[0], vectors[1], rtol=0, atol=1e-7)
    assert content["suspects"][0]["answers"] == content["suspects"][1]["answers"]


def check_merkle_rfc6962(content: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(leaf) for leaf in content["leaves"]]
    assert merkle_root([]).hex() == content["empty_root"]
    for size, root in enumerate(content["roots"], start=1):
        assert merkle_root(leaves[:size]).hex() == root
    for case in content["inclusion"]:
        index, size = case["index"], case["size"]
        path = [bytes.fromhex(h) for h in case["path"]]
        assert list(MerkleTree.from_leaves(leaves[:size]).inclusion_path(index)) == path
        verify_inclusion(
            bytes.fromhex(content["roots"][size - 1]), index, size, leaves[index], path
        )


def check_serving_marking(content: dict[str, Any]) -> None:
    seeds = content["operator"]
    operator = IdentityKeys(
        *(bytes.fromhex(seeds[n]) for n in ("signing_seed", "vrf_seed", "encryption_key"))
    )
    policy = open_serving_policy(content["policy"].encode())
    assert policy.digest == content["policy_id"]
    assert policy.document.operator == operator.public_keys
    for case in content["cases"]:
        canonical = canonical_input(np.array(case["input"]), policy.document.input)
        assert canonical.hex() == case["canonical"]
        digest = hashlib.sha256(canonical).digest()
        assert digest.hex() == case["input_digest"]
        alpha = marking_alpha(bytes.fromhex(policy.digest), digest)
        assert alpha.hex() == case["alpha"]
        beta = operator.vrf.hash(alpha)
        assert beta.hex() == case["beta"]
        decision = decide(beta, policy.document)
        assert (decision.selected, decision.answer_index, decision.logged) == (
            case["selected"],
            case["answer_index"],
            case["logged"],
        )
        if case["proof"] is None:
            assert not decision.logged
            continue
        proof = bytes.fromhex(case["proof"])
        assert operator.vrf.prove(alpha) == proof
        verify_marking(
            policy,
            input_digest=digest,
            model_answer=case["model_answer"],
            served_answer=case["served_answer"],
            marked=case["selected"],
            proof=proof,
        )


def check_serving_canonical_input(content: dict[str, Any]) -> None:
    for case in content["cases"]:
        encoding = InputEncoding(case["dtype"], tuple(case["shape"]))
        if case["canonical"] is None:
            with pytest.raises(errors.EncodingError):
                canonical_input(np.array(case["input"]), encoding)
        else:
            assert canonical_input(np.array(case["input"]), encoding).hex() == case["canonical"]


def check_responses(content: dict[str, Any]) -> None:
    """The trigger-derivation checks, then the question pool items, the
    response list's canonical JSON and digest, the response each answer text
    gives, and the lists that must be refused (specs/derivation.md 7.12)."""
    check_trigger_derivation(content)
    labels = _parsed(content["commitment"]["labels"], label_space_from_fields)
    assert isinstance(labels, ResponseLabels)
    family = _parsed(content["commitment"]["family"], family_from_fields)
    assert isinstance(family, PoolFamily)
    for question, item in zip(content["questions"], content["pool"], strict=True):
        assert question_item(question, family.item_shape[0]).tobytes().hex() == item
        assert question_text(np.frombuffer(bytes.fromhex(item), dtype=np.uint8)) == question
    listed = ResponseList(tuple(content["responses"]))
    assert canonical_json(content["responses"]).decode() == content["responses_canonical_json"]
    digest = hashlib.sha256(content["responses_canonical_json"].encode()).hexdigest()
    assert listed.digest == digest == content["responses_digest"] == labels.digest
    assert len(listed) == labels.num_classes
    for answer in content["answers"]:
        assert listed.index_of(answer["text"]) == answer["gives"]
    for refused in content["refused_lists"]:
        with pytest.raises(getattr(errors, refused["error"])):
            ResponseList(tuple(refused["responses"]))


CHECKERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "ecvrf-tai": check_ecvrf_tai,
    "ecvrf-ell2": check_ecvrf_ell2,
    "ecvrf-tai-negative": check_ecvrf_tai_negative,
    "identity": check_identity,
    "identity-negative": check_identity_negative,
    "keyfile": check_keyfile,
    "trigger-derivation": check_trigger_derivation,
    "trigger-derivation-negative": check_trigger_derivation_negative,
    "weights-derivation": check_weights_derivation,
    "weights-canonical": check_weights_canonical,
    "responses": check_responses,
    "merkle-rfc6962": check_merkle_rfc6962,
    "serving-marking": check_serving_marking,
    "serving-canonical-input": check_serving_canonical_input,
}
# Checks that read files beside the vector file.
FOLDER_CHECKERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "timestamp-token": check_timestamp_token,
    "commitment": check_commitment,
}


def vector_files() -> list[Path]:
    return sorted(VECTORS.rglob("*.json"))


def test_vector_directory_is_not_empty() -> None:
    assert len(vector_files()) >= len(CHECKERS) + len(FOLDER_CHECKERS)


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: str(p.relative_to(VECTORS)))
def test_vector_file(path: Path) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    kind = content.get("kind")
    assert content.get("source"), f"{path}: a vector file must name its source"
    if kind in FOLDER_CHECKERS:
        FOLDER_CHECKERS[kind](content, path.parent)
    else:
        assert kind in CHECKERS, f"{path}: no check for vector kind {kind!r}"
        CHECKERS[kind](content)
