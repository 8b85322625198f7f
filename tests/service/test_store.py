"""The store: the same specification on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

from service.db.records import UNSET
from service.db.store import Store


def test_created_item_reads_back_for_its_owner_only(store: Store) -> None:
    """An item is visible to its owner and does not exist for anyone else."""
    item = store.create_item(owner="alice", name="first", description=None)
    assert store.get_item(owner="alice", item_id=item.id) == item
    assert store.get_item(owner="bob", item_id=item.id) is None


def test_list_is_owner_scoped_stable_and_paginated(store: Store) -> None:
    """Pages are in creation order, never overlap, and cover every item exactly once."""
    created = [store.create_item(owner="alice", name=f"n{i}", description=None).id for i in range(7)]
    store.create_item(owner="bob", name="not alice's", description=None)
    pages = [store.list_items(owner="alice", limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [item.id for page in pages for item in page] == created
    assert store.list_items(owner="alice", limit=3, offset=9) == []


def test_update_changes_only_given_fields_and_never_another_owners(store: Store) -> None:
    """A partial update leaves unset fields alone; None clears the description; others' items stay."""
    item = store.create_item(owner="alice", name="old", description="keep")
    renamed = store.update_item(owner="alice", item_id=item.id, name="new")
    assert renamed is not None
    assert (renamed.name, renamed.description) == ("new", "keep")
    assert renamed.updated_at >= item.updated_at
    cleared = store.update_item(owner="alice", item_id=item.id, description=None)
    assert cleared is not None
    assert cleared.description is None
    assert store.update_item(owner="bob", item_id=item.id, name="stolen", description=UNSET) is None
    still = store.get_item(owner="alice", item_id=item.id)
    assert still is not None
    assert still.name == "new"


def test_delete_is_owner_scoped(store: Store) -> None:
    """Only the owner can delete, and only once."""
    item = store.create_item(owner="alice", name="x", description=None)
    assert store.delete_item(owner="bob", item_id=item.id) is False
    assert store.delete_item(owner="alice", item_id=item.id) is True
    assert store.delete_item(owner="alice", item_id=item.id) is False


def test_sql_metacharacters_are_stored_verbatim(store: Store) -> None:
    """Quotes, semicolons and comment markers are data, never SQL."""
    nasty = "'; DROP TABLE items; -- \" % :owner ?"
    item = store.create_item(owner=nasty, name=nasty, description=nasty)
    fetched = store.get_item(owner=nasty, item_id=item.id)
    assert fetched is not None
    assert (fetched.name, fetched.description) == (nasty, nasty)
    assert store.count_items() == 1


def test_migrate_is_idempotent_and_safe_concurrently(store: Store) -> None:
    """Migrating again, from several threads at once, applies nothing and breaks nothing."""
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(store.migrate())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[], [], [], []]
    store.ping()


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    """Every create that returned is stored, under concurrent writers."""
    ids: list[str] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        for i in range(25):
            item = store.create_item(owner="alice", name=f"{n}-{i}", description=None)
            with lock:
                ids.append(item.id)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == sorted(store.all_item_ids())
    assert store.count_items(owner="alice") == 100
