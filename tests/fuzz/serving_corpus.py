"""Valid seeds for the serving-side fuzz targets, made once per process.

One small extraction case is built with ``tests/serving/extraction_world.py``
(an in-process TSA, the owner's serving policy, a platform-operated query
log with three client accounts, a checkpoint, the thief's extract and
claim) and decided by three arbiter folders: once on a copy trained on
the thief's answers (upheld), once on an independent model (rejected),
and once on the copy with 7 tests (the marks are about 12: a sample the
arbiter's VRF chooses, which at 7 of 7 is still upheld). The traffic is kept small (a few dozen leaves) so that each examination
takes milliseconds; the whole corpus takes about a second.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

from secmark.crypto import IdentityKeys
from secmark.encoding import canonical_json
from secmark.messages.document import SignedDocument
from secmark.messages.serving_policy import InputEncoding, ServingPolicy, create_serving_policy
from secmark.protocol.extraction import MAX_TESTED, ExtractionArbiter
from secmark.serving.entry import LogEntry, leaf_of
from secmark.serving.extract import ClientExtract
from secmark.timestamp import TrustStore
from tests.serving.extraction_world import World, copy_of, random_model

__all__ = ["ServingCorpus", "gateway_policies", "gateway_requests", "serving_corpus"]

_ALPHA = Fraction(1, 1 << 20)
"""The largest level an arbiter may test at: with three accounts, 8 marks
uphold a claim, so a few dozen queries make an upheld seed."""


@dataclass
class ServingCorpus:
    folder: Path
    owner: IdentityKeys
    operator: IdentityKeys
    arbiter: IdentityKeys
    trust: TrustStore
    now: datetime
    world: World
    policy: SignedDocument[ServingPolicy]
    policies: list[bytes]
    checkpoint: bytes
    extract: bytes
    extracts: list[bytes]
    entries: list[bytes]
    leaves: list[bytes]
    claim: bytes
    verdicts: list[bytes]
    transcripts: list[bytes]
    bundles: list[bytes]
    committed: frozenset[bytes]
    """Every entry of the log, canonical bytes: an accepted extract may hold no other."""


def _other_policies(world: World) -> list[bytes]:
    """Policies of the other shapes: the any-label rule, integer inputs, log rate 1."""
    made = [
        create_serving_policy(
            world.owner,
            operator=world.owner.public_keys,
            release_id=hashlib.sha256(b"release 2").hexdigest(),
            num_classes=2,
            rate=Fraction(3, 7),
            log_rate=Fraction(1),
            input_encoding=InputEncoding("uint8", (2, 3, 4)),
            model_label="two classes",
        ),
        create_serving_policy(
            world.owner,
            operator=world.platform.public_keys,
            release_id=hashlib.sha256(b"release 3").hexdigest(),
            num_classes=1000,
            rate=Fraction(1, 1 << 32),
            answer_rule="any-label",
            input_encoding=InputEncoding("int64", (16,)),
        ),
    ]
    return [policy.to_json() for policy in made]


@functools.lru_cache(maxsize=1)
def serving_corpus() -> ServingCorpus:
    folder = Path(tempfile.mkdtemp(prefix="secmark-fuzz-serving-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    world = World(folder)
    served = world.serve(queries=60, repeat=2)
    claim, extract = world.claim(served)
    bundles = []
    # Upheld, rejected, and upheld on a sample of the marks that the
    # arbiter's VRF chooses (fewer tested than marked).
    for name, model, most in (
        ("upheld", copy_of(served.answers), MAX_TESTED),
        ("rejected", random_model, MAX_TESTED),
        ("sampled", copy_of(served.answers), 7),
    ):
        arbiter = ExtractionArbiter(
            world.arbiter_keys, world.trust, folder / name, alpha=_ALPHA, max_tested=most
        )
        bundles.append(world.decide(claim, extract, model, arbiter))
    parsed = ClientExtract.from_bytes(extract)
    log_entries = [served.log.entry(seq) for seq in range(len(parsed.leaves))]
    assert [leaf_of(entry) for entry in log_entries] == list(parsed.leaves)
    members = [_members(bundle) for bundle in bundles]
    # A second extract: the same checkpoint, without the decoys (they are optional).
    bare = ClientExtract(
        parsed.client,
        parsed.checkpoint,
        parsed.leaves,
        tuple(e for e in parsed.entries if LogEntry.from_bytes(e).marked),
    ).to_bytes()
    return ServingCorpus(
        folder=folder,
        owner=world.owner,
        operator=world.platform,
        arbiter=world.arbiter_keys,
        trust=world.trust,
        now=datetime.now(timezone.utc) + timedelta(days=1),
        world=world,
        policy=served.policy,
        policies=[served.policy.to_json(), *_other_policies(world)],
        checkpoint=parsed.checkpoint,
        extract=extract,
        extracts=[extract, bare],
        entries=list(parsed.entries[:2])
        + [e for e in parsed.entries if LogEntry.from_bytes(e).marked][:1],
        leaves=list(parsed.leaves[:3]),
        claim=claim,
        verdicts=[m["verdict"].encode() for m in members],
        transcripts=[m["transcript"].encode() for m in members],
        bundles=bundles,
        committed=frozenset(entry.to_bytes() for entry in log_entries),
    )


def _members(bundle: bytes) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(bundle)
    return value


# -- gateway request bodies --------------------------------------------------------


def gateway_policies() -> list[tuple[InputEncoding, int]]:
    """The input encodings (and class counts) of the fuzzed gateways."""
    return [(InputEncoding("float32", (2, 3)), 10), (InputEncoding("uint8", (4,)), 3)]


def gateway_requests() -> list[bytes]:
    """Valid OIP v2 request bodies, one tag byte first: which gateway reads it."""
    bodies: list[tuple[int, dict[str, Any]]] = [
        (
            0,
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [2, 2, 3],
                        "datatype": "FP32",
                        "data": [0.5, -0.0, 1, 2.25, -3.5e-3, 1e30, 0, 0, 0, 0, 0, 7],
                    }
                ],
                "id": "r1",
            },
        ),
        (
            0,
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 2, 3],
                        "datatype": "FP32",
                        "data": [[[0.1, 0.2, 0.3], [-1, 2, 3.0000001]]],
                        "parameters": {"content_type": "np"},
                    }
                ],
                "outputs": [{"name": "label"}],
                "parameters": {"trace": True},
            },
        ),
        (
            1,
            {
                "inputs": [
                    {"name": "bytes", "shape": [3, 4], "datatype": "UINT8", "data": list(range(12))}
                ]
            },
        ),
        (
            1,
            {
                "inputs": [
                    {
                        "name": "bytes",
                        "shape": [1, 4],
                        "datatype": "UINT8",
                        "data": [[255, 0, 1.0, 254]],
                    }
                ]
            },
        ),
    ]
    return [bytes([tag]) + canonical_json(body) for tag, body in bodies]
