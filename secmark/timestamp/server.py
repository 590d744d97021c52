"""RFC 3161 over HTTP (section 3.4) for a :class:`TimestampAuthority`.

One endpoint: ``POST`` a DER TimeStampReq with content type
``application/timestamp-query``, get a DER TimeStampResp with content type
``application/timestamp-reply``. Requests the protocol does not allow are
refused before the authority sees them: 405 for another method, 415 for
another content type, 411 without a length, 413 for a body over
:data:`~secmark.timestamp.authority.MAX_REQUEST_SIZE`. A request the
authority cannot grant is answered 200 with a rejection TimeStampResp, as
the RFC wants.

The server is plain HTTP on the stdlib's threading server, one thread a
connection, with a listen backlog of :data:`LISTEN_BACKLOG` so that a burst
of clients is queued, not reset. Should ``respond`` ever raise, the client
gets HTTP 500 and the error is logged; the server keeps serving. Bind it to
localhost, or put a TLS-terminating proxy in front. TLS is not needed for
the tokens' integrity (they are signed), only for privacy of the imprints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final

from secmark.timestamp._tsp import QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE
from secmark.timestamp.authority import MAX_REQUEST_SIZE

__all__ = ["CONNECTION_TIMEOUT", "DEFAULT_PORT", "LISTEN_BACKLOG", "TimestampServer"]

DEFAULT_PORT: Final = 3180
"""Port of ``secmark tsa serve`` unless told otherwise (none is registered)."""

CONNECTION_TIMEOUT: Final = 10.0
"""Seconds a client may take to send its request: a slow client holds a thread."""

LISTEN_BACKLOG: Final = 1024
"""Connections the kernel queues before the server accepts them.

The stdlib's default of 5 made 91 to 117 of 200 simultaneous clients see a
reset; 1024 absorbs such bursts (Linux caps it at ``net.core.somaxconn``,
4096 by default). Queued clients wait, within their own timeout."""

_logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "secmark-tsa"
    timeout = CONNECTION_TIMEOUT

    def do_POST(self) -> None:
        media_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != QUERY_MEDIA_TYPE:
            self.send_error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send {QUERY_MEDIA_TYPE} (RFC 3161 section 3.4)"
            )
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.send_error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
            return
        if not 0 <= length <= MAX_REQUEST_SIZE:
            self.send_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"requests are at most {MAX_REQUEST_SIZE} bytes",
            )
            return
        request = self.rfile.read(length)
        try:
            answer = self.server.respond(request)
        except Exception:  # a bug must not leave the client without an answer
            _logger.exception("the timestamp authority failed on a request")
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "the authority failed")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", REPLY_MEDIA_TYPE)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _refuse_method(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def log_message(self, format: str, *args: object) -> None:
        _logger.info("%s %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Closing the server must not wait for handler threads: one may be
    # reading a client's idle keep-alive connection for up to its timeout,
    # and a foreground server stops on Ctrl-C at once.
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], respond: Callable[[bytes], bytes]) -> None:
        super().__init__(address, _Handler)
        self.respond = respond


class TimestampServer:
    """An HTTP server answering timestamp requests with ``respond``.

    ``respond`` is usually :meth:`TimestampAuthority.respond`. The socket is
    bound on construction (``port=0`` picks a free port; :attr:`url` tells
    which). Use :meth:`serve_forever` in the foreground, or :meth:`start` and
    :meth:`stop` (or ``with``) to serve from a background thread.

    Raises (on construction):
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        respond: Callable[[bytes], bytes],
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
    ) -> None:
        self._server = _HttpServer((host, port), respond)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The URL clients should POST to."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread or the process is interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def start(self) -> str:
        """Serve from a daemon thread; return :attr:`url`."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="secmark-tsa", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket; requests in progress may finish."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> TimestampServer:  # noqa: PYI034 (not meant to be subclassed)
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
