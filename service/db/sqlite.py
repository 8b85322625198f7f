"""The embedded SQLite store: the default when DATABASE_URL is unset (no server to run or pay for)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.db.errors import DatabaseUnavailable
from service.db.migrations import MIGRATIONS, pending
from service.db.store import Store


class SqliteStore(Store):
    """One connection per thread (the threadpool reuses threads), WAL so readers never block the writer.

    Durability: synchronous=FULL, so a 201 means the row survived even a power cut, not only a crash.
    Several gunicorn workers share the file; writers queue on SQLite's lock for up to `busy_timeout`.
    """

    dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except (OSError, sqlite3.Error) as error:
                raise DatabaseUnavailable(f"cannot open SQLite database {self.path}: {error}") from error
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            self._rollback(conn)
            raise DatabaseUnavailable(f"SQLite: {error}") from error
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _encode_time(self, value: datetime) -> object:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def _decode_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value))

    def _sql(self, sql: str) -> str:
        return sql  # sqlite3 understands :named parameters as written

    def migrate(self) -> list[int]:
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
            self._rollback(conn)
            raise DatabaseUnavailable(f"SQLite migration failed on {self.path}: {error}") from error
        return done

    def ping(self) -> None:
        with self._transaction() as conn:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        if row is None or row[0] != MIGRATIONS[-1].version:
            raise DatabaseUnavailable("SQLite schema is not at the current version")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
