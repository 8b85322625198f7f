"""Isolation: one caller never sees, changes or deletes another caller's items, even by guessing ids."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests.reliability.conftest import bearer
from tests.reliability.figures import backend, report
from tests.support.issuer import LocalIssuer

pytestmark = pytest.mark.reliability


def test_callers_cannot_reach_each_others_items(
    client: TestClient, issuer: LocalIssuer, database_url: str
) -> None:
    """Every list, read, update and delete of another caller's item, real or guessed id, is a 404."""
    alice = bearer(issuer.mint(subject="alice-sub", oid="oid-alice"))
    bob = bearer(issuer.mint(subject="bob-sub", oid="oid-bob"))
    # Same sub as Alice, another oid: the owner is the oid, so this is a third caller, not Alice.
    alice_sub_other_oid = bearer(issuer.mint(subject="alice-sub", oid="oid-carol"))

    ids = {}
    for owner, headers in (("alice", alice), ("bob", bob)):
        created = client.post("/api/v1/items", json={"name": f"{owner}'s"}, headers=headers)
        assert created.status_code == 201, created.text
        ids[owner] = created.json()["id"]

    guessed = [str(uuid.uuid4()) for _ in range(20)] + [str(uuid.UUID(int=0)), str(uuid.UUID(int=1))]
    attempts = refused = 0
    for intruder, victim_id in (
        (bob, ids["alice"]),
        (alice, ids["bob"]),
        (alice_sub_other_oid, ids["alice"]),
        *((alice, guess) for guess in guessed),
    ):
        url = f"/api/v1/items/{victim_id}"
        for method, body in (("GET", None), ("PATCH", {"name": "mine now"}), ("DELETE", None)):
            response = client.request(method, url, json=body, headers=intruder)
            attempts += 1
            assert response.status_code == 404, (method, url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            refused += 1

    for intruder, own in ((alice, "alice"), (bob, "bob"), (alice_sub_other_oid, None)):
        listed = client.get("/api/v1/items?limit=100", headers=intruder)
        attempts += 1
        assert listed.status_code == 200, listed.text
        assert [item["id"] for item in listed.json()["items"]] == ([ids[own]] if own else [])

    # The victims' items are untouched by all of it.
    for owner, headers in (("alice", alice), ("bob", bob)):
        item = client.get(f"/api/v1/items/{ids[owner]}", headers=headers)
        assert item.status_code == 200, item.text
        assert item.json()["name"] == f"{owner}'s"
    report(f"isolation-{backend(database_url)}", requests=attempts, refused_404=refused, leaked=0)
