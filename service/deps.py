"""Request dependencies as named Annotated aliases: settings, store, and the authenticated caller.

All are `async def` on purpose: FastAPI runs a plain `def` dependency in the threadpool, and a thread hop
per dependency would cost more than everything they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.auth import Caller, TokenVerifier, bearer_token
from service.config import Settings
from service.db.store import Store


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(bearer_token(authorization))


async def _reader(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    caller.require("items.read")
    return caller


async def _writer(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    caller.require("items.write")
    return caller


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
Reader = Annotated[Caller, Depends(_reader)]
Writer = Annotated[Caller, Depends(_writer)]
