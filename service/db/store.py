"""The item store: one interface, the SQL both backends share, and the dialect hooks each fills in."""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from service.db.migrations import Dialect
from service.db.records import UNSET, Item, Unset

_COLUMNS = "id, owner, name, description, created_at, updated_at"


class Connectionlike(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...


class Store(ABC):
    """Owner-scoped items. Every method takes the owner: another owner's item simply does not exist."""

    dialect: Dialect

    # -- dialect hooks -------------------------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Connectionlike]:
        """A connection inside a transaction, committed on success; DatabaseUnavailable on outage."""

    @abstractmethod
    def _encode_time(self, value: datetime) -> object: ...

    @abstractmethod
    def _decode_time(self, value: Any) -> datetime: ...

    @abstractmethod
    def _sql(self, sql: str) -> str:
        """Rewrite the shared SQL (named :params) into this driver's parameter style."""

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending migrations under a lock; return the versions this call applied."""

    @abstractmethod
    def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers and the schema is current."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the shared queries -------------------------------------------------------------------
    def _row(self, row: Sequence[Any]) -> Item:
        return Item(
            id=str(row[0]),
            owner=row[1],
            name=row[2],
            description=row[3],
            created_at=self._decode_time(row[4]),
            updated_at=self._decode_time(row[5]),
        )

    def _one(self, sql: str, params: Mapping[str, object]) -> Item | None:
        with self._transaction() as conn:
            row = conn.execute(self._sql(sql), params).fetchone()
        return None if row is None else self._row(row)

    def create_item(self, *, owner: str, name: str, description: str | None) -> Item:
        now = datetime.now(UTC)
        params = {
            "id": str(uuid.uuid4()),
            "owner": owner,
            "name": name,
            "description": description,
            "now": self._encode_time(now),
        }
        with self._transaction() as conn:
            conn.execute(
                self._sql(
                    f"INSERT INTO items ({_COLUMNS}) VALUES (:id, :owner, :name, :description, :now, :now)"
                ),
                params,
            )
        return Item(
            id=str(params["id"]),
            owner=owner,
            name=name,
            description=description,
            created_at=now,
            updated_at=now,
        )

    def get_item(self, *, owner: str, item_id: str) -> Item | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM items WHERE owner = :owner AND id = :id", {"owner": owner, "id": item_id}
        )

    def list_items(self, *, owner: str, limit: int, offset: int) -> list[Item]:
        """The owner's items, oldest first (ties broken by id, so pages never overlap or skip)."""
        with self._transaction() as conn:
            rows = conn.execute(
                self._sql(
                    f"SELECT {_COLUMNS} FROM items WHERE owner = :owner "
                    "ORDER BY created_at, id LIMIT :limit OFFSET :offset"
                ),
                {"owner": owner, "limit": limit, "offset": offset},
            ).fetchall()
        return [self._row(row) for row in rows]

    def update_item(
        self,
        *,
        owner: str,
        item_id: str,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
    ) -> Item | None:
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
        return self._one(
            f"UPDATE items SET {', '.join(assignments)} "
            f"WHERE owner = :owner AND id = :id RETURNING {_COLUMNS}",
            params,
        )

    def delete_item(self, *, owner: str, item_id: str) -> bool:
        with self._transaction() as conn:
            row = conn.execute(
                self._sql("DELETE FROM items WHERE owner = :owner AND id = :id RETURNING id"),
                {"owner": owner, "id": item_id},
            ).fetchone()
        return row is not None

    def count_items(self, *, owner: str | None = None) -> int:
        """How many items are stored (for one owner, or all): used by tests and operators."""
        sql = "SELECT count(*) FROM items" + (" WHERE owner = :owner" if owner is not None else "")
        with self._transaction() as conn:
            row = conn.execute(self._sql(sql), {"owner": owner} if owner is not None else {}).fetchone()
        return int(row[0])

    def all_item_ids(self) -> Iterator[str]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT id FROM items").fetchall()
        return (str(row[0]) for row in rows)


_NAMED_PARAM = re.compile(r"(?<!:):([a-z_]+)")


def named_to_pyformat(sql: str) -> str:
    """`:name` -> `%(name)s` (psycopg's style); leaves `::casts` alone."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql)
