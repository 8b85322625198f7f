"""Liveness (touches nothing) and readiness (asks the database)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from service.deps import StoreDep
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves HTTP")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is current",
    responses={503: {"description": "a dependency is failing; the problem document names it"}},
)
async def readyz(store: StoreDep) -> Readiness:
    # DatabaseUnavailable becomes a 503 problem document naming the dependency (service.problems).
    await run_in_threadpool(store.ping)
    return Readiness(status="ready", checks={"database": "ok"})
