"""The ASGI application: `service.main:app`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from service import telemetry
from service.auth import JwksCache, KeySource, StaticKeys, TokenVerifier
from service.config import AppEnv, Settings, get_settings
from service.db.errors import DatabaseUnavailable
from service.db.factory import open_store
from service.db.store import Store
from service.middleware import RequestContextMiddleware, RequestLimitsMiddleware, SecurityHeadersMiddleware
from service.problems import PROBLEM_JSON, install_problem_handlers
from service.routes import health, items, version
from service.routes.docs import install_api_docs
from service.schemas import Problem
from service.startup import HEALTH_PATH

logger = logging.getLogger("backend_iac")


def _key_source(settings: Settings) -> KeySource:
    if settings.development_auth:
        from service.dev_keys import development_jwks

        return StaticKeys(development_jwks())
    return JwksCache(
        issuer=settings.issuer,
        jwks_url=settings.auth_jwks_url,
        http_timeout=settings.auth_http_timeout,
        min_refresh_interval=settings.auth_jwks_refresh_interval,
    )


def _complete_openapi_document(app: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI document (routes read the header themselves, for speed),
    and document every error response as what it is: a problem document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearerAuth"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            _document_problems(schema)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


# Refusals any operation may answer before it runs (service.middleware), and those of one with a body.
_ANY_OPERATION_ERRORS: Final = {431: "request headers too large or too many"}
_BODY_ERRORS: Final = {
    400: "the body could not be parsed (not UTF-8, nested too deeply)",
    408: "the body did not arrive within the request body timeout",
    413: "the body is larger than the limit",
    415: "the body is not sent as JSON (content-type: application/json)",
}


def _document_problems(schema: dict[str, Any]) -> None:
    """Every non-2xx response is `application/problem+json` with the Problem schema (FastAPI would say
    application/json, and for 422 a shape this API never sends); the limit refusals are listed too."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra = {**_ANY_OPERATION_ERRORS, **(_BODY_ERRORS if "requestBody" in operation else {})}
            for status, description in extra.items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if not status.startswith(("1", "2", "3")):
                    response["content"] = content


# Each worker purges expired idempotency keys this long after start-up, then at this interval. Several
# workers purging at once is harmless: a key deleted twice is deleted once.
KEY_PURGE_FIRST_SECONDS: Final = 30.0
KEY_PURGE_INTERVAL_SECONDS: Final = 600.0
_KEY_PURGE_MAX_BATCHES: Final = 100


async def purge_expired_keys_forever(store: Store, *, first: float, interval: float) -> None:
    """Delete expired idempotency keys in the background, in short batches, off every request's path."""
    delay = first
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            for _ in range(_KEY_PURGE_MAX_BATCHES):  # bounded; the rest waits for the next round
                if await store.purge_expired_idempotency_keys() == 0:
                    break
        except DatabaseUnavailable as error:
            logger.warning("expired idempotency keys not purged", extra={"reason": str(error)})


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, on the app itself.

    `include_router` (FastAPI 0.165) keeps an included router as one route that every request searches
    twice (once to pick the router, once inside it) after checking it for changes: about 10 us a request
    in process (bench/profile_request.py). These routers add nothing at inclusion (no prefix, tags,
    dependencies or lifespan: their routes already carry their full path and tags), so their routes can
    sit on the app's router, which matches its own routes in one pass.
    """
    app.router.routes.extend(router.routes)


def _busiest_routes_first(app: FastAPI) -> None:
    """Order the app's routes by how often they are asked for: the liveness probe, then the API, then
    the rest (the OpenAPI document, the docs pages, readiness, version).

    Starlette tries routes in order until one matches, at a few microseconds per route: the item routes
    came after ten others. No two routes' paths overlap except /healthz's (the plain probe route first,
    then its documented operations), and a stable sort keeps that and every other relative order.
    """

    def rank(route: BaseRoute) -> int:
        path = getattr(route, "path", "")
        if path == HEALTH_PATH and not isinstance(route, APIRoute):
            return 0
        return 1 if path.startswith(items.router.prefix) else 2

    app.router.routes.sort(key=rank)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings default to the environment's, read once."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        app.state.settings = resolved
        app.state.version_info = version.read_version_info(
            build_info_path=resolved.build_info_path or version.default_build_info_path(),
            commit_env=resolved.app_commit_sha,
            started_at=datetime.now(UTC),
            checkout=resolved.app_env is AppEnv.DEVELOPMENT,
        )
        keys = _key_source(resolved)
        if isinstance(keys, JwksCache):
            keys.start()  # warm the cache in the background: start-up never waits for the identity provider
        app.state.verifier = TokenVerifier(
            issuer=resolved.issuer,
            audience=resolved.audience,
            keys=keys,
            leeway_seconds=resolved.auth_leeway_seconds,
        )
        store = open_store(resolved)
        try:
            await store.migrate()  # normally already done by the gunicorn master; cheap when it was
        except DatabaseUnavailable as error:
            logger.warning(
                "database not ready at start-up; readiness will report it", extra={"reason": str(error)}
            )
        app.state.store = store
        purge = asyncio.create_task(
            purge_expired_keys_forever(
                store, first=KEY_PURGE_FIRST_SECONDS, interval=KEY_PURGE_INTERVAL_SECONDS
            )
        )
        try:
            yield
        finally:
            if isinstance(keys, JwksCache):
                await keys.close()
            purge.cancel()
            await asyncio.gather(purge, return_exceptions=True)
            await store.close()
            # Here, not only in gunicorn's worker_exit: uvicorn ends a graceful shutdown by re-raising
            # SIGTERM, which kills the worker before worker_exit or atexit could run.
            await asyncio.to_thread(telemetry.flush_and_stop)

    app = FastAPI(
        title="backend-iac",
        summary="The example backend that backend-iac deploys to Azure App Service.",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs, from this process instead of a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry support (0.165) off: service.telemetry instruments the app with
        # opentelemetry-instrumentation-fastapi when Application Insights is on, and FastAPI stands its
        # own spans, metrics and logs down whenever that middleware is present (fastapi/telemetry/_asgi.py,
        # legacy_otel). Said here, it also stops FastAPI asking the global providers on every request
        # whether telemetry is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    _complete_openapi_document(app)
    install_api_docs(app)
    install_problem_handlers(app)
    for router in (health.router, version.router, items.router):
        _add_routes(app, router)
    _busiest_routes_first(app)
    # Our own limiter, not FastAPI's max_body_size: that one answers some refusals in plain text,
    # and every error here is a problem document.
    # Without settings here the limits come from the settings the lifespan reads (MAX_BODY_BYTES and
    # REQUEST_BODY_TIMEOUT from the environment), not from constants.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes if settings else None,
        body_timeout=settings.request_body_timeout if settings else None,
    )
    # Outside the limits, so their refusals carry the security headers too.
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts=settings.app_env is AppEnv.PRODUCTION if settings else None,
    )
    app.add_middleware(RequestContextMiddleware)
    telemetry.instrument_app(app)  # only when this process started telemetry (gunicorn's post_fork)
    return app


app = create_app()
