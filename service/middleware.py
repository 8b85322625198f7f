"""Pure ASGI middleware: request ids and access lines, and the request body size limit.

Written against ASGI directly (not BaseHTTPMiddleware) so they cost microseconds and never buffer a body.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request_context import set_request_id

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def _request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """Honour an incoming x-request-id, else the W3C trace id of a traceparent, else a new id."""
    traceparent = None
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
        elif name == b"traceparent":
            traceparent = value.decode("latin-1")
    if traceparent and (match := _TRACEPARENT.match(traceparent.strip())):
        return match.group(1)
    # Unique, not secret: the module PRNG (reseeded in each forked worker) costs no system call.
    return f"{random.getrandbits(128):032x}"


def _write_access_line(method: str, path: str, status: int, duration_ms: float, request_id: str) -> None:
    """One JSON access line on stdout, in the same shape as every other log line.

    Written directly rather than through `logging`: this runs once per request, and the logging
    machinery (record, filter, formatter, handler lock) cost three times what the request itself did
    for /healthz. Every other log line goes through `logging` and python-json-logger.
    """
    line = {
        "level": "INFO",
        "logger": "backend_iac.access",
        "message": "request",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "request_id": request_id,
        "time": datetime.now(UTC).isoformat(),
    }
    try:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # stdout gone (the log stream reader went away): never fail a request over a log line


class RequestContextMiddleware:
    """Gives every request an id (echoed as x-request-id) and writes one JSON access line for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope["headers"])
        set_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path, never the query string: it may carry credentials.
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            _write_access_line(scope["method"], scope["path"], status, duration_ms, request_id)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit: at once from Content-Length, else as the bytes arrive."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from service.problems import problem

        response = problem(
            413, detail=f"request body exceeds {self.max_body_bytes} bytes", instance=scope["path"]
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
