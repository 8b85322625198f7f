"""Request dependencies as named Annotated aliases: settings, store, and the authenticated caller.

All are `async def` on purpose: FastAPI runs a plain `def` dependency in the threadpool, and a thread hop
per dependency would cost more than everything they do. The caller dependencies are flat (one function
reading the header itself) for the same reason: each nested Depends costs several microseconds per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from service.auth import Caller, TokenVerifier, bearer_token
from service.config import Settings
from service.db.store import Store


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _caller_with(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the verified caller of this request, who must hold `scope` (else 401/403)."""

    async def caller(request: Request) -> Caller:
        verifier: TokenVerifier = request.app.state.verifier
        verified = await verifier.verify(bearer_token(request.headers.get("authorization")))
        verified.require(scope)
        return verified

    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
Reader = Annotated[Caller, Depends(_caller_with("items.read"))]
Writer = Annotated[Caller, Depends(_caller_with("items.write"))]
