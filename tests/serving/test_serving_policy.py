"""The serving policy document: creation, strict reading, and what it refuses."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from secmark.crypto.keys import IdentityKeys
from secmark.encoding import canonical_json
from secmark.errors import EncodingError, SignatureError
from secmark.messages.document import PAYLOAD_TYPE, sign_document
from secmark.messages.dsse import Envelope
from secmark.messages.labels import RegressionLabels
from secmark.messages.serving_policy import (
    ANY_LABEL,
    OTHER_LABEL,
    InputEncoding,
    ServingPolicy,
    create_serving_policy,
    open_serving_policy,
)

OWNER = IdentityKeys.generate()
OPERATOR = IdentityKeys.generate()
RELEASE = "ab" * 32


def _policy(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "operator": OPERATOR.public_keys,
        "release_id": RELEASE,
        "num_classes": 10,
        "rate": Fraction(1, 50),
        "input_encoding": InputEncoding("float32", (8, 8)),
    }
    arguments.update(overrides)
    return create_serving_policy(OWNER, **arguments).to_json()


def _resigned(data: bytes, change: dict[str, Any]) -> bytes:
    """The policy's payload with ``change`` applied, signed again by the owner
    through the raw envelope (bypassing the dataclass's own checks)."""
    payload = json.loads(open_serving_policy(data).payload)
    payload.update(change)
    return Envelope.sign(PAYLOAD_TYPE, canonical_json(payload), OWNER).to_json()


def test_round_trip_keeps_every_field_and_the_id() -> None:
    data = _policy(log_rate=Fraction(1, 10), model_label="digits v3")
    opened = open_serving_policy(data, owner_key_id=OWNER.key_id)
    policy = opened.document
    assert policy.rate == Fraction(1, 50)
    assert policy.log_rate == Fraction(1, 10)
    assert policy.input == InputEncoding("float32", (8, 8))
    assert policy.answer_rule == OTHER_LABEL
    assert policy.p0 == Fraction(1, 9)
    assert policy.operator == OPERATOR.public_keys
    assert not policy.owner_is_operator
    assert sign_document(policy, OWNER).digest == opened.digest


def test_two_classes_default_to_the_any_label_rule() -> None:
    policy = open_serving_policy(_policy(num_classes=2)).document
    assert policy.answer_rule == ANY_LABEL
    assert policy.p0 == Fraction(1, 2)


def test_other_label_rule_with_two_classes_is_refused() -> None:
    # With two classes the "other" label is the flipped answer: a model that
    # disagrees with the served model would match every mark.
    with pytest.raises(EncodingError, match="at least 3 classes"):
        _policy(num_classes=2, answer_rule=OTHER_LABEL)


@pytest.mark.parametrize("rate", [Fraction(0), Fraction(1), Fraction(3, 2), Fraction(1, 2**33)])
def test_marking_rates_outside_the_open_unit_interval_are_refused(rate: Fraction) -> None:
    with pytest.raises(EncodingError):
        _policy(rate=rate)


def test_log_rate_may_be_zero_or_one() -> None:
    assert open_serving_policy(_policy(log_rate=Fraction(0))).document.log_rate == 0
    assert open_serving_policy(_policy(log_rate=Fraction(1))).document.log_rate == 1


def test_a_rate_not_in_lowest_terms_is_refused() -> None:
    # 2/100 and 1/50 mark the same inputs; one policy must have one id.
    data = _resigned(_policy(), {"rate": {"denominator": 100, "numerator": 2}})
    with pytest.raises(EncodingError, match="lowest terms"):
        open_serving_policy(data)


@pytest.mark.parametrize(
    "change",
    [
        {"labels": {"kind": "regression", "lo": 0, "hi": 1, "tolerance": 0.01}},
        {"labels": {"kind": "classes", "num_classes": True}},
        {"answer_rule": "nearest-label"},
        {"input": {"dtype": "float16", "shape": [8]}},
        {"input": {"dtype": "float32", "shape": [0]}},
        {"input": {"dtype": "float32", "shape": [4096, 4097]}},
        {"rate": {"denominator": 50, "numerator": True}},
        {"release_id": "AB" * 32},
        {"suite": "secmark-v2"},
        {"version": True},
        {"extra": 1},
    ],
)
def test_malformed_policies_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(EncodingError):
        open_serving_policy(_resigned(_policy(), change))


def test_another_signer_is_refused() -> None:
    payload = open_serving_policy(_policy()).payload
    forged = Envelope.sign(PAYLOAD_TYPE, payload, OPERATOR).to_json()
    with pytest.raises(SignatureError):
        open_serving_policy(forged)
    with pytest.raises(SignatureError):
        open_serving_policy(_policy(), owner_key_id=OPERATOR.key_id)


def test_owner_as_operator_is_stated() -> None:
    policy = create_serving_policy(
        OWNER,
        operator=OWNER.public_keys,
        release_id=RELEASE,
        num_classes=3,
        rate=Fraction(1, 4),
        input_encoding=InputEncoding("uint8", (4,)),
    )
    assert policy.document.owner_is_operator


def test_only_class_labels_are_marked() -> None:
    with pytest.raises(EncodingError, match="class labels only"):
        ServingPolicy(
            owner=OWNER.public_keys,
            operator=OPERATOR.public_keys,
            release_id=RELEASE,
            labels=RegressionLabels(0.0, 1.0, 0.01),  # type: ignore[arg-type]
            answer_rule=OTHER_LABEL,
            rate=Fraction(1, 2),
            log_rate=Fraction(0),
            input=InputEncoding("float32", (1,)),
            model_label="",
            nonce=bytes(32),
            created=open_serving_policy(_policy()).document.created,
        )
