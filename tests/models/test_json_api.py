"""JsonApiSuspect against a real JSON API (Starlette under uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from secmark.errors import EncodingError, SuspectError
from secmark.models import JsonApiSuspect, JsonPointer, Suspect
from secmark.models.reference import canonical_endpoint_url, canonical_reference
from secmark.protocol.suspects import bind_suspect
from tests.models import json_server
from tests.models.json_server import Answer, JsonApi, labels_of

json_api = json_server.json_api

VERTEX_PATH = "/v1/projects/p/locations/europe-west4/endpoints/4711:rawPredict"


def scores_of(rows: list[Any]) -> list[list[float]]:
    """One-hot scores of the fixed classifier, over ten classes."""
    return [[1.0 if k == label else 0.0 for k in range(10)] for label in labels_of(rows)]


def test_a_vertex_style_endpoint(json_api: JsonApi) -> None:
    def vertex(body: Any, _headers: dict[str, str]) -> Answer:
        return Answer(body={"predictions": labels_of(body["instances"]), "deployedModelId": "1"})

    url = json_api.route(VERTEX_PATH, vertex)
    template = {"instances": "{{inputs}}", "parameters": {"confidence": 0.5}}
    batch = np.random.default_rng(1).random((5, 10)).astype(np.float32)
    with JsonApiSuspect(url, request=template, answers="/predictions", output="labels") as model:
        assert model.describe() == f"json:{url}"
        assert bind_suspect(f"json:{url}", model) == f"json:{url}"
        np.testing.assert_array_equal(model.predict(batch), labels_of(batch.tolist()))
        assert model.requests_sent == 1
    (seen,) = json_api.requests_to(VERTEX_PATH)  # the colon is sent plain
    assert seen.body == {"instances": batch.tolist(), "parameters": {"confidence": 0.5}}
    assert seen.headers["content-type"] == "application/json"


def test_a_hugging_face_style_endpoint_at_the_root(json_api: JsonApi) -> None:
    def endpoint(body: Any, _headers: dict[str, str]) -> Answer:
        return Answer(
            body=[{"scores": scores, "id": i} for i, scores in enumerate(scores_of(body["inputs"]))]
        )

    json_api.route("/", endpoint)
    batch = np.eye(10, dtype=np.float32)[[3, 1, 4, 1, 5]]
    with JsonApiSuspect(
        json_api.base_url + "/", request={"inputs": "{{inputs}}"}, answers="", answer="/scores"
    ) as model:
        assert model.describe() == f"json:{json_api.base_url}"  # the root is written without '/'
        np.testing.assert_array_equal(model.predict(batch), [3, 1, 4, 1, 5])


def test_a_model_without_a_batch_dimension_gets_one_input_per_request(json_api: JsonApi) -> None:
    def single(body: Any, _headers: dict[str, str]) -> Answer:
        return Answer(body={"result": {"scores": scores_of([body["data"]])[0]}})

    url = json_api.route("/single", single)
    batch = np.eye(10, dtype=np.float32)[[2, 7, 9]].reshape(3, 2, 5)
    with JsonApiSuspect(
        url,
        request={"data": "{{inputs}}"},
        answers="/result/scores",
        batch_dimension=False,
        input_shape=[10],
        batch_size=64,
    ) as model:
        np.testing.assert_array_equal(model.predict(batch), [2, 7, 9])
        assert model.requests_sent == 3
    bodies = [seen.body for seen in json_api.requests_to("/single")]
    assert bodies == [{"data": row} for row in batch.reshape(3, 10).tolist()]


def test_integer_inputs_are_sent_as_integers_and_batches_split(json_api: JsonApi) -> None:
    url = json_api.route("/ints", lambda body, _h: Answer(body={"p": labels_of(body[0])}))
    batch = np.arange(50, dtype=np.uint8).reshape(5, 10)
    with JsonApiSuspect(
        url, request=["{{inputs}}"], answers="/p", output="labels", batch_size=2
    ) as model:
        np.testing.assert_array_equal(model.predict(batch), [9, 9, 9, 9, 9])
    bodies = [seen.body for seen in json_api.requests_to("/ints")]
    assert [len(b[0]) for b in bodies] == [2, 2, 1]
    assert bodies[0][0][0] == list(range(10))  # ints, not 0.0, 1.0, ...


def test_values_and_token_answers(json_api: JsonApi) -> None:
    url = json_api.route(
        "/regression", Answer(body={"out": {"values": [[0.25], [1.5]], "tokens": [[3, 1], [4, 1]]}})
    )
    with JsonApiSuspect(
        url, request={"x": "{{inputs}}"}, answers="/out/values", output="values"
    ) as model:
        np.testing.assert_array_equal(model.predict(np.zeros((2, 1))), [0.25, 1.5])
    with JsonApiSuspect(
        url, request={"x": "{{inputs}}"}, answers="/out/tokens", output="labels"
    ) as model:
        np.testing.assert_array_equal(model.predict(np.zeros((2, 1))), [[3, 1], [4, 1]])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(
            Answer(body=b"<html>hello</html>", content_type="text/html"),
            r"the response is not JSON \(Content-Type 'text/html",
            id="html",
        ),
        pytest.param(
            Answer(body=b'{"predictions": [1, 2], "predictions": [3, 4]}'),
            r"duplicate key 'predictions'",
            id="duplicate-keys",
        ),
        pytest.param(Answer(body=b'{"predictions": [NaN, 1]}'), r"NaN is not JSON", id="nan"),
        pytest.param(Answer(body=b'{"predictions": [1, 2'), r"invalid JSON", id="truncated"),
        pytest.param(Answer(body=b'{"p": "\xff"}'), r"invalid JSON", id="not-utf8"),
        pytest.param(
            Answer(body={"predictions": [1, 2, 3]}),
            r"expected 2 answers \(one per input\), got 3",
            id="extra-answer",
        ),
        pytest.param(
            Answer(body={"predictions": {"a": 1}}),
            r"are a object, not a list of one answer per input",
            id="answers-not-a-list",
        ),
        pytest.param(
            Answer(body={"outputs": [1, 2]}), r"no value at '/predictions'", id="pointer-absent"
        ),
        pytest.param(Answer(body={"predictions": ["1", 2]}), r"input 0 is a string", id="string"),
        pytest.param(Answer(body={"predictions": [True, 2]}), r"input 0 is a boolean", id="bool"),
        pytest.param(
            Answer(body={"predictions": [1, None]}), r"input 1 is null \(NaN\?\)", id="null"
        ),
        pytest.param(
            Answer(body={"predictions": [[0.1, 0.9], [0.5, [0.5]]]}),
            r"input 1 holds a list where a number is expected",
            id="ragged",
        ),
        pytest.param(
            Answer(body={"predictions": [[0.1, 0.9], [0.2, 0.3, 0.5]]}),
            r"the answers differ in shape",
            id="shapes-differ",
        ),
        pytest.param(
            Answer(body={"predictions": [[[0.1, 0.9], [0.5, 0.5]], [[0.2, 0.8], [0.5]]]}),
            r"input 1 is not a regular array",
            id="irregular",
        ),
        pytest.param(
            Answer(body={"predictions": [2**64, 1]}),
            r"does not fit in 64 bits",
            id="integer-overflow",
        ),
        pytest.param(
            Answer(body=b'{"predictions": [1e400, 1.0]}'),
            r"the answer to input 0 is not finite",
            id="overflow-to-infinity",
        ),
        pytest.param(
            Answer(body=b'{"predictions": [' + b"[" * 40 + b"1" + b"]" * 40 + b", 1]}"),
            r"nested deeper than 32",
            id="too-deep",
        ),
        pytest.param(
            Answer(body=b"[" * 100_000 + b"]" * 100_000),
            r"invalid JSON",
            id="recursion",
        ),
    ],
)
def test_malformed_responses_are_refused(
    json_api: JsonApi, answer: Answer, message: str, request: pytest.FixtureRequest
) -> None:
    path = "/malformed-" + request.node.callspec.id
    url = json_api.route(path, answer)
    with (
        JsonApiSuspect(
            url, request={"x": "{{inputs}}"}, answers="/predictions", output="labels", retries=2
        ) as model,
        pytest.raises(SuspectError, match=message) as raised,
    ):
        model.predict(np.zeros((2, 3)))
    assert str(raised.value).startswith(f"json:{url}: ")
    assert len(json_api.requests_to(path)) == 1  # none of these is retried


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"instances": "inputs"}, r"exactly once .* not 0 times"),
        ({"a": "{{inputs}}", "b": ["{{inputs}}"]}, r"not 2 times"),
        ({"a": "rows: {{inputs}}"}, r"inside a longer string"),
        ({"{{inputs}}": 1, "a": "{{inputs}}"}, r"in a key"),
        ({"a": "{{inputs}}", "b": float("nan")}, r"NaN or an infinity"),
        ({"a": "{{inputs}}", "b": {1, 2}}, r"holds a set"),
        ({"a": "{{inputs}}", "pad": "x" * 70_000}, r"larger than 65536 bytes"),
    ],
)
def test_invalid_templates_are_refused(template: Any, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        JsonApiSuspect("http://127.0.0.1:9/p", request=template, answers="")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pw@127.0.0.1:9/p", r"credentials"),
        ("http://127.0.0.1:9/p?api-version=1", r"query"),
        ("http://127.1:9/p", r"IPv4"),
        ("http://127.0.0.1:9/a/../p", r"'\.\.'"),
        ("http://127.0.0.1:9/a%2Fb", r"'/'"),
        ("ftp://127.0.0.1/p", r"http\(s\)"),
    ],
)
def test_urls_without_a_canonical_form_are_refused(url: str, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        JsonApiSuspect(url, request={"x": "{{inputs}}"}, answers="")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTPS://Example.COM:443/v1/e:rawPredict", "https://example.com/v1/e:rawPredict"),
        ("https://example.com/v1/e%3ArawPredict", "https://example.com/v1/e:rawPredict"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com/predict/", "https://example.com/predict/"),
        ("https://example.com/a%7eb/%41", "https://example.com/a~b/A"),
        ("https://example.com/a b".replace(" ", "%20"), "https://example.com/a%20b"),
        ("http://[::ffff:127.0.0.1]:8080/invocations", "http://127.0.0.1:8080/invocations"),
    ],
)
def test_json_references_are_canonical(given: str, canonical: str) -> None:
    assert canonical_endpoint_url(given) == canonical
    assert canonical_reference(f"json:{given}") == f"json:{canonical}"
    assert canonical_reference(f"json:{canonical}") == f"json:{canonical}"


def test_a_json_reference_is_bound_only_to_its_own_endpoint(json_api: JsonApi) -> None:
    from secmark.errors import ProtocolError

    model: Suspect = JsonApiSuspect(
        json_api.base_url + "/a", request={"x": "{{inputs}}"}, answers=""
    )
    with pytest.raises(ProtocolError):
        bind_suspect(f"json:{json_api.base_url}/b", model)
    with pytest.raises(ProtocolError):
        bind_suspect(f"oip:{json_api.base_url}/a/v2/models/a", model)


@pytest.mark.parametrize(
    ("text", "document", "value"),
    [
        ("", {"a": 1}, {"a": 1}),
        ("/a~1b/0", {"a/b": [7]}, 7),
        ("/m~0n", {"m~n": 3}, 3),
        ("/", {"": 5}, 5),
        ("/list/1", {"list": [1, 2]}, 2),
    ],
)
def test_json_pointers_follow_rfc_6901(text: str, document: Any, value: Any) -> None:
    assert JsonPointer(text).resolve(document) == value


@pytest.mark.parametrize(
    ("text", "document", "message"),
    [
        ("a", None, r"must be empty .* or begin with '/'"),
        ("/a~2", None, r"'~' must be written ~0"),
        ("/list/01", {"list": [1, 2]}, r"no value at '/list/01'"),
        ("/list/-", {"list": [1, 2]}, r"no value at '/list/-'"),
        ("/list/2", {"list": [1, 2]}, r"a list of 2"),
        ("/n/x", {"n": 1}, r"a number has no members"),
    ],
)
def test_invalid_json_pointers_are_refused(text: str, document: Any, message: str) -> None:
    with pytest.raises(SuspectError, match=message):
        JsonPointer(text).resolve(document)


def test_a_json_reference_names_no_query_or_label() -> None:
    with pytest.raises(EncodingError):
        canonical_reference("json:https://example.com/p?x=1")
    with pytest.raises(EncodingError):
        canonical_reference("json:https://example.com/p;v=1")
    assert json.dumps(canonical_reference("json:https://example.com/p/"))
