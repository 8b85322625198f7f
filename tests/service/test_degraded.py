"""A database that does not answer degrades to fast 503s; liveness stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.config import load_settings
from service.db.errors import DatabaseUnavailable
from service.db.postgres import PostgresStore
from service.main import create_app
from tests.support.issuer import AUDIENCE, LocalIssuer, new_key
from tests.support.postgres import free_port
from tests.support.tcp_proxy import FreezableProxy


@pytest.fixture
def client_without_database(issuer: LocalIssuer) -> Iterator[TestClient]:
    settings = load_settings(
        app_env="production",
        database_url=f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none",
        database_pool_timeout=1.0,
        database_connect_timeout=1.0,
        auth_issuer=issuer.url,
        auth_audience=AUDIENCE,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_readiness_names_the_failing_database(client_without_database: TestClient) -> None:
    """/readyz is a 503 problem document naming the database; /healthz stays 200."""
    ready = client_without_database.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    assert ready.json()["dependency"] == "database"
    assert client_without_database.get("/healthz").status_code == 200


def test_item_requests_fail_fast_with_503(client_without_database: TestClient, issuer: LocalIssuer) -> None:
    """Writes during an outage are 503 with Retry-After within the pool timeout, never a 500 or a hang."""
    headers = {"Authorization": f"Bearer {issuer.mint()}"}
    started = time.monotonic()
    response = client_without_database.post("/api/v1/items", json={"name": "x"}, headers=headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert elapsed < 3.0


def test_unreachable_identity_provider_gives_401_not_500(tmp_path: object) -> None:
    """With the JWKS endpoint unreachable from the start, tokens are refused (401), the app still serves."""
    settings = load_settings(
        app_env="production",
        database_url=f"sqlite:///{tmp_path}/db.sqlite3",
        auth_issuer=f"http://127.0.0.1:{free_port()}",
        auth_audience=AUDIENCE,
        auth_http_timeout=0.5,
    )
    issuer = LocalIssuer(keys=[new_key()])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/items", headers={"Authorization": f"Bearer {issuer.mint(issuer='x')}"})
        assert response.status_code == 401
        assert client.get("/readyz").status_code == 200


@pytest.mark.anyio
@pytest.mark.postgres
async def test_migration_against_a_frozen_database_gives_up_at_its_deadline(
    postgres_proxy: FreezableProxy, postgres_url: str
) -> None:
    """A server that stops answering cannot hang start-up: migrating gives up at the deadline, cleanly."""
    store = PostgresStore(postgres_proxy.url(postgres_url), pool_timeout=1.0, migration_deadline=1.5)
    try:
        await store.migrate()  # connected and current before the freeze
        store._schema_ready = False  # as if this worker had started while the database was away
        with postgres_proxy.frozen():
            started = time.monotonic()
            with pytest.raises(
                DatabaseUnavailable,
                match=r"did not finish the migrations within 1\.5s|no database connection",
            ):
                await store.migrate()
            elapsed = time.monotonic() - started
        assert elapsed < 4.0, elapsed
    finally:
        await store.close()
