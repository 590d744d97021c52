"""Marked answers for an in-process model (MarkedClassifier) and the shared marking step."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from secmark.errors import EncodingError, ProtocolError
from secmark.serving.entry import client_account
from secmark.serving.log import QueryLog
from secmark.serving.marking import canonical_input, verify_marking
from secmark.serving.wrapper import BatchMarker, MarkedClassifier, ModelAnswerError
from tests.models.conftest import linear_logits
from tests.serving.gateway_world import (
    ENCODING,
    MemorySink,
    make_marker,
    make_policy,
    model_labels,
    random_inputs,
)

POLICY = make_policy()
KEY = "bob-key-0123456789"


def labels_of(batch: np.ndarray) -> np.ndarray:
    return np.argmax(linear_logits(batch), axis=1)


def test_policy_id_is_the_signed_documents_digest() -> None:
    assert BatchMarker(make_marker(POLICY), MemorySink()).policy_id.hex() == POLICY.digest


def test_classes_are_marked_at_the_rate_logged_and_verifiable(tmp_path: Path) -> None:
    policy_id = bytes.fromhex(POLICY.digest)
    log = QueryLog.open(f"sqlite:///{tmp_path / 'log.sqlite'}", policy_id=policy_id)
    try:
        model = MarkedClassifier(labels_of, make_marker(POLICY), log)
        inputs = random_inputs(1024, seed=21)
        served = np.concatenate(
            [model.predict(batch, api_key=KEY) for batch in np.split(inputs, 4)]
        )
        truth = model_labels(inputs)
        marked = [i for i in range(1024) if served[i] != truth[i]]
        # Rate 1/4: mean 256, standard deviation 13.9; six of them.
        assert abs(len(marked) - 256) <= 6 * math.sqrt(1024 * 0.25 * 0.75)
        assert model.predict(inputs[:256], api_key=KEY).tolist() == served[:256].tolist()
        entries = [log.entry(seq) for seq in range(len(marked))]
        assert [e.input for e in entries] == [canonical_input(inputs[i], ENCODING) for i in marked]
        for entry in entries:
            assert entry.client == client_account(policy_id, KEY)
            verify_marking(
                POLICY,
                input_digest=bytes.fromhex(entry.input_digest),
                model_answer=entry.model_answer,
                served_answer=entry.served_answer,
                marked=entry.marked,
                proof=entry.proof,
            )
    finally:
        log.close()


def test_scores_put_the_served_class_first_and_the_model_sees_canonical_inputs() -> None:
    seen: list[np.ndarray] = []

    def logits(batch: np.ndarray) -> np.ndarray:
        seen.append(batch)
        return linear_logits(batch)

    sink = MemorySink()
    model = MarkedClassifier(logits, make_marker(POLICY), sink)
    inputs = random_inputs(256, seed=22).astype(np.float64) + 1e-12  # not float32 values
    inputs[0, 0, 0] = -0.0
    scores = model.predict_scores(inputs, api_key=KEY)
    assert seen[0].dtype == np.float32 and math.copysign(1.0, seen[0][0, 0, 0]) == 1.0
    assert np.array_equal(seen[0], inputs.astype(np.float32) + np.float32(0.0))
    classes = model.predict(inputs, api_key=KEY)
    assert np.argmax(scores, axis=1).tolist() == classes.tolist()
    assert np.array_equal(np.sort(scores, axis=1), np.sort(linear_logits(seen[0]), axis=1))
    # Both calls logged their marked rows, and only those.
    marked = int(np.sum(classes != labels_of(seen[0])))
    assert len(sink.entries) == 2 * marked and sink.appends == 2


def test_refusals_serve_and_log_nothing() -> None:
    sink = MemorySink()
    model = MarkedClassifier(labels_of, make_marker(POLICY), sink, max_batch=64)
    good = random_inputs(16, seed=23)
    with pytest.raises(ProtocolError):
        model.predict(good, api_key="")
    bad = good.copy()
    bad[3, 1, 1] = np.nan
    with pytest.raises(EncodingError, match="input 3"):
        model.predict(bad, api_key=KEY)
    with pytest.raises(EncodingError, match="shape"):
        model.predict(good[:, :7], api_key=KEY)
    with pytest.raises(EncodingError, match="1 to 64"):
        model.predict(random_inputs(65, seed=1), api_key=KEY)
    assert sink.entries == []


@pytest.mark.parametrize(
    "answer",
    [
        lambda batch: labels_of(batch)[:-1],  # a row short
        lambda batch: labels_of(batch) + 10,  # a class beyond K
        lambda batch: labels_of(batch).astype(np.float64),  # not integers
        lambda batch: np.full((len(batch), 10), np.nan),  # NaN scores
    ],
)
def test_unusable_model_answers_serve_and_log_nothing(answer: object) -> None:
    sink = MemorySink()
    model = MarkedClassifier(answer, make_marker(POLICY), sink)  # type: ignore[arg-type]
    with pytest.raises(ModelAnswerError):
        model.predict(random_inputs(64, seed=24), api_key=KEY)
    assert sink.entries == []


def test_tied_scores_of_a_marked_row_serve_and_log_nothing() -> None:
    sink = MemorySink()
    model = MarkedClassifier(lambda batch: np.zeros((len(batch), 10)), make_marker(POLICY), sink)
    with pytest.raises(ModelAnswerError, match="tie"):
        model.predict_scores(random_inputs(64, seed=25), api_key=KEY)
    assert sink.entries == []


def test_a_failing_sink_fails_the_call() -> None:
    sink = MemorySink()
    sink.failing = True
    model = MarkedClassifier(labels_of, make_marker(POLICY), sink)
    with pytest.raises(OSError, match="disk full"):
        model.predict(random_inputs(64, seed=26), api_key=KEY)


def test_api_keys_are_kept_as_account_digests_only() -> None:
    sink = MemorySink()
    model = MarkedClassifier(labels_of, make_marker(POLICY), sink)
    model.predict(random_inputs(64, seed=27), api_key=KEY)
    assert sink.entries
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    for entry in sink.entries:
        text = entry.to_bytes()
        assert KEY.encode() not in text and digest.encode() not in text
