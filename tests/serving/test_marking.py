"""The marking rule (specs/serving.md 3): exact, deterministic, checkable."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from secmark.crypto.keys import IdentityKeys
from secmark.errors import EncodingError, KeyMaterialError, ProofError
from secmark.messages.document import SignedDocument
from secmark.messages.serving_policy import (
    ANY_LABEL,
    InputEncoding,
    ServingPolicy,
    create_serving_policy,
)
from secmark.serving.marking import (
    MARK_STREAM_INFO,
    Marker,
    canonical_input,
    decide,
    decode_inputs,
    marked_answer,
    marked_scores,
    marking_alpha,
    verify_marking,
)
from secmark.stats import binomial_tail

OWNER = IdentityKeys.generate()
OPERATOR = IdentityKeys.generate()
ENCODING = InputEncoding("float32", (6,))


def _policy(
    num_classes: int = 10,
    rate: Fraction = Fraction(1, 4),
    log_rate: Fraction = Fraction(1, 8),
    answer_rule: str | None = None,
) -> SignedDocument[ServingPolicy]:
    return create_serving_policy(
        OWNER,
        operator=OPERATOR.public_keys,
        release_id="cd" * 32,
        num_classes=num_classes,
        rate=rate,
        log_rate=log_rate,
        answer_rule=answer_rule,
        input_encoding=ENCODING,
    )


POLICY = _policy()
MARKER = Marker(POLICY, OPERATOR.vrf)


def _sequential_decision(beta: bytes, policy: ServingPolicy) -> tuple[bool, int, bool]:
    """specs/serving.md 3.2 read one byte string at a time, independently of
    secmark.triggers.sampling."""
    key = HKDF(hashes.SHA256(), 32, salt=None, info=MARK_STREAM_INFO).derive(beta)
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def draw(n: int) -> int:
        bits = (n - 1).bit_length()
        width = max(1, (bits + 7) // 8)
        while True:
            value = int.from_bytes(stream.update(bytes(width)), "little") & ((1 << bits) - 1)
            if value < n:
                return value

    selected = draw(policy.rate.denominator) < policy.rate.numerator
    k = policy.labels.num_classes
    j = draw(k - 1 if policy.answer_rule != ANY_LABEL else k)
    sampled = draw(policy.log_rate.denominator) < policy.log_rate.numerator
    return selected, j, selected or sampled


@pytest.mark.parametrize(
    "policy",
    [POLICY, _policy(7, Fraction(3, 1000), Fraction(0)), _policy(2, Fraction(1, 3), Fraction(1))],
    ids=["K10", "K7-no-log", "K2-log-all"],
)
def test_decision_follows_the_sequential_definition(policy: SignedDocument[ServingPolicy]) -> None:
    for _ in range(300):
        beta = os.urandom(64)
        decision = decide(beta, policy.document)
        expected = _sequential_decision(beta, policy.document)
        assert (decision.selected, decision.answer_index, decision.logged) == expected


def test_selection_rate_is_the_policy_rate() -> None:
    trials = 4000
    selected = sum(decide(os.urandom(64), POLICY.document).selected for _ in range(trials))
    # Two-sided exact binomial bounds at 1e-9 each: the draw is uniform on
    # [0, 4) and selected iff below 1.
    assert binomial_tail(trials, selected, Fraction(1, 4)) > 1e-9
    assert binomial_tail(trials, trials - selected, Fraction(3, 4)) > 1e-9


@pytest.mark.parametrize("num_classes", [3, 4, 10])
def test_other_label_maps_indices_onto_the_other_labels(num_classes: int) -> None:
    policy = _policy(num_classes).document
    for answer in range(num_classes):
        served = [marked_answer(policy, answer, j) for j in range(num_classes - 1)]
        # A bijection onto the labels other than the model's answer: a
        # uniform index gives a uniform wrong label.
        assert sorted(served) == [y for y in range(num_classes) if y != answer]


def test_any_label_serves_the_index_itself() -> None:
    policy = _policy(2).document
    assert [marked_answer(policy, a, j) for a in (0, 1) for j in (0, 1)] == [0, 1, 0, 1]


def test_an_answer_outside_the_classes_is_refused() -> None:
    for answer in (-1, 10, True):
        with pytest.raises(EncodingError):
            MARKER.mark(b"\0" * 24, answer)  # type: ignore[arg-type]


def test_the_same_input_in_any_spelling_gets_one_answer() -> None:
    spellings = [
        [0.0, 1.0, 2.0, 0.1, -3.0, 4.0],
        [-0.0, 1, 2, 0.1, -3, 4.0],
        np.array([0.0, 1.0, 2.0, 0.1, -3.0, 4.0], dtype=np.float32),
        [0.0, 1.0, 2.0, 0.10000000149011612, -3.0, 4.0],
    ]
    canonical = {canonical_input(np.asarray(s), ENCODING) for s in spellings}
    assert len(canonical) == 1
    marks = {MARKER.mark(next(iter(canonical)), 4) for _ in range(3)}
    assert len(marks) == 1


@pytest.mark.parametrize(
    "value",
    [
        [np.nan, 0, 0, 0, 0, 0],
        [np.inf, 0, 0, 0, 0, 0],
        [1e39, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [[0, 0, 0, 0, 0, 0]],
        [True, False, True, False, True, False],
        ["0", "0", "0", "0", "0", "0"],
    ],
)
def test_inputs_without_one_canonical_form_are_refused(value: object) -> None:
    with pytest.raises(EncodingError):
        canonical_input(np.asarray(value), ENCODING)


def test_integer_encodings_take_integral_values_in_range_only() -> None:
    encoding = InputEncoding("int64", (2,))
    assert canonical_input([3.0, -4], encoding) == canonical_input(np.array([3, -4]), encoding)
    for value in ([0.5, 0], [2.0**63, 0], [0, 2**64 - 1]):
        with pytest.raises(EncodingError):
            canonical_input(np.asarray(value), encoding)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None)
def test_canonical_bytes_round_trip_to_the_same_values(values: list[float]) -> None:
    data = canonical_input(np.asarray(values), ENCODING)
    back = np.frombuffer(data, dtype="<f4")
    assert np.array_equal(back, np.asarray(values, dtype=np.float32))
    assert not np.signbit(back[back == 0]).any()


def test_logged_queries_verify_and_their_entries_cannot_be_bent() -> None:
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 12:
        canonical = canonical_input(rng.random(6), ENCODING)
        mark = MARKER.mark(canonical, 5)
        if not mark.selected:
            assert mark.served_answer == 5
            if not mark.logged:
                assert mark.proof is None
            continue
        assert mark.logged and mark.proof is not None and mark.served_answer != 5
        entry = {
            "input_digest": mark.input_digest,
            "model_answer": 5,
            "served_answer": mark.served_answer,
            "marked": True,
            "proof": mark.proof,
        }
        verify_marking(POLICY, **entry)  # type: ignore[arg-type]
        other = (mark.served_answer + 1) % 10 or 1
        bent = [
            {**entry, "served_answer": other if other != 5 else 6},
            {**entry, "marked": False},
            {**entry, "model_answer": mark.served_answer, "served_answer": mark.served_answer},
            {**entry, "input_digest": hashlib.sha256(b"another input").digest()},
            {**entry, "proof": mark.proof[:-1] + bytes([mark.proof[-1] ^ 1])},
        ]
        for case in bent:
            with pytest.raises(ProofError):
                verify_marking(POLICY, **case)  # type: ignore[arg-type]
        checked += 1


def test_an_unlogged_query_has_no_valid_entry() -> None:
    rng = np.random.default_rng(4)
    while True:
        canonical = canonical_input(rng.random(6), ENCODING)
        if not MARKER.mark(canonical, 0).logged:
            break
    digest = hashlib.sha256(canonical).digest()
    proof = OPERATOR.vrf.prove(marking_alpha(bytes.fromhex(POLICY.digest), digest))
    with pytest.raises(ProofError, match="does not log"):
        verify_marking(
            POLICY, input_digest=digest, model_answer=0, served_answer=0, marked=False, proof=proof
        )


def test_a_marker_needs_the_operators_vrf_key() -> None:
    with pytest.raises(KeyMaterialError):
        Marker(POLICY, OWNER.vrf)


def test_a_model_made_without_the_key_matches_marks_at_most_at_p0() -> None:
    """The null of specs/serving.md 4: whatever g is, P[g(x) = mark] <= 1/(K-1).

    The most adversarial g never answers the model's own label; it still
    matches a uniform other label with probability exactly 1/(K-1)."""
    rng = np.random.default_rng(5)
    marks = matches = 0
    while marks < 400:
        x = rng.random(6)
        model_answer = int(x[0] * 10)
        mark = MARKER.mark(canonical_input(x, ENCODING), model_answer)
        if mark.selected:
            marks += 1
            g = (model_answer + 1 + int(x[1] * 9)) % 10
            matches += g == mark.served_answer
    assert binomial_tail(marks, matches, Fraction(1, 9)) > 1e-9
    assert binomial_tail(marks, marks - matches, Fraction(8, 9)) > 1e-9


def test_marked_scores_put_the_served_answer_first_and_keep_the_values() -> None:
    scores = np.array([0.1, 0.6, 0.2, 0.1], dtype=np.float32)
    served = marked_scores(scores, 2)
    assert int(np.argmax(served)) == 2
    assert sorted(served.tolist()) == sorted(scores.tolist())
    assert np.array_equal(marked_scores(scores, 1), scores)
    assert np.array_equal(scores, np.array([0.1, 0.6, 0.2, 0.1], dtype=np.float32))


def test_canonical_bytes_decode_back_to_the_inputs() -> None:
    rows = [canonical_input(np.full(6, value), ENCODING) for value in (0.5, -2.0, 7.25)]
    decoded = decode_inputs(rows, ENCODING)
    assert decoded.shape == (3, 6) and decoded.dtype == np.dtype("<f4")
    assert [canonical_input(row, ENCODING) for row in decoded] == rows
    assert decode_inputs([], ENCODING).shape == (0, 6)
    # Two rows of the wrong length would still add up to two inputs' worth.
    with pytest.raises(EncodingError):
        decode_inputs([rows[0][:-4], rows[1] + b"\0\0\0\0"], ENCODING)
