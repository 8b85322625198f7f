"""The store: the same specification on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from service.db.records import UNSET
from service.db.store import Store

pytestmark = pytest.mark.anyio


async def test_created_item_reads_back_for_its_owner_only(store: Store) -> None:
    """An item is visible to its owner and does not exist for anyone else."""
    item = await store.create_item(owner="alice", name="first", description=None)
    assert await store.get_item(owner="alice", item_id=item.id) == item
    assert await store.get_item(owner="bob", item_id=item.id) is None


async def test_list_is_owner_scoped_stable_and_paginated(store: Store) -> None:
    """Pages are in creation order, never overlap, and cover every item exactly once."""
    created = [(await store.create_item(owner="alice", name=f"n{i}", description=None)).id for i in range(7)]
    await store.create_item(owner="bob", name="not alice's", description=None)
    pages = [await store.list_items(owner="alice", limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [item.id for page in pages for item in page] == created
    assert await store.list_items(owner="alice", limit=3, offset=9) == []


async def test_update_changes_only_given_fields_and_never_another_owners(store: Store) -> None:
    """A partial update leaves unset fields alone; None clears the description; others' items stay."""
    item = await store.create_item(owner="alice", name="old", description="keep")
    renamed = await store.update_item(owner="alice", item_id=item.id, name="new")
    assert renamed is not None
    assert (renamed.name, renamed.description) == ("new", "keep")
    assert renamed.updated_at >= item.updated_at
    cleared = await store.update_item(owner="alice", item_id=item.id, description=None)
    assert cleared is not None
    assert cleared.description is None
    assert await store.update_item(owner="bob", item_id=item.id, name="stolen", description=UNSET) is None
    still = await store.get_item(owner="alice", item_id=item.id)
    assert still is not None
    assert still.name == "new"


async def test_delete_is_owner_scoped(store: Store) -> None:
    """Only the owner can delete, and only once."""
    item = await store.create_item(owner="alice", name="x", description=None)
    assert await store.delete_item(owner="bob", item_id=item.id) is False
    assert await store.delete_item(owner="alice", item_id=item.id) is True
    assert await store.delete_item(owner="alice", item_id=item.id) is False


async def test_sql_metacharacters_are_stored_verbatim(store: Store) -> None:
    """Quotes, semicolons and comment markers are data, never SQL."""
    nasty = "'; DROP TABLE items; -- \" % :owner ?"
    item = await store.create_item(owner=nasty, name=nasty, description=nasty)
    fetched = await store.get_item(owner=nasty, item_id=item.id)
    assert fetched is not None
    assert (fetched.name, fetched.description) == (nasty, nasty)
    assert await store.count_items() == 1


async def test_migrate_is_idempotent_and_safe_concurrently(store: Store) -> None:
    """Migrating again, several times at once, applies nothing and breaks nothing."""
    results = await asyncio.gather(*(store.migrate() for _ in range(4)))
    assert results == [[], [], [], []]
    await store.ping()


async def test_concurrent_writers_lose_nothing(store: Store) -> None:
    """Every create that returned is stored, under concurrent writers."""

    async def write(n: int) -> list[str]:
        return [
            (await store.create_item(owner="alice", name=f"{n}-{i}", description=None)).id for i in range(25)
        ]

    written = await asyncio.gather(*(write(n) for n in range(4)))
    ids = {item_id for batch in written for item_id in batch}
    assert len(ids) == 100
    assert ids == await store.all_item_ids()
    assert await store.count_items(owner="alice") == 100
