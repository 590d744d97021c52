"""A real JSON inference API on 127.0.0.1 for the suspect tests: a Starlette
app under uvicorn, in a thread of the test process.

A test registers a handler for a path of its own with
``json_api.route(path, handler)``; the handler gets the parsed request body
and its headers and returns a :class:`Answer`. Every request is recorded
(path, headers, body). ``serve_app`` starts any ASGI app the same way (the
TLS tests pass uvicorn's SSL options).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None
    """A JSON value, or bytes sent as they are."""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[Any, dict[str, str]], Answer]


@dataclass
class JsonApi:
    base_url: str
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def route(self, path: str, handler: Handler | Answer) -> str:
        """Answer ``POST {path}`` with ``handler(body, headers)`` (or a fixed
        answer); returns the URL of the path."""
        self.routes[path] = handler if callable(handler) else (lambda _b, _h: handler)
        return self.base_url + path

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.path == path]


def make_app(api: JsonApi) -> Starlette:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        api.requests.append(Seen(path, headers, body))
        handler = api.routes.get(path)
        if handler is None:
            return Response(b'{"error": "no such route"}', 404, media_type="application/json")
        answer = handler(body, headers)
        content = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body)
        return Response(
            content,
            answer.status,
            headers=dict(answer.headers),
            media_type=answer.content_type,
        )

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])


@contextmanager
def serve_app(app: Any, **options: Any) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 in a thread; yields the port."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test JSON API did not start")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def json_api() -> Iterator[JsonApi]:
    api = JsonApi(base_url="")
    with serve_app(make_app(api)) as port:
        api.base_url = f"http://127.0.0.1:{port}"
        yield api


def labels_of(rows: list[Any]) -> list[int]:
    """A fixed classifier of nested-list inputs: the index of the largest of
    the first ten values of each flattened row (what the API answers)."""

    def flat(node: Any) -> list[float]:
        return [x for item in node for x in flat(item)] if isinstance(node, list) else [node]

    answers = []
    for row in rows:
        values = flat(row)[:10]
        answers.append(values.index(max(values)))
    return answers
