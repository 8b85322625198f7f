"""Liveness (touches nothing) and readiness (asks the database)."""

from __future__ import annotations

from fastapi import APIRouter, Response

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
