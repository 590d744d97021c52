"""The marking rule: which answers a serving policy marks, and with what.

For an input x, with ``d = SHA-256(canonical bytes of x)``::

    alpha = "secmark-v1 serving mark" || policy_id || d
    beta  = ECVRF(operator's VRF key, alpha)
    stream = ChaCha20 keystream keyed by HKDF-SHA256(beta, info="secmark-v1 mark stream")
    u = uniform integer on [0, rate.denominator)       selected iff u < rate.numerator
    j = uniform integer on [0, K - 1) (other-label) or [0, K) (any-label)
    v = uniform integer on [0, log_rate.denominator)   logged iff selected or v < log_rate.numerator

A selected input's marked answer is the ``j``-th label other than the
model's own answer (other-label) or label ``j`` (any-label). Everything is a
function of the policy and the input: the same input always gets the same
answer, and anyone holding the operator's public key can check a logged
decision from its proof. Uniform integers are drawn by rejection sampling
(:func:`secmark.triggers.sampling.uniform_integer`), so the rate is exact and
the marked answer exactly uniform. ``specs/serving.md`` 3 is normative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secmark.crypto.ecvrf import VrfSecretKey
from secmark.errors import EncodingError, KeyMaterialError, ProofError
from secmark.messages.document import SignedDocument
from secmark.messages.serving_policy import OTHER_LABEL, InputEncoding, ServingPolicy
from secmark.triggers.sampling import KeyStream, uniform_integer

__all__ = [
    "MARK_DOMAIN",
    "MARK_STREAM_INFO",
    "Decision",
    "Marker",
    "Marking",
    "canonical_input",
    "decide",
    "decode_inputs",
    "marked_answer",
    "marked_scores",
    "marking_alpha",
    "verify_marking",
]

MARK_DOMAIN = b"secmark-v1 serving mark"
"""Prefix of every marking VRF input; no other secmark VRF input starts so."""

MARK_STREAM_INFO = b"secmark-v1 mark stream"
"""HKDF info of the stream a marking decision is read from."""

_DIGEST_SIZE = 32
_INTEGER_BOUNDS = {"int64": (-(1 << 63), (1 << 63) - 1), "uint8": (0, 255)}


def canonical_input(value: Any, encoding: InputEncoding) -> bytes:
    """The canonical bytes of one input under ``encoding``.

    Values are converted to the encoding's dtype (floats to the nearest
    representable value); every float zero becomes +0.0; the bytes are the
    elements in C order, little-endian. The shape must be exactly the
    encoding's: a batch is marked input by input.

    Raises:
        EncodingError: another shape, a non-numeric or boolean array, a NaN
            or infinity, an integer dtype given a non-integral value, or a
            value outside the dtype's range.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise EncodingError(f"the input is not a numeric array: {error}") from None
    if array.shape != encoding.shape:
        raise EncodingError(
            f"an input must have shape {list(encoding.shape)}, not {list(array.shape)}"
        )
    if array.dtype.kind not in "iuf":
        raise EncodingError(f"an input must hold numbers, not {array.dtype}")
    dtype = np.dtype(encoding.dtype).newbyteorder("<")
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(dtype)
        if not np.isfinite(converted).all():
            raise EncodingError(
                f"an input holds a NaN, an infinity or a value beyond {encoding.dtype}"
            )
        # x + 0.0 is +0.0 for both zeros and x otherwise (IEEE 754 round to
        # nearest): -0.0 is another spelling of the same input.
        converted = converted + dtype.type(0.0)
    else:
        low, high = _INTEGER_BOUNDS[encoding.dtype]
        if array.dtype.kind == "f" and not (np.isfinite(array) & (array == np.floor(array))).all():
            raise EncodingError(f"an {encoding.dtype} input holds a non-integral value")
        # Python compares ints and floats exactly: 2.0**63 is out of int64's range.
        if array.size and (array.min().item() < low or array.max().item() > high):
            raise EncodingError(f"an input holds a value outside the {encoding.dtype} range")
        converted = array.astype(dtype)
    return np.ascontiguousarray(converted).tobytes()


def decode_inputs(rows: Sequence[bytes], encoding: InputEncoding) -> npt.NDArray[Any]:
    """The inputs whose canonical bytes are ``rows`` (the inverse of
    :func:`canonical_input`), as one ``[N, *shape]`` array (N may be 0).

    Raises:
        EncodingError: a row that is not one input's worth of bytes.
    """
    dtype = np.dtype(encoding.dtype).newbyteorder("<")
    size = encoding.size * dtype.itemsize
    if any(len(row) != size for row in rows):
        raise EncodingError(f"an input's canonical bytes are {size} bytes under this encoding")
    return np.frombuffer(b"".join(rows), dtype=dtype).reshape((len(rows), *encoding.shape))


def marking_alpha(policy_id: bytes, input_digest: bytes) -> bytes:
    """``"secmark-v1 serving mark" || policy_id || input_digest``.

    Raises:
        EncodingError: either is not 32 bytes.
    """
    if len(policy_id) != _DIGEST_SIZE or len(input_digest) != _DIGEST_SIZE:
        raise EncodingError("a policy id and an input digest are 32 bytes (SHA-256 digests)")
    return MARK_DOMAIN + policy_id + input_digest


