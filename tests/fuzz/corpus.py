"""Valid seeds for every fuzz target, made once per process.

One whole dispute is run (an in-process TSA, the owner's commitment and
release, the arbiter's challenge, the reveal, the queries and the verdict),
so that every document, the bundle and the timestamp tokens are real ones.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from asn1crypto import tsp

from secmark.crypto import IdentityKeys
from secmark.crypto.passphrase_box import KdfParams
from secmark.encoding import canonical_json
from secmark.messages import SignedDocument, create_identity
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    WeightsFamily,
)
from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
from secmark.timestamp import TrustStore
from secmark.timestamp.evidence import TimestampEvidence
from secmark.triggers import iter_triggers, write_trigger_set
from tests.conftest import fixed_keys
from tests.protocol.conftest import World, memorising_suspect

__all__ = ["CHEAP_KDF", "PASSPHRASE", "Corpus", "corpus"]

PASSPHRASE = b"fuzz passphrase"
CHEAP_KDF = KdfParams(1, 8192)
"""libsodium's least Argon2id cost: key files are fuzzed by the hundred thousand."""


@dataclass
class Corpus:
    folder: Path
    owner: IdentityKeys
    arbiter: IdentityKeys
    trust: TrustStore
    now: datetime
    identity: bytes
    commitments: list[bytes]
    release: bytes
    claim: bytes
    challenge: bytes
    reveal: bytes
    reveal_contents: bytes
    transcript: bytes
    verdict: bytes
    evidence: bytes
    bundle: bytes
    token: bytes
    token_message: bytes
    trigger_set: Path
    signed_commitment: SignedDocument[Commitment]
    extra: dict[str, Any] = field(default_factory=dict)


def _commitments(keys: IdentityKeys) -> list[bytes]:
    """One commitment per family and label space."""
    root = hashlib.sha256(b"pool").hexdigest()
    made = [
        create_commitment(
            keys, family=family, labels=labels, size=64, model_label="m", pool_root=pool
        )
        for family, labels, pool in (
            (NoiseFamily((1, 4, 4), "float32", 0.0, 1.0), ClassLabels(10), None),
            (NoiseFamily((3,), "uint8", 0, 255), RegressionLabels(0.0, 1.0, 0.01), None),
            (TokensFamily(8, 1000, (0, 1)), TokenLabels(1000, 4), None),
            (PoolFamily(1000, (2, 2), "uint8"), ClassLabels(3), root),
            (OverlayFamily(1000, (2, 2), "float32", 2, 0.0, 1.0), ClassLabels(3), root),
            (WeightsFamily("fc.weight", (4, 8)), ClassLabels(2), None),
        )
    ]
    return [signed.to_json() for signed in made]


def _trigger_set(folder: Path, keys: IdentityKeys) -> tuple[Path, SignedDocument[Commitment]]:
    signed = create_commitment(
        keys,
        family=NoiseFamily((1, 2, 2), "float32", 0.0, 1.0),
        labels=ClassLabels(10),
        size=16,
        model_label="m",
    )
    target = folder / "trigger-set"
    write_trigger_set(target, signed, iter_triggers(keys, signed, range(4)), 4)
    return target, signed


@functools.lru_cache(maxsize=1)
def corpus() -> Corpus:
    folder = Path(tempfile.mkdtemp(prefix="secmark-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    world = World(folder)
    mark = world.commit()
    world.register_release(mark, world.model_file("released"))
    run = world.run_case(mark, memorising_suspect(mark))
    assert run.verdict is not None
    evidence = TimestampEvidence.from_json(mark.evidence)
    token = evidence.tokens[0].token
    trigger_set, trigger_commitment = _trigger_set(folder, world.owner)
    # Tokens must not be dated after the verifier's clock.
    now = datetime.now(timezone.utc) + timedelta(days=1)
    return Corpus(
        folder=folder,
        owner=world.owner,
        arbiter=world.arbiter_keys,
        trust=world.trust,
        now=now,
        identity=create_identity(fixed_keys("fuzz identity"), "fuzz identity").to_json(),
        commitments=[mark.data, *_commitments(world.owner)],
        release=mark.release or b"",
        claim=run.claim,
        challenge=run.challenge,
        reveal=run.reveal,
        reveal_contents=run.case.read("reveal-contents.json"),
        transcript=run.case.read("transcript.json"),
        verdict=run.verdict,
        evidence=mark.evidence,
        bundle=run.bundle,
        token=token,
        token_message=evidence.message,
        trigger_set=trigger_set,
        signed_commitment=trigger_commitment,
    )


def oip_responses() -> list[bytes]:
    """Valid OIP v2 inference responses for two rows."""
    replies: list[dict[str, Any]] = [
        {"outputs": [{"name": "label", "shape": [2], "datatype": "INT64", "data": [3, 1]}]},
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "logits",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [0.1, 0.9, 0.0, 1, 2, 3],
                },
                {"name": "label", "shape": [2, 1], "datatype": "INT64", "data": [[1], [2]]},
            ],
        },
        {"outputs": [{"name": "label", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]},
    ]
    return [canonical_json(reply) for reply in replies]


def json_api_responses() -> list[bytes]:
    """Valid JSON API responses for two rows (answers at ``/predictions``)."""
    replies: list[Any] = [
        {"predictions": [[0.1, 0.9, 0.0], [1, 2, 3]]},
        {"model": "m", "predictions": [[2.5, -1.0], [0.0, 7.25]], "id": "x"},
    ]
    return [canonical_json(reply) for reply in replies]


def suspect_configs() -> list[bytes]:
    """Valid suspect configs of both protocols, most members set."""
    configs: list[dict[str, Any]] = [
        {
            "protocol": "oip",
            "url": "http://127.0.0.1:8080",
            "model": "digits",
            "model_version": "3",
            "input_name": "input-0",
            "datatype": "FP32",
            "output_name": "predict_proba",
            "requested_outputs": ["predict_proba"],
            "output": "argmax",
            "batch_size": 32,
            "timeout": 5,
            "retries": 1,
            "backoff": 0.5,
            "headers": {"X-Trace": "secmark"},
            "headers_from_env": {"Authorization": "SECMARK_SUSPECT_TOKEN"},
            "description": "a tested endpoint",
        },
        {
            "protocol": "json",
            "url": "https://api.example/v1/models/m:rawPredict",
            "request": {"instances": "{{inputs}}", "parameters": {"top_k": 1}},
            "answers": "/predictions",
            "answer": "/scores",
            "output": "argmax",
            "batch_dimension": True,
            "input_shape": [64],
            "max_response_bytes": 1048576,
        },
    ]
    return [canonical_json(config) for config in configs]


def tst_serial(token: bytes) -> int:
    signed = tsp.TimeStampResp.load(token)["time_stamp_token"]["content"]
    return int(signed["encap_content_info"]["content"].parsed["serial_number"].native)


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
