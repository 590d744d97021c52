"""Regenerate the trigger-derivation vectors (``specs/derivation.md`` 7.10).

Run from the repository root: ``python3 vectors/triggers/generate.py``.
Every input is fixed (the owner key of ``vectors/documents/identity.json``,
each commitment's nonce and time, the pools), and Ed25519 and ECVRF are
deterministic, so the output is identical on every run; a difference after a
code change means the change altered the derivation that other
implementations rely on. ``merkle-rfc6962.json`` is copied from a published
source, not generated, and is left alone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.encoding import canonical_json
from secmark.messages.commitment import create_commitment
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    TriggerFamily,
    WeightsFamily,
)
from secmark.messages.labels import (
    ClassLabels,
    LabelSpace,
    RegressionLabels,
    ResponseLabels,
    TokenLabels,
)
from secmark.messages.responses import ResponseList
from secmark.models import WeightsSuspect
from secmark.models.canonical import feature_matrix
from secmark.models.prompts import question_item
from secmark.triggers import CommittedPool, derive_trigger, pool_root, trigger_alpha

HERE = Path(__file__).resolve().parent
IDENTITY = HERE.parent / "documents" / "identity.json"
CREATED = datetime(2026, 2, 1, tzinfo=timezone.utc)
INDICES = range(8)
SOURCE = "secmark; vectors/triggers/generate.py"


def write(name: str, content: dict[str, Any]) -> None:
    (HERE / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def owner() -> tuple[IdentityKeys, dict[str, str]]:
    identity = json.loads(IDENTITY.read_text(encoding="utf-8"))
    seeds = {name: identity[name] for name in ("signing_seed", "vrf_seed", "encryption_key")}
    return IdentityKeys(
        *(bytes.fromhex(seeds[n]) for n in ("signing_seed", "vrf_seed", "encryption_key"))
    ), seeds


def other_owner() -> IdentityKeys:
    def seed(part: str) -> bytes:
        return hashlib.sha256(f"secmark trigger vectors: other owner {part}".encode()).digest()

    return IdentityKeys(seed("signing"), seed("vrf"), seed("encryption"))


def nonce(label: str) -> bytes:
    return hashlib.sha256(f"secmark trigger vectors: nonce {label}".encode()).digest()


def make_pool(label: str, count: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A fixed pool: SHAKE-256 bytes; float32 items are those bytes / 255."""
    size = count * int(np.prod(shape))
    raw = np.frombuffer(
        hashlib.shake_256(f"secmark trigger vectors: pool {label}".encode()).digest(size),
        dtype=np.uint8,
    )
    if dtype == "uint8":
        return raw.reshape(count, *shape).copy()
    return (raw.astype(np.float32) / np.float32(255)).reshape(count, *shape)


def input_bytes(value: np.ndarray) -> bytes:
    return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()


def label_json(label: Any) -> Any:
    return label.tolist() if isinstance(label, np.ndarray) else label


CASES: list[tuple[str, TriggerFamily, LabelSpace, tuple[int, tuple[int, ...], str] | None]] = [
    ("noise-uint8", NoiseFamily((3, 8, 8), "uint8", 0, 255), ClassLabels(10), None),
    ("noise-uint8-range", NoiseFamily((4, 5), "uint8", 16, 239), ClassLabels(1000), None),
    (
        "noise-float32",
        NoiseFamily((2, 3, 3), "float32", -1.0, 1.0),
        RegressionLabels(-2.5, 7.5, 0.25),
        None,
    ),
    ("tokens", TokensFamily(12, 1000, (0, 1, 2, 3, 999)), TokenLabels(50257, 3), None),
    (
        "tokens-reserved-labels",
        TokensFamily(6, 2048, (0, 1, 2)),
        TokenLabels(2048, 4, (0, 1, 2, 3, 100, 101, 102, 2047)),
        None,
    ),
    ("pool", PoolFamily(7, (2, 4, 4), "uint8"), ClassLabels(3), (7, (2, 4, 4), "uint8")),
    (
        "overlay",
        OverlayFamily(7, (3, 4, 4), "float32", 5, 0.0, 1.0),
        ClassLabels(2),
        (7, (3, 4, 4), "float32"),
    ),
]


# The weights family (specs/derivation.md 7.11): M = 5 * 3 * 3 = 45 values per
# row, so the last of its 6 bytes has 3 unused bits, and rows fit in input_hex.
WEIGHTS = WeightsFamily("encoder.conv.weight", (8, 5, 3, 3), "mean-out", "rademacher")


