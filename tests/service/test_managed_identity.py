"""Passwordless Postgres: each new connection logs in with a current token, never an expired one.

The Entra exchange itself only happens on Azure; here the token source hands out real credentials of a
local role, and the role's password is rotated the way a token expires and is replaced.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import pytest

from service.db.postgres import PostgresStore
from service.db.tokens import AccessToken, ExpiringPassword
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres

SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


@dataclass
class RotatingTokenSource:
    """Hands out the current "token" (the role's current password) with a short lifetime."""

    token: str
    lifetime: float
    scopes_asked: list[str] = field(default_factory=list)

    def get_token(self, scope: str) -> AccessToken:
        self.scopes_asked.append(scope)
        return AccessToken(token=self.token, expires_on=time.time() + self.lifetime)


def test_cached_token_is_reused_only_within_its_lifetime() -> None:
    """The password callable serves one token until (lifetime - margin), then asks for a new one."""
    source = RotatingTokenSource(token="t1", lifetime=1.2)
    password = ExpiringPassword(source, SCOPE, margin_seconds=1.0)
    assert (password(), password()) == ("t1", "t1")
    assert source.scopes_asked == [SCOPE]
    source.token = "t2"
    time.sleep(0.3)
    assert password() == "t2"
    assert len(source.scopes_asked) == 2


@pytest.mark.anyio
async def test_new_pool_connections_log_in_with_a_fresh_token(postgres_server: PostgresServer) -> None:
    """After the first token expires and the role's credential rotates, reconnects use the new token."""
    role = f"mi_{uuid.uuid4().hex[:8]}"
    database = f"mi_{uuid.uuid4().hex[:8]}"
    postgres_server.create_role(role, "token-one")
    postgres_server.create_database(database, owner=role)
    source = RotatingTokenSource(token="token-one", lifetime=1.5)
    store = PostgresStore(
        postgres_server.url(database, user=role, password=None),
        password=ExpiringPassword(source, SCOPE, margin_seconds=1.0),
        pool_timeout=5.0,
    )
    try:
        await store.migrate()
        await store.create_item(owner="me", name="before rotation", description=None)

        # The identity platform issues a new token; the old one expires (the role's password changes).
        postgres_server.psql(f"ALTER ROLE {role} PASSWORD 'token-two'")
        source.token = "token-two"
        await asyncio.sleep(0.6)
        postgres_server.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )

        await store.create_item(owner="me", name="after rotation", description=None)
        assert await store.count_items(owner="me") == 2
        assert source.scopes_asked.count(SCOPE) >= 2
    finally:
        await store.close()
