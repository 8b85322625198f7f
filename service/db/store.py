"""The item store: one async interface, the SQL both backends share, and the two hooks each fills in.

Every query is a single statement (autocommit): one round trip on Postgres, one step on SQLite, and no
transaction left open if a request is cancelled half-way. The one exception is a create under an
idempotency key: the key and the item it created are written in one transaction (`_create_once`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from service.db.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from service.db.records import UNSET, Item, Unset
from service.db.schema import Dialect

_COLUMNS = "id, owner, name, description, created_at, updated_at"
Row = Sequence[Any]

# How long an idempotency key is remembered (the draft asks the server to publish its expiry policy:
# draft-ietf-httpapi-idempotency-key-header, "Idempotency Key Validity and Expiry"). An older key is
# treated as never seen, and the periodic purge deletes it.
IDEMPOTENCY_KEY_LIFETIME: Final = timedelta(hours=24)

INSERT_ITEM: Final = f"INSERT INTO items ({_COLUMNS}) VALUES (:id, :owner, :name, :description, :now, :now)"
# The statements of one create under a key, in order, inside one transaction (each dialect runs them).
FIND_KEY: Final = (
    "SELECT fingerprint, item_id, created_at FROM idempotency_keys "
    "WHERE owner = :owner AND key = :key AND created_at > :cutoff"
)
FORGET_EXPIRED_KEY: Final = (
    "DELETE FROM idempotency_keys WHERE owner = :owner AND key = :key AND created_at <= :cutoff"
)
INSERT_KEY: Final = (
    "INSERT INTO idempotency_keys (owner, key, fingerprint, item_id, created_at) "
    "VALUES (:owner, :key, :fingerprint, :id, :now)"
)
_PURGE_EXPIRED_KEYS: Final = (
    "DELETE FROM idempotency_keys WHERE (owner, key) IN "
    "(SELECT owner, key FROM idempotency_keys WHERE created_at <= :cutoff LIMIT :batch) RETURNING owner"
)


def request_fingerprint(name: str, description: str | None) -> str:
    """What makes two creates "the same request": the fields they would store, hashed."""
    canonical = json.dumps([name, description], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Store(ABC):
    """Owner-scoped items. Every method takes the owner: another owner's item simply does not exist."""

    dialect: Dialect

    def __init__(self) -> None:
        # (owner, key) of the creates this process is running now: a repeat meanwhile is a 409 at once.
        self._in_flight: set[tuple[str, str]] = set()

    # -- dialect hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _read(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        """Run a query that changes nothing; DatabaseUnavailable on outage."""

    @abstractmethod
    async def _write(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        """Run a statement that changes data, durably committed before it returns."""

    @abstractmethod
    def _encode_time(self, value: datetime) -> object: ...

    @abstractmethod
    def _decode_time(self, value: Any) -> datetime: ...

    @abstractmethod
    async def _create_once(self, params: Mapping[str, object]) -> Row | None:
        """In one transaction: FIND_KEY; when nothing is found, FORGET_EXPIRED_KEY, INSERT_ITEM and
        INSERT_KEY. Return the found row (nothing written) or None (created). Raise
        IdempotencyKeyInFlight when another process holds the same key right now."""

    @abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations under a lock; return the versions this call applied."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers and the schema is current."""

    @abstractmethod
    async def close(self) -> None: ...

    # -- the shared queries -------------------------------------------------------------------
    def _item(self, row: Row) -> Item:
        return Item(
            id=str(row[0]),
            owner=row[1],
            name=row[2],
            description=row[3],
            created_at=self._decode_time(row[4]),
            updated_at=self._decode_time(row[5]),
        )

    async def create_item(
        self, *, owner: str, name: str, description: str | None, idempotency_key: str | None = None
    ) -> Item:
        """Create an item. Under an idempotency key, a repeat of the same request (same owner, key and
        fields, within IDEMPOTENCY_KEY_LIFETIME) returns the item the first one created and writes
        nothing; the same key with other fields raises IdempotencyKeyReused; a repeat while the first
        is still running raises IdempotencyKeyInFlight."""
        now = datetime.now(UTC)
        item = Item(
            id=str(uuid.uuid4()),
            owner=owner,
            name=name,
            description=description,
            created_at=now,
            updated_at=now,
        )
        params: dict[str, object] = {
            "id": item.id,
            "owner": owner,
            "name": name,
            "description": description,
            "now": self._encode_time(now),
        }
        if idempotency_key is None:
            await self._write(INSERT_ITEM, params)
            return item
        slot = (owner, idempotency_key)
        if slot in self._in_flight:
            raise IdempotencyKeyInFlight(idempotency_key)
        fingerprint = request_fingerprint(name, description)
        params |= {
            "key": idempotency_key,
            "fingerprint": fingerprint,
            "cutoff": self._encode_time(now - IDEMPOTENCY_KEY_LIFETIME),
        }
        self._in_flight.add(slot)
        try:
            found = await self._create_once(params)
        finally:
            self._in_flight.discard(slot)
        if found is None:
            return item
        if found[0] != fingerprint:
            raise IdempotencyKeyReused(idempotency_key)
        # Same fingerprint, so the same name and description: the original item as it was created.
        created_at = self._decode_time(found[2])
        return Item(
            id=str(found[1]),
            owner=owner,
            name=name,
            description=description,
            created_at=created_at,
            updated_at=created_at,
        )

    async def purge_expired_idempotency_keys(self, *, now: datetime | None = None, batch: int = 500) -> int:
        """Delete at most `batch` keys older than IDEMPOTENCY_KEY_LIFETIME; return how many went.

        Batches keep each delete short (SQLite holds its one write lock meanwhile), so a purge never
        makes requests wait long; the caller repeats until a batch comes back short.
        """
        cutoff = (now or datetime.now(UTC)) - IDEMPOTENCY_KEY_LIFETIME
        rows = await self._write(_PURGE_EXPIRED_KEYS, {"cutoff": self._encode_time(cutoff), "batch": batch})
        return len(rows)

    async def get_item(self, *, owner: str, item_id: str) -> Item | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM items WHERE owner = :owner AND id = :id", {"owner": owner, "id": item_id}
        )
        return self._item(rows[0]) if rows else None

    async def list_items(self, *, owner: str, limit: int, offset: int) -> list[Item]:
        """The owner's items, oldest first (ties broken by id, so pages never overlap or skip)."""
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM items WHERE owner = :owner ORDER BY created_at, id LIMIT :limit OFFSET :offset",
            {"owner": owner, "limit": limit, "offset": offset},
        )
        return [self._item(row) for row in rows]

    async def update_item(
        self,
        *,
        owner: str,
        item_id: str,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
    ) -> Item | None:
        if isinstance(name, Unset) and isinstance(description, Unset):
            # Nothing to change (PATCH {}): the item as it is, updated_at untouched, no write at all.
            return await self.get_item(owner=owner, item_id=item_id)
        assignments = ["updated_at = :now"]
        params: dict[str, object] = {
            "owner": owner,
            "id": item_id,
            "now": self._encode_time(datetime.now(UTC)),
        }
        if not isinstance(name, Unset):
            assignments.append("name = :name")
            params["name"] = name
        if not isinstance(description, Unset):
            assignments.append("description = :description")
            params["description"] = description
        rows = await self._write(
            f"UPDATE items SET {', '.join(assignments)} WHERE owner = :owner AND id = :id RETURNING {_COLUMNS}",
            params,
        )
        return self._item(rows[0]) if rows else None

    async def delete_item(self, *, owner: str, item_id: str) -> bool:
        rows = await self._write(
            "DELETE FROM items WHERE owner = :owner AND id = :id RETURNING id",
            {"owner": owner, "id": item_id},
        )
        return bool(rows)

    async def adopt_items(self, *, owner: str, legacy_owner: str) -> int:
        """Give the items stored under `legacy_owner` (written before owners were namespaced) to `owner`;
        return how many moved. Idempotent: a second call (another worker's, say) moves nothing.

        A read first: most callers have no legacy items, and a write (SQLite's write lock, a Postgres row
        lock) for nothing would make a caller's first request wait on every other writer."""
        legacy = await self._read(
            "SELECT id FROM items WHERE owner = :legacy LIMIT 1", {"legacy": legacy_owner}
        )
        if not legacy:
            return 0
        rows = await self._write(
            "UPDATE items SET owner = :owner WHERE owner = :legacy RETURNING id",
            {"owner": owner, "legacy": legacy_owner},
        )
        return len(rows)

    async def count_items(self, *, owner: str | None = None) -> int:
        """How many items are stored (for one owner, or all): used by tests and operators."""
        if owner is None:
            rows = await self._read("SELECT count(*) FROM items", {})
        else:
            rows = await self._read("SELECT count(*) FROM items WHERE owner = :owner", {"owner": owner})
        return int(rows[0][0])

    async def all_item_ids(self) -> set[str]:
        return {str(row[0]) for row in await self._read("SELECT id FROM items", {})}


_NAMED_PARAM = re.compile(r"(?<!:):([a-z_]+)")


def named_to_pyformat(sql: str) -> str:
    """`:name` -> `%(name)s` (psycopg's style); leaves `::casts` alone."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql)
