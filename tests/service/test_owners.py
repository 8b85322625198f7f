"""Owners are namespaced by claim and issuer (issue 18 item 5), and items written before keep their owner
through migration 2, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth import owner_key, owner_namespace
from service.config import Settings, load_settings
from service.db import schema
from service.db.factory import open_store
from service.main import create_app
from tests.support.issuer import LocalIssuer

ITEMS = "/api/v1/items"
ENTRA_TENANT = "00000000-0000-0000-0000-00000000aaaa"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_owner_keys_never_collide_across_claims_and_issuers() -> None:
    """oid and sub of one value, and one sub under two issuers, are four different owners; Entra's v1.0 and
    v2.0 issuers of one tenant are one namespace."""
    keys = {
        owner_key("oid", "https://a.example", "x"),
        owner_key("sub", "https://a.example", "x"),
        owner_key("sub", "https://b.example", "x"),
        owner_key("sub", "https://a.example:x", ""),
    }
    assert len(keys) == 4
    v1 = owner_namespace(f"https://sts.windows.net/{ENTRA_TENANT}/")
    v2 = owner_namespace(f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0")
    assert v1 == v2 == f"entra/{ENTRA_TENANT}"


def test_sub_equal_to_another_callers_oid_reads_nothing(client: TestClient, issuer: LocalIssuer) -> None:
    """The collision: a token without oid whose sub is the victim's oid lists, reads, changes and deletes
    none of the victim's items."""
    victim = _bearer(issuer.mint(subject="victim-sub", oid="shared-id"))
    attacker = _bearer(issuer.mint(subject="shared-id"))
    created = client.post(ITEMS, json={"name": "secret"}, headers=victim)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert client.get(ITEMS, headers=attacker).json()["items"] == []
    assert client.get(url, headers=attacker).status_code == 404
    assert client.patch(url, json={"name": "x"}, headers=attacker).status_code == 404
    assert client.delete(url, headers=attacker).status_code == 404
    assert client.get(url, headers=victim).status_code == 200


@pytest.fixture
def legacy_settings(settings: Settings) -> Settings:
    """The database under test at schema version 1, holding items with bare (pre-namespace) owners."""

    async def seed() -> None:
        store = open_store(settings)
        try:
            await store.migrate()
            for owner in ("legacy-oid", "legacy-oid", "legacy-sub"):
                await store.create_item(owner=owner, name=f"of {owner}", description=None)
        finally:
            await store.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        asyncio.run(seed())
    return settings


def test_existing_items_keep_their_owner_through_the_migration(
    legacy_settings: Settings, issuer: LocalIssuer
) -> None:
    """After migration 2, the oid caller and the sub-only caller of before still see their own items,
    and only theirs; a colliding sub adopts nothing the oid caller already took."""
    with TestClient(create_app(legacy_settings), raise_server_exceptions=False) as client:
        by_oid = _bearer(issuer.mint(subject="pairwise-sub", oid="legacy-oid"))
        by_sub = _bearer(issuer.mint(subject="legacy-sub"))
        mine = client.get(ITEMS, headers=by_oid)
        assert mine.status_code == 200, mine.text
        assert sorted(item["name"] for item in mine.json()["items"]) == ["of legacy-oid", "of legacy-oid"]
        assert [item["name"] for item in client.get(ITEMS, headers=by_sub).json()["items"]] == [
            "of legacy-sub"
        ]
        impostor = _bearer(issuer.mint(subject="legacy-oid"))
        assert client.get(ITEMS, headers=impostor).json()["items"] == []
        assert len(client.get(ITEMS, headers=by_oid).json()["items"]) == 2


def test_entra_sub_only_tokens_adopt_no_legacy_items(
    database_url: str, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """Under an Entra issuer a legacy owner was always an oid: a token without oid adopts nothing, even
    first, even with the legacy owner as its sub."""
    issuer_url = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
    settings = load_settings(
        app_env="production",
        database_url=database_url,
        auth_issuer=issuer_url,
        auth_audience="11111111-2222-3333-4444-555555555555",
        auth_jwks_url=issuer.jwks_url,
        build_info_path=tmp_path / "missing-build-info.json",
    )

    async def seed() -> None:
        store = open_store(settings)
        try:
            await store.migrate()
            await store.create_item(owner="victim-oid", name="victim's", description=None)
        finally:
            await store.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        asyncio.run(seed())

    def token(**claims: object) -> dict[str, str]:
        extra = {"azp": "client", "ver": "2.0", **claims.pop("extra", {})}  # type: ignore[dict-item]
        return _bearer(
            issuer.mint(
                issuer=issuer_url, audience="11111111-2222-3333-4444-555555555555", extra=extra, **claims
            )  # type: ignore[arg-type]
        )

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        attacker = client.get(ITEMS, headers=token(subject="victim-oid"))
        assert attacker.status_code == 200, attacker.text
        assert attacker.json()["items"] == []
        victim = client.get(ITEMS, headers=token(subject="pairwise", oid="victim-oid"))
        assert [item["name"] for item in victim.json()["items"]] == ["victim's"]
