"""The serving policy: which answers of a prediction API are marked, fixed in advance.

An owner signs a serving policy, and has it timestamped, before the API it
guards serves. It names the owner and the log *operator* (whose VRF key
marks answers and who signs the query log's checkpoints), the release whose
answers are marked, the marking rate r as an exact fraction, the rate at
which unmarked queries are logged as well, the label space, the rule that
chooses a marked answer, and the canonical encoding of one input. Its id is
the SHA-256 of its canonical payload; every marking decision is a VRF output
on that id and the input's digest (:mod:`secmark.serving.marking`), so once
the id exists the whole marking is fixed and nobody can choose it
afterwards.

The null match probability ``p0`` of a marked answer (the most an answer
made without the marking key can agree with it) is a property of the rule:
``1/(K-1)`` for ``other-label`` (the marked answer is never the model's own
answer; needs K >= 3) and ``1/K`` for ``any-label`` (uniform over all K
labels; the only rule for two classes). ``specs/serving.md`` is the
normative description.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, ClassVar

from secmark.crypto.keys import SUITE, IdentityKeys, PublicKeys
from secmark.encoding import b64url_encode, format_time, utc_now
from secmark.errors import EncodingError, SignatureError
from secmark.messages.document import (
    Fields,
    SignedDocument,
    read_unverified_payload,
    sign_document,
)
from secmark.messages.identity import public_keys_from_fields
from secmark.messages.labels import ClassLabels

__all__ = [
    "ANSWER_RULES",
    "INPUT_DTYPES",
    "MAX_INPUT_ELEMENTS",
    "MAX_POLICY_SIZE",
    "MAX_RATE_DENOMINATOR",
    "InputEncoding",
    "ServingPolicy",
    "create_serving_policy",
    "open_serving_policy",
]

MAX_POLICY_SIZE = 64 * 1024
"""A policy envelope is a few kilobytes; larger ones are refused unread."""

MAX_RATE_DENOMINATOR = 1 << 32
"""Bound on a rate's denominator: a rate is drawn as a uniform integer below
it (``specs/serving.md`` 3), and draws range up to 2^32."""

MAX_INPUT_ELEMENTS = 1 << 24
"""Bound on the values in one input (64 MiB of float32)."""

INPUT_DTYPES = ("float32", "float64", "int64", "uint8")
"""Element types an input encoding may name."""

OTHER_LABEL = "other-label"
ANY_LABEL = "any-label"
ANSWER_RULES = (OTHER_LABEL, ANY_LABEL)
"""How a marked answer is drawn: uniformly from the K - 1 labels other than
the model's own answer, or uniformly from all K labels."""

_NONCE_SIZE = 32
_MAX_DIMENSIONS = 8
_MAX_MODEL_LABEL = 1024


