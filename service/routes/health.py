"""Liveness (touches nothing) and readiness (asks the database)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.routing import Route

from service.deps import StoreDep
from service.schemas import Health, Readiness
from service.startup import HEALTH_PATH

router = APIRouter(tags=["health"])


_ALIVE = b'{"status":"ok"}'


@router.get(
    HEALTH_PATH,
    summary="Liveness: the process serves HTTP",
    response_class=Response,
    responses={200: {"model": Health, "content": {"application/json": {}}}},
)
@router.head(
    "/healthz", summary="Liveness, headers only", response_class=Response, operation_id="healthz_head"
)
async def healthz() -> Response:
    # A constant answer: built once, not validated and serialised per probe (App Service's health check
    # and the platform's warm-up pings hit this path on every instance).
    return Response(_ALIVE, media_type="application/json")


async def _healthz_probe(request: Request) -> Response:
    del request  # liveness reads nothing
    return Response(_ALIVE, media_type="application/json")


# The probe itself is answered by a plain Starlette route placed before the operation above: FastAPI runs
# its dependency solver and request parsing for every operation, even one that takes nothing, and that was
# a fifth of a probe's time in process (bench/profile_request.py --path /healthz). The operation stays
# for the OpenAPI document (Starlette routes are not in it); the middleware (request id, access line,
# security headers) and the problem handlers (a 405 for other methods) apply to both alike.
router.routes.insert(0, Route(HEALTH_PATH, _healthz_probe, methods=["GET", "HEAD"], include_in_schema=False))


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is current",
    responses={503: {"description": "a dependency is failing; the problem document names it"}},
)
@router.head(
    "/readyz",
    summary="Readiness, headers only (the same checks run)",
    responses={503: {"description": "a dependency is failing"}},
    operation_id="readyz_head",
)
async def readyz(store: StoreDep) -> Readiness:
    # DatabaseUnavailable becomes a 503 problem document naming the dependency (service.problems).
    await store.ping()
    return Readiness(status="ready", checks={"database": "ok"})
