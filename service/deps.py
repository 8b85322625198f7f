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
        if verified.legacy_owner is not None:
            await _adopt_legacy_items(request, verified, verified.legacy_owner)
        return verified

    return caller


# Owners whose legacy items this worker has already adopted: one set lookup per request after the first.
# Bounded: past the cap it starts over (adoption is idempotent, so forgetting costs one UPDATE per caller).
_ADOPTED_CAP = 100_000


async def _adopt_legacy_items(request: Request, caller: Caller, legacy_owner: str) -> None:
    adopted: set[str] | None = getattr(request.app.state, "adopted_owners", None)
    if adopted is None:
        adopted = request.app.state.adopted_owners = set()
    if caller.subject in adopted:
        return
    store: Store = request.app.state.store
    await store.adopt_items(owner=caller.subject, legacy_owner=legacy_owner)
    if len(adopted) >= _ADOPTED_CAP:
        adopted.clear()
    adopted.add(caller.subject)


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
Reader = Annotated[Caller, Depends(_caller_with("items.read"))]
Writer = Annotated[Caller, Depends(_caller_with("items.write"))]
