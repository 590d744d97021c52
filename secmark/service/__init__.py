"""The arbiter as an HTTP service (``secmark arbiter serve``).

:func:`create_app` builds the FastAPI app over an
:class:`~secmark.protocol.arbiter.Arbiter`; :func:`sign_request` signs a
party's request for the case's private parts. Needs the serving extra's
FastAPI, uvicorn and SQLAlchemy.
"""

from secmark.service.app import create_app
from secmark.service.auth import sign_request
from secmark.service.limits import ServiceLimits
from secmark.service.suspects import ReferenceSuspects

__all__ = ["ReferenceSuspects", "ServiceLimits", "create_app", "sign_request"]
