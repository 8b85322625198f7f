"""The embedded SQLite store: the default when DATABASE_URL is unset (no server to run or pay for)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anyio import to_thread

from service.config import SqliteStorage
from service.db.errors import DatabaseUnavailable
from service.db.schema import latest_version, pending
from service.db.storage import StorageMode, storage_mode
from service.db.store import FIND_KEY, FORGET_EXPIRED_KEY, INSERT_ITEM, INSERT_KEY, Row, Store


class SqliteStore(Store):
    """On a local disk, WAL mode: readers never wait for the writer, so reads run on the event loop
    (microseconds, no thread hop); writes, which fsync and may queue for the write lock behind another
    worker, run in the threadpool so they never stall the loop. One connection per thread.

    On a network share (service.db.storage): the rollback journal and an exclusive lock held for the
    connection's life, so one connection does everything, reads included, one statement at a time, in
    the threadpool (a read may wait on the share's I/O: never on the event loop).

    Durability: synchronous=FULL, so a 201 means the row survived even a power cut, not only a crash.
    """

    dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, mode: StorageMode | None = None) -> None:
        super().__init__()
        self.path = path
        self.busy_timeout = busy_timeout
        self.mode = mode or storage_mode(path, SqliteStorage.LOCAL)
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = asyncio.Lock()

    def _connect(self) -> sqlite3.Connection:
        # On a network share every thread shares the one connection (the exclusive lock is the
        # connection's); the asyncio lock in _write makes sure only one thread uses it at a time.
        conn: sqlite3.Connection | None = (
            self._conn if self.mode.network else getattr(self._local, "conn", None)
        )
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                # locking_mode first: it must be in force before the journal mode takes any lock.
                conn.execute(f"PRAGMA locking_mode={self.mode.locking_mode}")
                conn.execute(f"PRAGMA journal_mode={self.mode.journal_mode}")
                conn.execute("PRAGMA synchronous=FULL")
            except (OSError, sqlite3.Error) as error:
                raise DatabaseUnavailable(f"cannot open SQLite database {self.path}: {error}") from error
            if self.mode.network:
                self._conn = conn
            else:
                self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _run(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        try:
            return self._connect().execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            raise DatabaseUnavailable(f"SQLite: {error}") from error

    async def _read(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        if self.mode.network:
            return await self._write(sql, params)
        return self._run(sql, params)

    async def _write(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        # One write at a time per process, queued in arrival order. SQLite admits one writer anyway, and
        # its busy handler is not fair: with dozens of threads polling for the lock, one could starve past
        # busy_timeout and turn a healthy database into 503s under load. Queued here, at most one writer
        # per worker process contends for the file lock.
        async with self._write_lock:
            return await to_thread.run_sync(self._run, sql, params)

    def _create_once_now(self, params: Mapping[str, object]) -> Row | None:
        conn = self._connect()
        try:
            # IMMEDIATE: the write lock first, so another process with the same key waits here and then
            # finds the key committed (a replay), never a half-written create.
            conn.execute("BEGIN IMMEDIATE")
            found: Row | None = conn.execute(FIND_KEY, params).fetchone()
            if found is None:
                conn.execute(FORGET_EXPIRED_KEY, params)
                conn.execute(INSERT_ITEM, params)
                conn.execute(INSERT_KEY, params)
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise DatabaseUnavailable(f"SQLite: {error}") from error
        return found

    async def _create_once(self, params: Mapping[str, object]) -> Row | None:
        async with self._write_lock:
            return await to_thread.run_sync(self._create_once_now, params)

    def _encode_time(self, value: datetime) -> object:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def _decode_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value))

    def migrate_now(self) -> list[int]:
        """Apply pending migrations (synchronous: also used by the gunicorn master before forking)."""
        conn = self._connect()
        try:
            # IMMEDIATE takes the write lock first: a second migrator waits, then finds nothing to do.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            done = []
            for migration in pending(applied):
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, self._encode_time(datetime.now(UTC))),
                )
                done.append(migration.version)
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise DatabaseUnavailable(f"SQLite migration failed on {self.path}: {error}") from error
        return done

    async def migrate(self) -> list[int]:
        async with self._write_lock:
            return await to_thread.run_sync(self.migrate_now)

    async def ping(self) -> None:
        rows = await self._read("SELECT max(version) FROM schema_migrations", {})
        if not rows or rows[0][0] != latest_version():
            raise DatabaseUnavailable("SQLite schema is not at the current version")

    async def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._conn = None
