"""The gunicorn worker: uvicorn's, with limits enforced while a request head is parsed.

uvicorn's httptools protocol keeps every byte of a request head until the head is complete (200 MiB of
headers took a worker from 70 to 269 MiB before the app's 431 check could run), starts no timer until a
first response has been sent (a connection that never finishes its head stays open for ever), and accepts
connections until the process runs out of file descriptors. This protocol adds, per connection:

- a head limit counted as the bytes arrive: a head still incomplete past MAX_HEAD_BYTES on the wire or
  MAX_HEADER_FIELDS fields is answered 431 and the connection closed, so a worker holds at most one read
  (256 KiB) beyond the limit per connection. A head that arrives whole in one read is bounded by that
  read, and the app checks MAX_HEADER_BYTES and MAX_HEADER_FIELDS exactly (service.middleware);
- a head deadline: a request head not complete REQUEST_HEADER_TIMEOUT seconds after the connection
  opened (or after the first byte of a later request) gets 408 and the connection is closed (a connection
  that sent nothing is just closed). Between requests, uvicorn's keep-alive timeout (gunicorn's
  `keepalive`) closes an idle connection;
- a connection bound per worker (gunicorn's `worker_connections`, and never more than the descriptors the
  process may open, less a reserve for the database pool, logs and the JWKS client): a connection past it
  is answered 503 and closed at once, so its descriptor is released, instead of accepting until
  `accept()` fails with EMFILE and the health probe with it.

httptools is kept (not h11): the limits only need its callbacks, and it is the faster parser.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]  # ships no py.typed

from service.config import MAX_HEADER_BYTES, MAX_HEADER_FIELDS, get_settings

# The request line and the header block together, as sent: names and values (MAX_HEADER_BYTES) plus
# the request line (the URL) and the separators. Nothing a real client sends comes near it.
MAX_HEAD_BYTES: Final = MAX_HEADER_BYTES + 16 * 1024
# Descriptors kept back from the connection bound: the database pool, log streams, the JWKS client,
# SQLite files, the listening socket.
DESCRIPTOR_RESERVE: Final = 128
# After a refusal the connection is half-closed and what the client still sends is read and dropped, for
# at most this long and this much, before the socket is closed: closing with unread bytes makes the kernel
# send a reset, and the client could lose the refusal before it reads it (nginx's lingering_close).
LINGER_SECONDS: Final = 1.0
LINGER_BYTES: Final = 1024 * 1024
# A connection refused for the bound lingers only until its first bytes (its request) are read, or this
# long: its descriptor is what the bound protects.
BUSY_LINGER_SECONDS: Final = 0.25
# The security headers every response carries (service.middleware adds the same to the app's responses).
_REFUSAL_HEADERS: Final = (
    b"content-type: application/problem+json\r\n"
    b"x-content-type-options: nosniff\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int = MAX_HEAD_BYTES
    max_header_fields: int = MAX_HEADER_FIELDS
    header_timeout: float = 10.0
    max_connections: int = 1000


def connection_bound(configured: int) -> int:
    """The per-worker connection bound: the configured one, capped by the descriptor limit less a reserve."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - DESCRIPTOR_RESERVE))


def refusal(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 response with a problem document, for answers written before any app runs."""
    body = json.dumps(
        {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    ).encode()
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
        + _REFUSAL_HEADERS
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head limits, head deadline and connection bound above."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes = 0
        self._head_headers: list[tuple[bytes, bytes]] | None = None  # the head _head_bytes counts
        self._refused = False
        self._received_any = False
        self._linger_budget = LINGER_BYTES
        self._head_deadline: asyncio.TimerHandle | None = None

    # Connection lifetime
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            self._linger_budget = 0
            self._refuse(
                503,
                f"more than {self.limits.max_connections} connections open on this worker",
                linger=BUSY_LINGER_SECONDS,
            )
            return
        self._arm_head_deadline()  # a connection that never sends a byte is closed at the deadline too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's data_received, then the head checks. Written so that the common case (a whole head in
        one read) costs two attribute tests and no timer: the checks only run for a head left incomplete."""
        if self._refused:  # lingering after a refusal: drop the bytes, close once the budget is spent
            self._linger_budget -= len(data)
            if self._linger_budget <= 0:
                self.transport.close()
            return
        self._received_any = True
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self._refuse(400, msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        scope = self.scope
        if scope is not None and "method" in scope:  # the last head seen is complete (uvicorn sets method)
            if self._head_deadline is not None:
                self._cancel_head_deadline()
            return
        if self.transport.is_closing():
            return
        # A head is incomplete, so these bytes (all of them, or the tail where it began) are held by the
        # parser and uvicorn: count them before the next read can add more. uvicorn starts a new header
        # list for each request, which tells a new head from the one being counted.
        if self._head_headers is not self.headers:
            self._head_headers = self.headers
            self._head_bytes = 0
        self._head_bytes += len(data)
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request head exceeds {self.limits.max_head_bytes} bytes")
        elif len(self.headers) > self.limits.max_header_fields:
            self._refuse(431, f"request has more than {self.limits.max_header_fields} header fields")
        else:
            self._arm_head_deadline()  # from the first read of a head split across reads

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, as a problem document with the usual headers."""
        self._refuse(400, msg)

    # Helpers
    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self._received_any:
            self._refuse(408, f"request head not received within {self.limits.header_timeout:g}s")
        else:  # nothing was asked: nothing to answer
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, detail: str, *, linger: float = LINGER_SECONDS) -> None:
        """Answer with a problem document and close: what the client sends after it is read only to be dropped."""
        self._refused = True
        self._cancel_head_deadline()
        self._unset_keepalive_if_required()
        self.transport.write(refusal(status, detail))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(linger, self.transport.close)
        else:
            self.transport.close()


class LimitedUvicornWorker(UvicornWorker):  # type: ignore[misc]  # untyped base (above)
    """uvicorn-worker's worker with the limited protocol, and no `server: uvicorn` banner."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": LimitedHttpToolsProtocol,
        "server_header": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        # A subclass per worker process, so the limits are this process's and no module state changes.
        limits = ConnectionLimits(
            header_timeout=settings.request_header_timeout,
            max_connections=connection_bound(self.cfg.worker_connections),
        )
        self.config.http = type("WorkerHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
