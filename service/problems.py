"""RFC 9457 problem documents, and the exception handlers that turn every failure into one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.auth import AuthError
from service.db.errors import DatabaseUnavailable, IdempotencyKeyInFlight, IdempotencyKeyReused
from service.request_context import current_request_id

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:backend-iac:problem:"

logger = logging.getLogger("backend_iac.errors")


def problem(
    status: int,
    *,
    detail: str | None = None,
    kind: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response. `kind` names the problem type; without one the type is about:blank."""
    body: dict[str, Any] = {
        "type": f"{TYPE_BASE}{kind}" if kind else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(location: tuple[int | str, ...]) -> str:
    # ("body", "name") -> "name"; ("query", "limit") -> "limit"; a bare ("body",) is the body itself.
    parts = [str(part) for part in location[1:]] if len(location) > 1 else [str(part) for part in location]
    return ".".join(parts)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _json_error_message(item: Mapping[str, Any], document: object) -> str:
    """`malformed JSON: <reason> at line L, column C` from FastAPI's json_invalid error (loc = body, offset)."""
    location = tuple(item.get("loc", ()))
    ctx = item.get("ctx")
    reason = str(ctx.get("error", "")) if isinstance(ctx, Mapping) else ""
    offset = location[1] if len(location) > 1 and isinstance(location[1], int) else None
    if offset is None:
        return f"malformed JSON: {reason}".rstrip(": ")
    text = document if isinstance(document, str) else ""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"malformed JSON: {reason or 'invalid'} at line {line}, column {column} (character {offset + 1})"


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type only
    content_type = request.headers.get("content-type")
    body_refused = any(tuple(item.get("loc", ())) == ("body",) for item in error.errors())
    if body_refused and not _is_json(content_type or ""):
        # FastAPI (strict content type) reads a body sent without a JSON media type (curl -d sends form
        # encoding; some clients send none) as raw bytes, then says "Input should be a valid dictionary":
        # the real problem is the media type.
        got = repr(content_type[:100]) if content_type else "no content-type"
        return problem(
            415,
            kind="unsupported-media-type",
            detail=f"the body must be JSON sent with content-type: application/json (got {got})",
            instance=request.url.path,
            headers={"Accept-Patch": "application/json"} if request.method == "PATCH" else None,
        )
    errors = []
    for item in error.errors():
        location = tuple(item.get("loc", ()))
        if item.get("type") == "json_invalid":
            field, message = "body", _json_error_message(item, error.body)
        else:
            field, message = _field_name(location), str(item.get("msg", "invalid"))
        errors.append({"field": field, "location": str(location[0]) if location else "", "message": message})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        422,
        kind="validation-error",
        detail=f"{first['field']}: {first['message']}",
        instance=request.url.path,
        errors=errors,
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (the router's own 405 names only the first route's).

    Asks the routes themselves, method by method: only ever run for a 405.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)  # noqa: S101 - registered for this type only
    detail = error.detail if isinstance(error.detail, str) else None
    headers = error.headers
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return problem(error.status_code, detail=detail, instance=request.url.path, headers=headers)


async def _auth_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AuthError)  # noqa: S101 - registered for this type only
    return problem(
        error.status,
        kind=error.code.replace("_", "-"),
        detail=error.detail,
        instance=request.url.path,
        headers={"WWW-Authenticate": error.challenge},
    )


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable", extra={"path": request.url.path, "reason": str(error)})
    return problem(
        503,
        kind="dependency-unavailable",
        detail="the database is not answering; retry shortly",
        instance=request.url.path,
        headers={"Retry-After": "5"},
        dependency="database",
    )


async def _idempotency_key_reused(request: Request, error: Exception) -> JSONResponse:
    # 422 with a problem body: draft-ietf-httpapi-idempotency-key-header-07, "Error Scenarios".
    return problem(
        422,
        kind="idempotency-key-reused",
        detail="this Idempotency-Key was already used with a different request body; use a new key",
        instance=request.url.path,
    )


async def _idempotency_key_in_flight(request: Request, error: Exception) -> JSONResponse:
    # 409 with a problem body: same draft, same section; the client retries unchanged, a little later.
    return problem(
        409,
        kind="idempotency-key-in-flight",
        detail="a request with this Idempotency-Key is still being processed; retry shortly",
        instance=request.url.path,
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem(500, detail="an unexpected error occurred; it has been logged", instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(IdempotencyKeyReused, _idempotency_key_reused)
    app.add_exception_handler(IdempotencyKeyInFlight, _idempotency_key_in_flight)
    app.add_exception_handler(Exception, _unexpected)