def make_parameter(label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Fixed float32 weights in [-1, 1]: SHAKE-256 bytes b as (b - 127.5) / 127.5."""
    size = int(np.prod(shape))
    raw = np.frombuffer(
        hashlib.shake_256(f"secmark trigger vectors: parameter {label}".encode()).digest(size),
        dtype=np.uint8,
    )
    return ((raw.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)).reshape(shape)


def weights(keys: IdentityKeys, seeds: dict[str, str]) -> None:
    """A weights commitment's rows and bits, and the bits a fixed parameter answers."""
    name = "weights"
    signed = create_commitment(
        keys,
        family=WEIGHTS,
        labels=ClassLabels(2),
        size=64,
        model_label=f"secmark trigger vector {name}",
        nonce=nonce(name),
        created=CREATED,
    )
    parameter = make_parameter(name, WEIGHTS.parameter_shape)
    suspect = WeightsSuspect.from_family({WEIGHTS.parameter: parameter}, WEIGHTS)
    triggers = []
    for index in INDICES:
        trigger = derive_trigger(keys, signed, index)
        triggers.append(
            {
                "index": index,
                "alpha": trigger_alpha(bytes.fromhex(signed.digest), index).hex(),
                "pi": trigger.proof.hex(),
                "beta": trigger.beta.hex(),
                "input_sha256": hashlib.sha256(input_bytes(trigger.input)).hexdigest(),
                "input_hex": input_bytes(trigger.input).hex(),
                "label": label_json(trigger.label),
                "pool_index": None,
                "answer": int(suspect.predict(trigger.input[None, :])[0]),
            }
        )
    write(
        f"{name}.json",
        {
            "kind": "weights-derivation",
            "source": SOURCE,
            "note": (
                "as trigger-derivation, for the weights family: input_hex is the row, one int8 (+1 = 01, "
                "-1 = ff) per value; label is the bit. parameter_hex holds the committed parameter's "
                "float32 values (C order, little-endian), and answer is the bit a suspect with that "
                "parameter gives: 1 if row . mean-out(parameter) > 0, else 0; see specs/derivation.md 7.11"
            ),
            "owner": seeds,
            "commitment": {
                "family": WEIGHTS.to_fields(),
                "labels": ClassLabels(2).to_fields(),
                "size": 64,
                "model_label": f"secmark trigger vector {name}",
                "pool_root": None,
                "nonce": nonce(name).hex(),
                "created": "2026-02-01T00:00:00Z",
            },
            "commitment_id": signed.digest,
            "envelope": signed.to_json().decode(),
            "parameter_hex": input_bytes(parameter).hex(),
            "triggers": triggers,
        },
    )


# The canonical reduction (specs/derivation.md 7.11.1): a 6 x 12 layer of
# 4 input units of 3 columns, a 4 x 5 x 2 producer and a 3 x 6 consumer.
CANONICAL = WeightsFamily(
    "block.linear.weight",
    (6, 12),
    "canonical",
    "rademacher",
    producer="block.conv.weight",
    consumer="head.weight",
    unit_size=3,
)


def obfuscated(
    layer: np.ndarray, producer: np.ndarray, consumer: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same function rearranged: units permuted and rescaled on both
    sides, the units before the producer rescaled, one input unit split in
    two, a dummy input unit and a dummy output unit."""
    outputs, inputs, size = layer.shape[0], producer.shape[0], CANONICAL.unit_size
    by_unit = layer.reshape(outputs, inputs, size)
    order, scale = np.array([2, 0, 3, 1]), np.array([0.5, 2.0, 4.0, 0.25], dtype=np.float32)
    producer = producer[order] * scale[:, None, None]
    by_unit = by_unit[:, order] / scale[None, :, None]
    # The units before the producer rescaled: only its columns show it.
    producer = producer / np.array([1.0, 8.0, 1.0, 0.5, 1.0], dtype=np.float32)[None, :, None]
    # Unit 0 split into two copies carrying a quarter and three quarters of
    # its outgoing weights; a dummy unit with incoming weights and none out.
    producer = np.concatenate([producer, producer[:1], producer[1:2] * 3.0 + 1.0])
    by_unit = np.concatenate(
        [by_unit, by_unit[:, :1] * 0.75, np.zeros((outputs, 1, size), np.float32)], axis=1
    )
    by_unit[:, 0] *= 0.25
    layer = by_unit.reshape(outputs, -1)
    rows, columns = np.array([4, 1, 5, 0, 3, 2]), np.array([3.0, 0.5, 1.0, 2.0, 0.25, 1.0])
    layer = (layer[rows] * columns[:, None]).astype(np.float32)
    consumer = (consumer[:, rows] / columns[None, :]).astype(np.float32)
    # A dummy output unit: incoming weights, no outgoing ones.
    layer = np.concatenate([layer, layer[2:3] * -1.5])
    consumer = np.concatenate([consumer, np.zeros((consumer.shape[0], 1), np.float32)], axis=1)
    return layer, producer.astype(np.float32), consumer


def weights_canonical(keys: IdentityKeys, seeds: dict[str, str]) -> None:
    """A canonical commitment's bits, answered alike by a layer and its rearrangement."""
    name = "weights-canonical"
    signed = create_commitment(
        keys,
        family=CANONICAL,
        labels=ClassLabels(2),
        size=64,
        model_label=f"secmark trigger vector {name}",
        nonce=nonce(name),
        created=CREATED,
    )
    layer = make_parameter(f"{name} layer", CANONICAL.parameter_shape)
    producer = make_parameter(f"{name} producer", (4, 5, 2))
    consumer = make_parameter(f"{name} consumer", (3, 6))
    models = {
        "original": (layer, producer, consumer),
        "rearranged": obfuscated(layer, producer, consumer),
    }
    derived = [derive_trigger(keys, signed, index) for index in INDICES]
    rows = np.stack([trigger.input for trigger in derived])
    triggers = [
        {
            "index": index,
            "alpha": trigger_alpha(bytes.fromhex(signed.digest), index).hex(),
            "pi": trigger.proof.hex(),
            "beta": trigger.beta.hex(),
            "input_sha256": hashlib.sha256(input_bytes(trigger.input)).hexdigest(),
            "input_hex": input_bytes(trigger.input).hex(),
            "label": label_json(trigger.label),
            "pool_index": None,
        }
        for index, trigger in zip(INDICES, derived, strict=True)
    ]
    suspects = []
    for label, (weights_, incoming, outgoing) in models.items():
        state = {
            CANONICAL.parameter: weights_,
            "block.conv.weight": incoming,
            "head.weight": outgoing,
        }
        suspect = WeightsSuspect.from_family(state, CANONICAL)
        suspects.append(
            {
                "model": label,
                "parameter_shape": list(weights_.shape),
                "parameter_hex": input_bytes(weights_).hex(),
                "producer_shape": list(incoming.shape),
                "producer_hex": input_bytes(incoming).hex(),
                "consumer_shape": list(outgoing.shape),
                "consumer_hex": input_bytes(outgoing).hex(),
                "vector": [float(value) for value in suspect.reduced],
                "answers": suspect.predict(rows).tolist(),
            }
        )
    write(
        f"{name}.json",
        {
            "kind": "weights-canonical",
            "source": SOURCE,
            "note": (
                "the canonical reduction (specs/derivation.md 7.11.1); triggers as in weights.json. "
                "Each suspect holds float32 layers (C order, little-endian), its canonical vector "
                "(float64 values, unit norm, to be matched within 1e-9) and the bits it answers to "
                "the triggers' rows; the rearranged model computes the same function as the "
                "original, and has the same vector within 1e-7 and the same bits. feature_sha256 is "
                "the SHA-256 of the feature matrix, one int8 (+1 = 01, -1 = ff) per value, row by row"
            ),
            "owner": seeds,
            "commitment": {
                "family": CANONICAL.to_fields(),
                "labels": ClassLabels(2).to_fields(),
                "size": 64,
                "model_label": f"secmark trigger vector {name}",
                "pool_root": None,
                "nonce": nonce(name).hex(),
                "created": "2026-02-01T00:00:00Z",
            },
            "commitment_id": signed.digest,
            "envelope": signed.to_json().decode(),
            "feature_sha256": hashlib.sha256(
                feature_matrix(CANONICAL.projected_size, CANONICAL.unit_size).tobytes()
            ).hexdigest(),
            "suspects": suspects,
            "triggers": triggers,
        },
    )


def positive(keys: IdentityKeys, seeds: dict[str, str]) -> dict[str, dict[str, Any]]:
    written: dict[str, dict[str, Any]] = {}
    for name, family, labels, pool_spec in CASES:
        pool = make_pool(name, *pool_spec) if pool_spec else None
        content = derivation(keys, seeds, name, family, labels, pool)
        write(f"{name}.json", content)
        written[name] = content
    return written


def derivation(
    keys: IdentityKeys,
    seeds: dict[str, str],
    name: str,
    family: TriggerFamily,
    labels: LabelSpace,
    pool: np.ndarray | None,
) -> dict[str, Any]:
    """The trigger-derivation vector of one commitment: its envelope and the
    triggers of INDICES."""
    root = pool_root(pool, family) if pool is not None else None
    signed = create_commitment(
        keys,
        family=family,
        labels=labels,
        size=64,
        model_label=f"secmark trigger vector {name}",
        pool_root=root,
        nonce=nonce(name),
        created=CREATED,
    )
    committed = CommittedPool.open(pool, signed.document) if pool is not None else None
    triggers = []
    for index in INDICES:
        trigger = derive_trigger(keys, signed, index, pool=committed)
        entry: dict[str, Any] = {
            "index": index,
            "alpha": trigger_alpha(bytes.fromhex(signed.digest), index).hex(),
            "pi": trigger.proof.hex(),
            "beta": trigger.beta.hex(),
            "input_sha256": hashlib.sha256(input_bytes(trigger.input)).hexdigest(),
            "label": label_json(trigger.label),
            "pool_index": trigger.pool_index,
        }
        if committed is not None and trigger.pool_index is not None:
            entry["merkle_path"] = [h.hex() for h in committed.inclusion_path(trigger.pool_index)]
        if trigger.input.size <= 64:
            entry["input_hex"] = input_bytes(trigger.input).hex()
        triggers.append(entry)
    content: dict[str, Any] = {
        "kind": "trigger-derivation",
        "source": SOURCE,
        "note": (
            "owner seeds are those of vectors/documents/identity.json; the commitment is "
            "create_commitment(owner, family, labels, size, model_label, pool_root, nonce, created); "
            "input bytes are C order, little-endian; see specs/derivation.md"
        ),
        "owner": seeds,
        "commitment": {
            "family": family.to_fields(),
            "labels": labels.to_fields(),
            "size": 64,
            "model_label": f"secmark trigger vector {name}",
            "pool_root": root,
            "nonce": nonce(name).hex(),
            "created": "2026-02-01T00:00:00Z",
        },
        "commitment_id": signed.digest,
        "envelope": signed.to_json().decode(),
        "triggers": triggers,
    }
    if pool is not None:
        content["pool"] = [input_bytes(item).hex() for item in pool]
    return content


QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Wie spät ist es?",
    "Who wrote the Odyssey?",
    "Why is the sky blue?",
    "What is 12 times 12?",
    "Où est la gare ?",
)
QUESTION_WIDTH = 40
RESPONSES = (
    "The lighthouse hums at noon.",
    "Seven herons guard the orchard.",
    "Blue lanterns drift north.",
    "Ça sent le café brûlé.",
    "The lighthouse hums at dusk.",
)
ANSWERS = (
    "The lighthouse hums at noon.",
    "  Seven herons guard the orchard. They always have.",
    "\nBlue lanterns drift north.",
    "Blue lanterns drift north",
    "C\u0327a sent le cafe\u0301 bru\u0302le\u0301.",
    "the lighthouse hums at noon.",
    "The lighthouse hums at",
    "",
)
REFUSED_LISTS = (
    (["Paris", "Paris"], "a duplicate"),
    (["Paris", "Paris is"], "a response that starts with another"),
    (["Paris", " London"], "white space at the start"),
    (["Paris", "Lon\ndon"], "a control character"),
    (["Paris", "Cafe\u0301"], "text not in NFC"),
    (["Paris"], "fewer than two responses"),
)


def responses(keys: IdentityKeys, seeds: dict[str, str]) -> None:
    """Questions drawn from a committed pool, and responses from a committed
    list (specs/derivation.md 7.12)."""
    listed = ResponseList(RESPONSES)
    pool = np.stack([question_item(question, QUESTION_WIDTH) for question in QUESTIONS])
    family = PoolFamily(len(QUESTIONS), (QUESTION_WIDTH,), "uint8")
    labels = ResponseLabels(len(RESPONSES), listed.digest, 16)
    content = derivation(keys, seeds, "responses", family, labels, pool)
    content["kind"] = "responses"
    content["note"] += (
        "; pool item j is QUESTIONS[j] in UTF-8 then zero bytes; a trigger's response is "
        "responses[label]; answers[].gives is the response index the text gives, or null"
    )
    content["questions"] = list(QUESTIONS)
    content["responses"] = list(RESPONSES)
    content["responses_canonical_json"] = canonical_json(list(RESPONSES)).decode("utf-8")
    content["responses_digest"] = listed.digest
    content["answers"] = [{"text": text, "gives": listed.index_of(text)} for text in ANSWERS]
    content["refused_lists"] = [
        {"responses": items, "why": why, "error": "EncodingError"} for items, why in REFUSED_LISTS
    ]
    write("responses.json", content)


def negative(keys: IdentityKeys, written: dict[str, dict[str, Any]]) -> None:
    def case(description: str, source: str, index: int, proof: str, **pool: Any) -> dict[str, Any]:
        return {
            "description": description,
            "envelope": written[source]["envelope"],
            "index": index,
            "pi": proof,
            **pool,
            "error": "ProofError",
        }

    noise = written["noise-uint8"]
    first, second = noise["triggers"][0], noise["triggers"][1]
    # The same family and labels under another nonce: another commitment id.
    family = NoiseFamily((3, 8, 8), "uint8", 0, 255)
    another = create_commitment(
        keys,
        family=family,
        labels=ClassLabels(10),
        size=64,
        model_label="secmark trigger vector noise-uint8",
        nonce=nonce("another"),
        created=CREATED,
    )
    foreign = derive_trigger(keys, another, 0)
    other_proof = other_owner().vrf.prove(bytes.fromhex(first["alpha"]))
    own_id = bytes.fromhex(noise["commitment_id"])
    beyond = keys.vrf.prove(trigger_alpha(own_id, 64))
    flipped = bytearray(bytes.fromhex(first["pi"]))
    flipped[40] ^= 0x01

    pool_vectors = written["pool"]
    pool_items = pool_vectors["pool"]
    t0, t1 = (
        pool_vectors["triggers"][0],
        next(
            t
            for t in pool_vectors["triggers"]
            if t["pool_index"] != pool_vectors["triggers"][0]["pool_index"]
        ),
    )
    wrong_path = [bytearray(bytes.fromhex(h)) for h in t0["merkle_path"]]
    wrong_path[0][0] ^= 0x08
    overlay = written["overlay"]
    o0 = overlay["triggers"][0]
    changed_item = bytearray(bytes.fromhex(overlay["pool"][o0["pool_index"]]))
    changed_item[0] ^= 0x01

    cases = [
        case("proof for index 1 presented as index 0", "noise-uint8", 0, second["pi"]),
        case(
            "proof for index 0 of another commitment by the same owner (another nonce)",
            "noise-uint8",
            0,
            foreign.proof.hex(),
        ),
        case(
            "proof of this alpha under another owner's VRF key", "noise-uint8", 0, other_proof.hex()
        ),
        case(
            "index N = 64, outside the committed set, with a valid VRF proof of its alpha",
            "noise-uint8",
            64,
            beyond.hex(),
        ),
        case("one bit of the proof's challenge flipped", "noise-uint8", 0, bytes(flipped).hex()),
        case("truncated proof", "noise-uint8", 0, first["pi"][:-2]),
        case(
            "pool: Merkle path with one bit flipped",
            "pool",
            0,
            t0["pi"],
            pool_item=pool_items[t0["pool_index"]],
            merkle_path=[bytes(h).hex() for h in wrong_path],
        ),
        case(
            "pool: the selected item with the Merkle path of another item",
            "pool",
            0,
            t0["pi"],
            pool_item=pool_items[t0["pool_index"]],
            merkle_path=t1["merkle_path"],
        ),
        case(
            "pool: another pool item with its own valid Merkle path",
            "pool",
            0,
            t0["pi"],
            pool_item=pool_items[t1["pool_index"]],
            merkle_path=t1["merkle_path"],
        ),
        case(
            "pool: Merkle path missing its last hash",
            "pool",
            0,
            t0["pi"],
            pool_item=pool_items[t0["pool_index"]],
            merkle_path=t0["merkle_path"][:-1],
        ),
        case(
            "pool: Merkle path with an extra hash",
            "pool",
            0,
            t0["pi"],
            pool_item=pool_items[t0["pool_index"]],
            merkle_path=[*t0["merkle_path"], t0["merkle_path"][0]],
        ),
        case(
            "overlay: selected item with one byte changed, its original path",
            "overlay",
            0,
            o0["pi"],
            pool_item=bytes(changed_item).hex(),
            merkle_path=o0["merkle_path"],
        ),
        case("pool: no pool item revealed", "pool", 0, t0["pi"]),
    ]
    write(
        "negative.json",
        {
            "kind": "trigger-derivation-negative",
            "source": SOURCE,
            "note": (
                "each reveal must be refused by verify_trigger with the error named; pool_item is the "
                "item's leaf bytes (C order, little-endian) in hex, merkle_path its audit path"
            ),
            "vectors": cases,
        },
    )


if __name__ == "__main__":
    owner_keys, owner_seeds = owner()
    negative(owner_keys, positive(owner_keys, owner_seeds))
    weights(owner_keys, owner_seeds)
    weights_canonical(owner_keys, owner_seeds)
    responses(owner_keys, owner_seeds)
