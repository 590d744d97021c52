"""Regenerate the serving-mark vectors (``specs/serving.md`` 7).

Run from the repository root: ``python3 vectors/serving/generate.py``. Every
input is fixed (the owner key of ``vectors/documents/identity.json``, an
operator key from fixed seeds, the policy's nonce and time, the inputs), and
Ed25519 and ECVRF are deterministic, so the output is identical on every
run; a difference after a code change means the change altered the marking
rule that other implementations rely on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from secmark.crypto import IdentityKeys
from secmark.messages.serving_policy import InputEncoding, create_serving_policy
from secmark.serving.marking import Marker, canonical_input, decide, marking_alpha

HERE = Path(__file__).resolve().parent
IDENTITY = HERE.parent / "documents" / "identity.json"
CREATED = datetime(2026, 12, 1, tzinfo=timezone.utc)
SOURCE = "secmark; vectors/serving/generate.py"


def seed(label: str) -> bytes:
    return hashlib.sha256(f"secmark test vector seed: {label}".encode()).digest()


def owner() -> IdentityKeys:
    identity = json.loads(IDENTITY.read_text(encoding="utf-8"))
    return IdentityKeys(
        *(bytes.fromhex(identity[n]) for n in ("signing_seed", "vrf_seed", "encryption_key"))
    )


def operator_seeds() -> dict[str, str]:
    return {
        "signing_seed": seed("operator signing").hex(),
        "vrf_seed": seed("operator vrf").hex(),
        "encryption_key": seed("operator encryption").hex(),
    }


def operator() -> IdentityKeys:
    seeds = operator_seeds()
    return IdentityKeys(
        *(bytes.fromhex(seeds[n]) for n in ("signing_seed", "vrf_seed", "encryption_key"))
    )


def marking() -> dict[str, Any]:
    policy = create_serving_policy(
        owner(),
        operator=operator().public_keys,
        release_id=hashlib.sha256(b"secmark vector release").hexdigest(),
        num_classes=10,
        rate=Fraction(1, 4),
        log_rate=Fraction(1, 2),
        input_encoding=InputEncoding("float32", (4,)),
        model_label="vector policy",
        nonce=seed("policy nonce"),
        created=CREATED,
    )
    marker = Marker(policy, operator().vrf)
    cases = []
    for index in range(32):
        values = [float(index), 0.5, -0.25, 1.0 / (index + 1)]
        canonical = canonical_input(np.array(values), policy.document.input)
        model_answer = index % 10
        mark = marker.mark(canonical, model_answer)
        alpha = marking_alpha(bytes.fromhex(policy.digest), mark.input_digest)
        beta = operator().vrf.hash(alpha)
        decision = decide(beta, policy.document)
        cases.append(
            {
                "input": values,
                "canonical": canonical.hex(),
                "input_digest": mark.input_digest.hex(),
                "alpha": alpha.hex(),
                "beta": beta.hex(),
                "selected": decision.selected,
                "answer_index": decision.answer_index,
                "logged": decision.logged,
                "model_answer": model_answer,
                "served_answer": mark.served_answer,
                "proof": None if mark.proof is None else mark.proof.hex(),
            }
        )
    return {
        "kind": "serving-marking",
        "source": SOURCE,
        "description": (
            "A serving policy (owner: vectors/documents/identity.json; operator keys from "
            "the seeds below) and the marking decision for 32 inputs: alpha, beta, the "
            "decision read from beta, the answer served for the given model answer, and "
            "the operator's proof for every logged query."
        ),
        "operator": operator_seeds(),
        "policy": policy.to_json().decode(),
        "policy_id": policy.digest,
        "cases": cases,
    }


def canonical_inputs() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []

    def case(dtype: str, shape: list[int], value: Any, canonical: bytes | None) -> None:
        cases.append(
            {
                "dtype": dtype,
                "shape": shape,
                "input": value,
                "canonical": None if canonical is None else canonical.hex(),
            }
        )

    encoding = InputEncoding("float32", (2,))
    for value in ([0.0, 1.0], [-0.0, 1], [0.1, 2.5], [0.10000000000000001, 2.5]):
        case("float32", [2], value, canonical_input(np.array(value), encoding))
    case("float32", [2], [3.5e38, 0.0], None)
    case("float32", [2], [1.0], None)
    case("float32", [2], [[1.0, 2.0]], None)
    encoding = InputEncoding("uint8", (3,))
    for value in ([0, 255, 7], [0.0, 255.0, 7.0]):
        case("uint8", [3], value, canonical_input(np.array(value), encoding))
    case("uint8", [3], [0, 256, 7], None)
    case("uint8", [3], [0, 1.5, 7], None)
    case("uint8", [3], [-1, 1, 7], None)
    encoding = InputEncoding("int64", (1,))
    case("int64", [1], [-(2**63)], canonical_input(np.array([-(2**63)]), encoding))
    case("int64", [1], [9223372036854775808.0], None)
    return {
        "kind": "serving-canonical-input",
        "source": SOURCE,
        "description": (
            "Inputs and their canonical bytes (C order, little-endian, float zeros as +0.0); "
            "canonical null means the input must be refused. Inputs are JSON numbers "
            "read as float64 or integers before conversion."
        ),
        "cases": cases,
    }


def write(name: str, content: dict[str, Any]) -> None:
    (HERE / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write("marking.json", marking())
    write("canonical-input.json", canonical_inputs())