@dataclass(frozen=True)
class Decision:
    """What a VRF output decides for one input."""

    selected: bool
    """Whether the answer is marked."""
    answer_index: int
    """``j``: which label a marked answer is (see :func:`marked_answer`)."""
    logged: bool
    """Whether the query enters the log: every selected one, and unmarked
    ones at the policy's log rate."""


def decide(beta: bytes, policy: ServingPolicy) -> Decision:
    """Read the marking decision for VRF output ``beta`` (module docstring)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MARK_STREAM_INFO).derive(beta)
    stream = KeyStream(key)
    selected = uniform_integer(stream, policy.rate.denominator) < policy.rate.numerator
    k = policy.labels.num_classes
    answer_index = uniform_integer(stream, k - 1 if policy.answer_rule == OTHER_LABEL else k)
    sampled = uniform_integer(stream, policy.log_rate.denominator) < policy.log_rate.numerator
    return Decision(selected, answer_index, selected or sampled)


def _check_class(policy: ServingPolicy, answer: int) -> None:
    k = policy.labels.num_classes
    if type(answer) is not int or not 0 <= answer < k:
        raise EncodingError(f"the answer {answer!r} is not one of {k} classes")


def _checked(policy: ServingPolicy, answer: int) -> int:
    _check_class(policy, answer)
    return answer


def marked_answer(policy: ServingPolicy, model_answer: int, answer_index: int) -> int:
    """The answer served for a selected input whose model answer is ``model_answer``.

    Raises:
        EncodingError: ``model_answer`` is not a class of the policy.
    """
    _check_class(policy, model_answer)
    if policy.answer_rule != OTHER_LABEL:
        return answer_index
    return answer_index if answer_index < model_answer else answer_index + 1


def marked_scores(scores: npt.NDArray[Any], served_answer: int) -> npt.NDArray[Any]:
    """A score vector whose first place goes to ``served_answer``.

    The scores of the model's top class (the first maximum) and of the
    served answer trade places; nothing else changes, so the vector keeps
    its values (a probability vector stays one).
    """
    out = np.array(scores, copy=True)
    top = int(np.argmax(out))
    out[top], out[served_answer] = out[served_answer], out[top]
    return out


@dataclass(frozen=True)
class Marking:
    """The gateway's decision for one query."""

    input_digest: bytes
    model_answer: int
    served_answer: int
    selected: bool
    logged: bool
    proof: bytes | None
    """The operator's VRF proof; made only for logged queries."""


class Marker:
    """Marks answers under one policy with the operator's VRF key."""

    def __init__(self, policy: SignedDocument[ServingPolicy], operator_vrf: VrfSecretKey) -> None:
        """Raises:
        KeyMaterialError: ``operator_vrf`` is not the VRF key the policy names.
        """
        if operator_vrf.public_key != policy.document.operator.vrf_key:
            raise KeyMaterialError(
                "this VRF key is not the operator's key the serving policy names"
            )
        self._policy = policy.document
        self._policy_id = bytes.fromhex(policy.digest)
        self._vrf = operator_vrf

    @property
    def policy(self) -> ServingPolicy:
        return self._policy

    @property
    def policy_id(self) -> bytes:
        """The policy's id (the SHA-256 of its signed payload), 32 bytes."""
        return self._policy_id

    def mark(self, canonical: bytes, model_answer: int) -> Marking:
        """Decide the answer served for canonical input bytes ``canonical``.

        Costs one VRF hash (one scalar multiplication after hashing to the
        curve); a logged query also gets its proof.

        Raises:
            EncodingError: ``model_answer`` is not a class of the policy.
        """
        _check_class(self._policy, model_answer)
        digest = hashlib.sha256(canonical).digest()
        alpha = marking_alpha(self._policy_id, digest)
        decision = decide(self._vrf.hash(alpha), self._policy)
        served = (
            marked_answer(self._policy, model_answer, decision.answer_index)
            if decision.selected
            else model_answer
        )
        proof = self._vrf.prove(alpha) if decision.logged else None
        return Marking(digest, model_answer, served, decision.selected, decision.logged, proof)


def verify_marking(
    policy: SignedDocument[ServingPolicy],
    *,
    input_digest: bytes,
    model_answer: int,
    served_answer: int,
    marked: bool,
    proof: bytes,
) -> Decision:
    """Check one logged query against the policy with the operator's public key.

    Returns the decision the proof gives. The model's answer is the
    operator's word; everything else follows from the proof.

    Raises:
        ProofError: the proof does not verify, the query was not to be
            logged, ``marked`` disagrees with the decision, or the served
            answer is not the one the rule gives.
        EncodingError: malformed digest or answers.
    """
    document = policy.document
    alpha = marking_alpha(bytes.fromhex(policy.digest), input_digest)
    beta = document.operator.vrf_key.verify(alpha, proof)
    decision = decide(beta, document)
    if not decision.logged:
        raise ProofError("the policy does not log this query: its entry cannot be genuine")
    if decision.selected != marked:
        raise ProofError(
            f"the entry says {'marked' if marked else 'unmarked'}, the policy's decision "
            f"says {'marked' if decision.selected else 'unmarked'}"
        )
    _check_class(document, served_answer)
    expected = (
        marked_answer(document, model_answer, decision.answer_index)
        if marked
        else _checked(document, model_answer)
    )
    if served_answer != expected:
        raise ProofError(
            f"the served answer {served_answer} is not the answer {expected} the policy gives"
        )
    return decision
