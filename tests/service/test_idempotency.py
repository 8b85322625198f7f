"""Idempotency-Key on POST /api/v1/items, on SQLite and on PostgreSQL, in process and under gunicorn."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.db.store import IDEMPOTENCY_KEY_LIFETIME, Store
from service.main import purge_expired_keys_forever
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.service_process import ServiceProcess, production_env

ITEMS = "/api/v1/items"
Auth = Callable[..., dict[str, str]]


def _count(client: TestClient, headers: dict[str, str]) -> int:
    return len(client.get(ITEMS, params={"limit": 100}, headers=headers).json()["items"])


def test_repeat_with_the_same_body_returns_the_original_201_and_creates_nothing(
    client: TestClient, auth: Auth
) -> None:
    """Same key, same body: the same 201, item and Location, however often; one item stored."""
    headers = {**auth(subject="repeater"), "Idempotency-Key": str(uuid.uuid4())}
    first = client.post(ITEMS, json={"name": "once", "description": "d"}, headers=headers)
    assert first.status_code == 201, first.text
    repeats = [
        client.post(ITEMS, json={"description": "d", "name": "once"}, headers=headers) for _ in range(3)
    ]
    for repeat in repeats:
        assert repeat.status_code == 201, repeat.text
        assert repeat.json() == first.json()
        assert repeat.headers["location"] == first.headers["location"]
    assert _count(client, auth(subject="repeater")) == 1


def test_the_replay_is_the_original_response_even_after_the_item_changed(
    client: TestClient, auth: Auth
) -> None:
    """The replay answers what the first create answered, not the item's later state."""
    headers = {**auth(subject="changer"), "Idempotency-Key": "change-then-retry"}
    first = client.post(ITEMS, json={"name": "before"}, headers=headers)
    client.patch(first.headers["location"], json={"name": "after"}, headers=auth(subject="changer"))
    replay = client.post(ITEMS, json={"name": "before"}, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == first.json()


def test_same_key_with_another_body_is_a_422_problem(client: TestClient, auth: Auth) -> None:
    """Reusing a key for a different create is refused (422 problem) and creates nothing."""
    headers = {**auth(subject="reuser"), "Idempotency-Key": '"quoted-key-1"'}
    assert client.post(ITEMS, json={"name": "first"}, headers=headers).status_code == 201
    for body in ({"name": "second"}, {"name": "first", "description": "more"}):
        refused = client.post(ITEMS, json=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:backend-iac:problem:idempotency-key-reused"
    # The quoted form and the bare form name the same key.
    bare = client.post(ITEMS, json={"name": "first"}, headers={**headers, "Idempotency-Key": "quoted-key-1"})
    assert bare.status_code == 201
    assert _count(client, auth(subject="reuser")) == 1


def test_keys_are_scoped_to_the_caller(client: TestClient, auth: Auth) -> None:
    """Two callers with the same key each get their own item."""
    key = {"Idempotency-Key": "shared-by-accident"}
    alice = client.post(ITEMS, json={"name": "x"}, headers={**auth(subject="alice"), **key})
    bob = client.post(ITEMS, json={"name": "y"}, headers={**auth(subject="bob"), **key})
    assert (alice.status_code, bob.status_code) == (201, 201)
    assert alice.json()["id"] != bob.json()["id"]


def test_without_the_header_every_post_creates(client: TestClient, auth: Auth) -> None:
    """No key, no deduplication: two equal posts are two items, as before."""
    headers = auth(subject="plain")
    ids = {client.post(ITEMS, json={"name": "same"}, headers=headers).json()["id"] for _ in range(2)}
    assert len(ids) == 2


@pytest.mark.parametrize(
    "key", ["", "a" * 256, "has space", 'in"side', "back\\slash", '"unterminated', "é".encode(), '""']
)
def test_malformed_keys_are_422_naming_the_header(client: TestClient, auth: Auth, key: str | bytes) -> None:
    """A key outside the published format is a validation problem naming Idempotency-Key; nothing is created."""
    headers: dict[str, str | bytes] = {**auth(subject="malformed"), "Idempotency-Key": key}
    response = client.post(ITEMS, json={"name": "x"}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert _count(client, auth(subject="malformed")) == 0


def test_openapi_documents_the_header_and_its_refusals(client: TestClient) -> None:
    """The create operation lists the Idempotency-Key header, its 409 and its 422."""
    operation = client.get("/openapi.json").json()["paths"][ITEMS]["post"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["required"] is False
    assert "24 hours" in header["description"]
    assert {"409", "422"} <= set(operation["responses"])


@contextmanager
def _database_write_held(settings: Settings) -> Iterator[None]:
    """Hold the items table against writers from outside the service (another session's lock)."""
    if settings.uses_postgres:
        assert settings.database_url is not None
        with psycopg.connect(settings.database_url, autocommit=False) as conn:
            conn.execute("LOCK TABLE items IN EXCLUSIVE MODE")
            yield
            conn.rollback()
    else:
        conn = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def _post_in_background(send: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(send()), daemon=True)
    thread.start()
    return thread, answers


def test_a_repeat_while_the_first_is_in_flight_is_409_then_replays(
    client: TestClient, auth: Auth, settings: Settings
) -> None:
    """While the first create waits on the database, its repeat gets 409 at once; afterwards it replays."""
    headers = {**auth(subject="impatient"), "Idempotency-Key": "in-flight-1"}
    with _database_write_held(settings):
        thread, answers = _post_in_background(
            lambda: client.post(ITEMS, json={"name": "slow"}, headers=headers)
        )
        time.sleep(0.5)  # the first is now waiting on the lock
        started = time.monotonic()
        repeat = client.post(ITEMS, json={"name": "slow"}, headers=headers)
        assert time.monotonic() - started < 1.0, "the repeat waited for the first instead of answering"
    thread.join(timeout=15)
    assert repeat.status_code == 409, repeat.text
    assert repeat.json()["type"] == "urn:backend-iac:problem:idempotency-key-in-flight"
    assert repeat.headers["retry-after"] == "1"
    assert [answer.status_code for answer in answers] == [201]
    replay = client.post(ITEMS, json={"name": "slow"}, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == answers[0].json()
    assert _count(client, auth(subject="impatient")) == 1


@pytest.mark.anyio
async def test_concurrent_repeats_store_exactly_one_item(store: Store) -> None:
    """Many creates with one key at once: one item; every answer is that item or an in-flight refusal."""
    import asyncio

    from service.db.errors import IdempotencyKeyInFlight

    async def attempt() -> str:
        try:
            return (await store.create_item(owner="o", name="n", description=None, idempotency_key="k")).id
        except IdempotencyKeyInFlight:
            return "409"

    answers = await asyncio.gather(*(attempt() for _ in range(8)))
    ids = {answer for answer in answers if answer != "409"}
    assert len(ids) == 1
    assert await store.count_items(owner="o") == 1
    again = await store.create_item(owner="o", name="n", description=None, idempotency_key="k")
    assert {again.id} == ids


@pytest.mark.anyio
async def test_another_process_with_the_same_key_in_flight(store: Store, settings: Settings) -> None:
    """Two processes (two stores on one database), one key, the first waiting on the database: on
    PostgreSQL the second is refused at once (in flight); on SQLite, where the database lock already
    serialises writers, the second waits and replays the first. Either way one item."""
    import asyncio

    from service.db.errors import IdempotencyKeyInFlight
    from service.db.factory import open_store

    other = open_store(settings)
    try:
        with _database_write_held(settings):
            first = asyncio.create_task(
                store.create_item(owner="o", name="n", description=None, idempotency_key="k")
            )
            await asyncio.sleep(0.5)
            second = asyncio.create_task(
                other.create_item(owner="o", name="n", description=None, idempotency_key="k")
            )
            await asyncio.sleep(0.5)
            if settings.uses_postgres:
                with pytest.raises(IdempotencyKeyInFlight):
                    await second
            else:
                assert not second.done(), "SQLite: the second should be waiting for the write lock"
        created = await first
        if not settings.uses_postgres:
            assert (await second).id == created.id
    finally:
        await other.close()
    assert await store.count_items(owner="o") == 1


@pytest.mark.anyio
async def test_expired_keys_are_forgotten_and_purged(store: Store) -> None:
    """A key older than 24 h counts as unused (a new item), and the purge deletes only expired keys."""
    old = await store.create_item(owner="o", name="n", description=None, idempotency_key="old")
    await store.create_item(owner="o", name="n", description=None, idempotency_key="fresh")
    later = datetime.now(UTC) + IDEMPOTENCY_KEY_LIFETIME + timedelta(minutes=1)
    # Nothing has expired yet: the purge deletes nothing.
    assert await store.purge_expired_idempotency_keys() == 0
    assert await store.purge_expired_idempotency_keys(now=later, batch=1) == 1
    assert await store.purge_expired_idempotency_keys(now=later, batch=10) == 1
    assert await store.purge_expired_idempotency_keys(now=later) == 0
    reborn = await store.create_item(owner="o", name="other", description=None, idempotency_key="old")
    assert reborn.id != old.id


@pytest.mark.anyio
async def test_an_expired_key_is_a_new_create_before_any_purge(store: Store) -> None:
    """Expiry does not wait for the purge: a key past its lifetime is reused for a new item."""
    first = await store.create_item(owner="o", name="n", description=None, idempotency_key="k")
    table = "idempotency_keys"
    shifted = datetime.now(UTC) - IDEMPOTENCY_KEY_LIFETIME - timedelta(seconds=1)
    await store._write(f"UPDATE {table} SET created_at = :at", {"at": store._encode_time(shifted)})
    second = await store.create_item(owner="o", name="changed", description=None, idempotency_key="k")
    assert second.id != first.id
    assert await store.count_items(owner="o") == 2


@pytest.mark.anyio
async def test_the_background_purge_runs_without_a_request(store: Store) -> None:
    """The lifespan's purge task deletes expired keys by itself, and survives an unavailable database."""
    import asyncio

    await store.create_item(owner="o", name="n", description=None, idempotency_key="k")
    expired = datetime.now(UTC) - IDEMPOTENCY_KEY_LIFETIME - timedelta(seconds=1)
    await store._write("UPDATE idempotency_keys SET created_at = :at", {"at": store._encode_time(expired)})
    task = asyncio.create_task(purge_expired_keys_forever(store, first=0.0, interval=0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not await store._read("SELECT 1 FROM idempotency_keys", {}):
                break
        assert not await store._read("SELECT 1 FROM idempotency_keys", {})
    finally:
        task.cancel()
    assert await store.count_items(owner="o") == 1  # the item stays; only the key went


@pytest.mark.slow
def test_under_gunicorn_retries_across_workers_store_one_item(
    issuer: LocalIssuer, tmp_path: Path, database_url: str
) -> None:
    """Two workers, many connections, one key: every answer is the same 201 (or a 409), one item stored."""
    env = production_env(issuer.url, AUDIENCE, tmp_path, DATABASE_URL=database_url)
    with ServiceProcess(env, workers=2) as service:
        headers = {
            "Authorization": f"Bearer {issuer.mint(subject='gunicorn-retrier')}",
            "Idempotency-Key": "g-1",
        }
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def send() -> None:
            with httpx.Client(base_url=service.url, headers=headers, timeout=10) as fresh_connection:
                response = fresh_connection.post(ITEMS, json={"name": "across workers"})
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=send, daemon=True) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        final = httpx.post(f"{service.url}{ITEMS}", json={"name": "across workers"}, headers=headers)
        listed = httpx.get(f"{service.url}{ITEMS}", headers=headers).json()["items"]
        other = httpx.post(f"{service.url}{ITEMS}", json={"name": "changed"}, headers=headers)
    assert len(answers) == 12
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    created = {a.json()["id"] for a in answers if a.status_code == 201} | {final.json()["id"]}
    assert final.status_code == 201
    assert len(created) == 1
    assert [item["id"] for item in listed] == list(created)
    assert {a.headers["location"] for a in answers if a.status_code == 201} <= {final.headers["location"]}
    assert other.status_code == 422
