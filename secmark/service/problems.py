"""RFC 9457 problem documents for every error the service answers.

Each of secmark's typed errors maps to one status and one problem type
(``https://secmark.invalid/problems/<name>``, a name, not a page to fetch); the
detail is the error's own message, which says what was wrong. Anything else
is a 500 whose detail names no internals: never a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from starlette.responses import Response

from secmark.errors import (
    EncodingError,
    KeyMaterialError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    SuspectError,
    TimestampError,
)
from secmark.service.auth import SCHEME, AuthenticationError

__all__ = ["PROBLEM_TYPE_BASE", "Problem", "internal_problem", "problem_for", "problem_response"]

_LOG = logging.getLogger("secmark.service")

PROBLEM_TYPE_BASE: Final = "https://secmark.invalid/problems/"
MEDIA_TYPE: Final = "application/problem+json"


class Problem(Exception):
    """An error the service answers with ``status`` (404, 405, 413, 429...)."""

    def __init__(
        self,
        status: int,
        name: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.name = name
        self.title = title
        self.detail = detail
        self.headers = headers or {}


# Most specific first: AuthenticationError is a SignatureError.
_MAPPING: Final[tuple[tuple[type[SecmarkError], int, str, str], ...]] = (
    (AuthenticationError, 401, "unauthenticated", "The request is not signed by a party"),
    (SignatureError, 403, "signature", "A signature is not by the key it must be"),
    (KeyMaterialError, 400, "key-material", "A key is malformed or unusable"),
    (EncodingError, 400, "encoding", "The document is malformed"),
    (ProofError, 422, "proof", "A proof does not check out"),
    (TimestampError, 422, "timestamp", "A timestamp does not verify"),
    (ProtocolError, 409, "protocol", "Not acceptable at this step of the case"),
    (SuspectError, 502, "suspect", "The suspect model could not be queried"),
)


def problem_for(error: SecmarkError) -> Problem:
    """The problem answering one of secmark's errors.

    A plain :class:`SecmarkError` is the arbiter's own state failing (a
    case file missing or unreadable): a 500, its message (which names the
    arbiter's paths) logged rather than shown.
    """
    for kind, status, name, title in _MAPPING:
        if isinstance(error, kind):
            headers = {"WWW-Authenticate": SCHEME} if status == 401 else None
            return Problem(status, name, title, str(error), headers)
    _LOG.error("the arbiter failed: %s", error)
    return internal_problem()


def internal_problem() -> Problem:
    """A 500 that names no internals."""
    return Problem(
        500, "internal", "Internal error", "the service failed on this request; it is logged"
    )


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    """``problem`` as an ``application/problem+json`` response."""
    body = {
        "type": PROBLEM_TYPE_BASE + problem.name,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance is not None:
        body["instance"] = instance
    return Response(
        json.dumps(body).encode(),
        problem.status,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )
