"""The item store: one async interface, the SQL both backends share, and the two hooks each fills in.

Every query is a single statement (autocommit): one round trip on Postgres, one step on SQLite, and no
transaction left open if a request is cancelled half-way.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from service.db.records import UNSET, Item, Unset
from service.db.schema import Dialect

_COLUMNS = "id, owner, name, description, created_at, updated_at"
Row = Sequence[Any]


class Store(ABC):
    """Owner-scoped items. Every method takes the owner: another owner's item simply does not exist."""

    dialect: Dialect

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

    async def create_item(self, *, owner: str, name: str, description: str | None) -> Item:
        now = datetime.now(UTC)
        item_id = str(uuid.uuid4())
        await self._write(
            f"INSERT INTO items ({_COLUMNS}) VALUES (:id, :owner, :name, :description, :now, :now)",
            {
                "id": item_id,
                "owner": owner,
                "name": name,
                "description": description,
                "now": self._encode_time(now),
            },
        )
        return Item(
            id=item_id, owner=owner, name=name, description=description, created_at=now, updated_at=now
        )

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