@dataclass(frozen=True)
class InputEncoding:
    """What one input is: an array of ``shape`` with elements of ``dtype``.

    Its canonical bytes are the elements in C order, little-endian, with
    every float zero written as +0.0 (``specs/serving.md`` 2): one input has
    one encoding, so a client cannot re-roll a marking decision by spelling
    the same input another way.
    """

    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in INPUT_DTYPES:
            raise EncodingError(
                f"an input dtype must be one of {', '.join(INPUT_DTYPES)}, not {self.dtype!r}"
            )
        if not 1 <= len(self.shape) <= _MAX_DIMENSIONS or any(d < 1 for d in self.shape):
            raise EncodingError(
                f"an input shape must have 1 to {_MAX_DIMENSIONS} dimensions, each >= 1"
            )
        if math.prod(self.shape) > MAX_INPUT_ELEMENTS:
            raise EncodingError(f"an input may have at most {MAX_INPUT_ELEMENTS} elements")

    @property
    def size(self) -> int:
        """Elements in one input."""
        return math.prod(self.shape)

    def to_fields(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_fields(cls, fields: Fields) -> InputEncoding:
        return cls(
            dtype=fields.text("dtype", max_length=16),
            shape=tuple(
                fields.integer_list(
                    "shape",
                    minimum=1,
                    maximum=MAX_INPUT_ELEMENTS,
                    max_items=_MAX_DIMENSIONS,
                )
            ),
        )


def _check_rate(rate: Fraction, what: str, *, allow_zero: bool, allow_one: bool) -> None:
    low_ok = rate > 0 or (allow_zero and rate == 0)
    high_ok = rate < 1 or (allow_one and rate == 1)
    if not (low_ok and high_ok):
        raise EncodingError(f"{what} {rate} is out of range")
    if rate.denominator > MAX_RATE_DENOMINATOR:
        raise EncodingError(f"{what}'s denominator exceeds {MAX_RATE_DENOMINATOR}")


def _rate_fields(rate: Fraction) -> dict[str, int]:
    return {"denominator": rate.denominator, "numerator": rate.numerator}


def _rate(fields: Fields) -> Fraction:
    numerator = fields.integer("numerator", minimum=0, maximum=MAX_RATE_DENOMINATOR)
    denominator = fields.integer("denominator", minimum=1, maximum=MAX_RATE_DENOMINATOR)
    rate = Fraction(numerator, denominator)
    # One rate, one spelling: 2/200 and 1/100 would give two policy ids for
    # the same marking.
    if rate.numerator != numerator or rate.denominator != denominator:
        raise EncodingError(
            f"a rate must be written in lowest terms ({rate}, not {numerator}/{denominator})"
        )
    return rate


@dataclass(frozen=True)
class ServingPolicy:
    """The signed serving policy (``secmark.serving-policy`` version 1)."""

    TYPE: ClassVar[str] = "secmark.serving-policy"
    VERSION: ClassVar[int] = 1

    owner: PublicKeys = field(repr=False)
    operator: PublicKeys = field(repr=False)
    release_id: str
    labels: ClassLabels
    answer_rule: str
    rate: Fraction
    log_rate: Fraction
    input: InputEncoding
    model_label: str
    nonce: bytes = field(repr=False)
    created: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.labels, ClassLabels):
            raise EncodingError("a serving policy marks class labels only")
        if self.answer_rule not in ANSWER_RULES:
            raise EncodingError(
                f"the answer rule must be one of {', '.join(ANSWER_RULES)}, "
                f"not {self.answer_rule!r}"
            )
        if self.answer_rule == OTHER_LABEL and self.labels.num_classes < 3:
            raise EncodingError(
                "the other-label rule needs at least 3 classes: with 2, the marked answer is "
                "the model's answer flipped and a model disagreeing with it matches every "
                "mark; use the any-label rule (p0 = 1/2)"
            )
        _check_rate(self.rate, "the marking rate", allow_zero=False, allow_one=False)
        _check_rate(
            self.log_rate, "the log rate of unmarked queries", allow_zero=True, allow_one=True
        )
        if len(self.nonce) != _NONCE_SIZE:
            raise EncodingError(f"the policy nonce must be {_NONCE_SIZE} bytes")
        if len(self.model_label) > _MAX_MODEL_LABEL:
            raise EncodingError(f"the model label is longer than {_MAX_MODEL_LABEL} characters")

    @property
    def p0(self) -> Fraction:
        """The most a model made without the marking key can match one marked
        answer with, whatever the model is (``specs/serving.md`` 4)."""
        k = self.labels.num_classes
        return Fraction(1, k - 1) if self.answer_rule == OTHER_LABEL else Fraction(1, k)

    @property
    def owner_is_operator(self) -> bool:
        """Whether the owner keeps the log himself: the log is then only the
        owner's word, and an owner could fabricate entries."""
        return self.owner.key_id == self.operator.key_id

    def to_fields(self) -> dict[str, Any]:
        return {
            "answer_rule": self.answer_rule,
            "created": format_time(self.created),
            "input": self.input.to_fields(),
            "labels": self.labels.to_fields(),
            "log_rate": _rate_fields(self.log_rate),
            "model_label": self.model_label,
            "nonce": b64url_encode(self.nonce),
            "operator": {"key_id": self.operator.key_id, "keys": self.operator.canonical_fields()},
            "owner": {"key_id": self.owner.key_id, "keys": self.owner.canonical_fields()},
            "rate": _rate_fields(self.rate),
            "release_id": self.release_id,
            "suite": SUITE,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> ServingPolicy:
        suite = fields.text("suite")
        if suite != SUITE:
            raise EncodingError(f"unsupported suite {suite!r} (this secmark implements {SUITE})")
        labels = fields.nested("labels", _class_labels)
        return cls(
            owner=fields.nested("owner", public_keys_from_fields),
            operator=fields.nested("operator", public_keys_from_fields),
            release_id=fields.hex_digest("release_id"),
            labels=labels,
            answer_rule=fields.text("answer_rule", max_length=32),
            rate=fields.nested("rate", _rate),
            log_rate=fields.nested("log_rate", _rate),
            input=fields.nested("input", InputEncoding.from_fields),
            model_label=fields.text("model_label", max_length=_MAX_MODEL_LABEL),
            nonce=fields.raw_bytes("nonce", size=_NONCE_SIZE),
            created=fields.time("created"),
        )


def _class_labels(fields: Fields) -> ClassLabels:
    kind = fields.text("kind", max_length=32)
    if kind != ClassLabels.KIND:
        raise EncodingError(f"a serving policy marks class labels only, not {kind!r}")
    return ClassLabels.from_fields(fields)


def create_serving_policy(
    owner: IdentityKeys,
    *,
    operator: PublicKeys,
    release_id: str,
    num_classes: int,
    rate: Fraction,
    input_encoding: InputEncoding,
    answer_rule: str | None = None,
    log_rate: Fraction = Fraction(0),
    model_label: str = "",
    nonce: bytes | None = None,
    created: datetime | None = None,
) -> SignedDocument[ServingPolicy]:
    """Make and sign a serving policy with a fresh random nonce.

    ``answer_rule`` defaults to ``other-label`` for three classes or more
    and to ``any-label`` for two.

    Raises:
        EncodingError: a rate out of (0, 1) (``log_rate`` may be 0 or 1), a
            denominator above 2^32, the other-label rule with two classes,
            or a malformed input encoding.
    """
    labels = ClassLabels(num_classes)
    if answer_rule is None:
        answer_rule = OTHER_LABEL if num_classes >= 3 else ANY_LABEL
    policy = ServingPolicy(
        owner=owner.public_keys,
        operator=operator,
        release_id=release_id,
        labels=labels,
        answer_rule=answer_rule,
        rate=Fraction(rate),
        log_rate=Fraction(log_rate),
        input=input_encoding,
        model_label=model_label,
        nonce=os.urandom(_NONCE_SIZE) if nonce is None else nonce,
        created=created or utc_now(),
    )
    return sign_document(policy, owner)


def open_serving_policy(
    data: bytes, *, owner_key_id: str | None = None
) -> SignedDocument[ServingPolicy]:
    """Parse a serving policy and verify the owner it names signed it.

    Raises:
        EncodingError: malformed or inconsistent policy.
        KeyMaterialError: invalid owner or operator keys.
        SignatureError: the owner's signature does not verify, or the owner
            is not ``owner_key_id``.
    """
    envelope, policy = read_unverified_payload(data, ServingPolicy, max_size=MAX_POLICY_SIZE)
    envelope.verify(policy.owner)
    if owner_key_id is not None and policy.owner.key_id != owner_key_id:
        raise SignatureError(f"the policy belongs to {policy.owner.key_id}, not to {owner_key_id}")
    return SignedDocument(policy, envelope, policy.owner.key_id)
