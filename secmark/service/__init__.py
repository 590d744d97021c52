"""The arbiter as an HTTP service (``secmark arbiter serve``).

:func:`secmark.service.app.create_app` builds the FastAPI app over an
:class:`~secmark.protocol.arbiter.Arbiter`; :mod:`secmark.service.auth`
signs and checks a party's requests; :mod:`secmark.service.client` talks to
a service. The app needs the serving extra's FastAPI, uvicorn and
SQLAlchemy; the client needs only httpx, so nothing is imported here.
"""
