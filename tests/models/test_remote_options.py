"""OipSuspect's request options as tritonclient users expect them: input name,
requested outputs, input shape, and a model without a batch dimension."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from secmark.errors import SuspectError
from secmark.models import OipSuspect
from tests.models.conftest import FakeOipServer, Reply, json_reply


def one_hot(index: int) -> list[float]:
    return [1.0 if k == index else 0.0 for k in range(10)]


def test_a_model_without_a_batch_dimension_is_sent_one_input_at_a_time(
    fake_oip: FakeOipServer,
) -> None:
    def single(request: dict[str, Any]) -> Reply:
        (tensor,) = request["inputs"]
        label = int(np.argmax(tensor["data"]))
        return json_reply(
            {
                "outputs": [
                    {"name": "scores", "shape": [10], "datatype": "FP32", "data": one_hot(label)}
                ]
            }
        )

    fake_oip.route("unbatched", single)
    batch = np.eye(10, dtype=np.float32)[[4, 0, 8]].reshape(3, 2, 5)
    with OipSuspect(
        fake_oip.base_url,
        "unbatched",
        input_name="INPUT__0",
        batch_dimension=False,
        input_shape=[10],
        batch_size=64,
    ) as model:
        np.testing.assert_array_equal(model.predict(batch), [4, 0, 8])
        assert model.requests_sent == 3
    sent = [json.loads(r.body)["inputs"][0] for r in fake_oip.requests_for("unbatched")]
    assert [(t["name"], t["shape"]) for t in sent] == [("INPUT__0", [10])] * 3


def test_requested_outputs_are_named_in_the_request(fake_oip: FakeOipServer) -> None:
    def proba(request: dict[str, Any]) -> Reply:
        rows = request["inputs"][0]["shape"][0]
        assert request["outputs"] == [{"name": "predict_proba"}]
        data = [value for _ in range(rows) for value in one_hot(2)]
        return json_reply(
            {
                "outputs": [
                    {"name": "predict_proba", "shape": [rows, 10], "datatype": "FP64", "data": data}
                ]
            }
        )

    fake_oip.route("proba", proba)
    with OipSuspect(
        fake_oip.base_url, "proba", requested_outputs=["predict_proba"], input_shape=[4]
    ) as model:
        np.testing.assert_array_equal(model.predict(np.zeros((3, 2, 2))), [2, 2, 2])
    (request,) = fake_oip.requests_for("proba")
    assert json.loads(request.body)["inputs"][0]["shape"] == [3, 4]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requested_outputs": []}, r"name 1 to 16 distinct outputs"),
        ({"requested_outputs": ["a", "a"]}, r"name 1 to 16 distinct outputs"),
        ({"requested_outputs": "predict_proba"}, r"must be a list of output names"),
        ({"input_name": ""}, r"input_name must be 1 to 256 printable characters"),
        ({"input_shape": [0]}, r"input_shape must be a list of 1 to 32 positive integers"),
        ({"input_shape": [True]}, r"input_shape must be a list"),
        ({"batch_dimension": 0}, r"batch_dimension must be True or False"),
        ({"output_name": "a", "requested_outputs": ["b"]}, r"not among the requested outputs"),
    ],
)
def test_invalid_request_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        OipSuspect("http://127.0.0.1:9", "m", **options)


def test_an_input_shape_of_another_size_is_refused_before_any_request(
    fake_oip: FakeOipServer,
) -> None:
    with (
        OipSuspect(fake_oip.base_url, "never", input_shape=[7]) as model,
        pytest.raises(
            SuspectError, match=r"has 4 values, which cannot be sent in input_shape \[7\]"
        ),
    ):
        model.predict(np.zeros((1, 2, 2)))
    assert model.requests_sent == 0
