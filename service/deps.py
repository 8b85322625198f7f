"""Request dependencies as named Annotated aliases: settings, store, and the authenticated caller.

All are `async def` on purpose: FastAPI runs a plain `def` dependency in the threadpool, and a thread hop
per dependency would cost more than everything they do. The caller dependencies are flat (one function
reading the header itself) for the same reason, and hand the store over with the caller (`Access`): each
dependency FastAPI solves costs several microseconds per request (issue 19: one dependency instead of
two made an item read about 7% faster in process, `python -m bench.profile_request`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Access:
    """What an authenticated request may touch: its verified caller (holding the needed scope) and the
    item store. Items are always read and written as `access.caller.subject`."""

    caller: Caller
    store: Store


def _access_with(scope: str) -> Callable[[Request], Awaitable[Access]]:
    """A dependency: the verified caller of this request, who must hold `scope` (else 401/403), with the
    store."""

    async def access(request: Request) -> Access:
        verifier: TokenVerifier = request.app.state.verifier
        verified = await verifier.verify(bearer_token(request.headers.get("authorization")))
        verified.require(scope)
        if verified.legacy_owner is not None:
            await _adopt_legacy_items(request, verified, verified.legacy_owner)
        return Access(caller=verified, store=request.app.state.store)

    return access


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
Reader = Annotated[Access, Depends(_access_with("items.read"))]
Writer = Annotated[Access, Depends(_access_with("items.write"))]
