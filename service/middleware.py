"""Pure ASGI middleware: request ids and access lines, the request body size limit, security headers.

Written against ASGI directly (not BaseHTTPMiddleware) so they cost microseconds and never buffer a body.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, AppEnv, Settings
from service.logging import chosen_log_format, render_access_line
from service.request_context import set_request_id
from service.telemetry import current_trace_ids

# The settings' default, for an app whose lifespan has not run (the settings are read there).
_DEFAULT_BODY_TIMEOUT: float = Settings.model_fields["request_body_timeout"].default

# Chosen once per process, like the logging config (JSON unless development on a terminal or LOG_FORMAT).
_ACCESS_FORMAT: Final = chosen_log_format()
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
    if (ids := current_trace_ids()) is not None:  # Application Insights on: the request's own trace
        line["trace_id"], line["span_id"] = ids
    try:
        sys.stdout.write(
            json.dumps(line) + "\n" if _ACCESS_FORMAT == "json" else render_access_line(line, "text")
        )
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


class BodyTooSlow(HTTPException):
    def __init__(self, timeout: float) -> None:
        super().__init__(408, f"request body not received within {timeout:g}s", {"Connection": "close"})


class RequestLimitsMiddleware:
    """Refuses oversized and slow requests before the app spends anything on them.

    Headers over MAX_HEADER_BYTES in all, or more than MAX_HEADER_FIELDS of them: 431. A body over the
    limit: 413, at once from Content-Length, else as the bytes arrive. A body still arriving when the
    body timeout runs out: 408. Limits not given here are read from the app's settings at the first
    request: the module-level app is built before the environment is read (the lifespan reads it).
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int | None = None, body_timeout: float | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    def _resolve_limits(self, scope: Scope) -> tuple[int, float]:
        if self.max_body_bytes is None or self.body_timeout is None:
            settings = getattr(scope["app"].state, "settings", None) if "app" in scope else None
            if not isinstance(settings, Settings):
                return self.max_body_bytes or MAX_BODY_BYTES, self.body_timeout or _DEFAULT_BODY_TIMEOUT
            self.max_body_bytes = self.max_body_bytes or settings.max_body_bytes
            self.body_timeout = self.body_timeout or settings.request_body_timeout
        return self.max_body_bytes, self.body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body_bytes, body_timeout = self._resolve_limits(scope)
        headers = scope["headers"]
        header_bytes = 0
        declared = 0
        for name, value in headers:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
        if header_bytes > MAX_HEADER_BYTES or len(headers) > MAX_HEADER_FIELDS:
            detail = f"request headers exceed {MAX_HEADER_BYTES} bytes or {MAX_HEADER_FIELDS} fields"
            await self._refuse(431, detail, scope, receive, send)
            return
        if declared > max_body_bytes:
            await self._refuse(413, f"request body exceeds {max_body_bytes} bytes", scope, receive, send)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + body_timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what follows is waiting for a disconnect, not an upload
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise BodyTooLarge(max_body_bytes)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
        from service.problems import problem

        response = problem(status, detail=detail, instance=scope["path"])
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


# One year, and subdomains too: `max-age=31536000; includeSubDomains`, the example MDN gives
# (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security; directives from
# RFC 6797 section 6.1). No `preload`: not part of the RFC, it asks browsers to hard-code the whole domain
# (hstspreload.org) and is slow to undo. OWASP's cheat sheet: unchecked.
HSTS_VALUE: Final = b"max-age=31536000; includeSubDomains"
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_NO_STORE: Final = (b"cache-control", b"no-store")


def _relative_location(value: bytes, scope: Scope) -> bytes:
    """An absolute Location made relative: the path and query only, never the scheme and host that a
    redirect built from the request (Starlette's trailing-slash redirect: `f"{scheme}://{host}{path}"`)
    took from the client's Host header, which may itself hold a path or an `@`."""
    text = value.decode("latin-1")
    host = next((header.decode("latin-1") for name, header in scope["headers"] if name == b"host"), None)
    prefix = f"{scope.get('scheme', 'http')}://{host}"
    if host is not None and text.startswith(prefix):
        rest = text[len(prefix) :]
    else:
        parts = urlsplit(text)
        if not parts.scheme and not parts.netloc:
            return value
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
    # "//evil.example" would be read as another host: one leading slash, always.
    return ("/" + rest.lstrip("/")).encode("latin-1")


class SecurityHeadersMiddleware:
    """Headers every response carries: `nosniff` always; `Cache-Control: no-store` on the API and on any
    response to a request that carried credentials; HSTS in production (TLS ends at App Service's front
    end, which only forwards HTTPS when the app is HTTPS-only); redirects relative, never built from Host.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool | None = None) -> None:
        self.app = app
        self.hsts = hsts

    def _resolve_hsts(self, scope: Scope) -> bool:
        if self.hsts is None:
            settings = getattr(scope["app"].state, "settings", None) if "app" in scope else None
            if not isinstance(settings, Settings):
                return True  # settings not read yet: the stricter answer
            self.hsts = settings.app_env is AppEnv.PRODUCTION
        return self.hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self._resolve_hsts(scope)
        no_store = scope["path"].startswith("/api/") or any(
            name == b"authorization" for name, _ in scope["headers"]
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [_NOSNIFF]
                if no_store and b"cache-control" not in names:
                    extra.append(_NO_STORE)
                if hsts:
                    extra.append((b"strict-transport-security", HSTS_VALUE))
                if 300 <= message["status"] < 400:
                    headers = [
                        (name, _relative_location(value, scope) if name.lower() == b"location" else value)
                        for name, value in headers
                    ]
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
