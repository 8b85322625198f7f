"""The PostgreSQL store: psycopg 3 with a connection pool, bounded waits everywhere.

A dead database must cost a request a few seconds and a clear 503, never a hung worker: connecting has
a timeout, every statement has a timeout, waiting for a pooled connection has a timeout, and every
connection is checked before it is handed out so the pool heals by itself once the server returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from service.db.errors import DatabaseUnavailable
from service.db.migrations import _ADVISORY_LOCK_KEY, MIGRATIONS, pending
from service.db.store import Store, named_to_pyformat

logger = logging.getLogger("backend_iac.db")


class PostgresStore(Store):
    dialect = "postgres"

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 5,
        pool_timeout: float = 3.0,
        connect_timeout: float = 3.0,
        statement_timeout: float = 5.0,
        password: Callable[[], str] | None = None,
    ) -> None:
        self._pool_timeout = pool_timeout
        static: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            "application_name": "backend-iac",
        }

        def connection_kwargs() -> dict[str, Any]:
            # Called for every new connection: a token-based password is fetched fresh each time.
            return static if password is None else {**static, "password": password()}

        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo,
            kwargs=connection_kwargs,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            check=ConnectionPool.check_connection,
            reconnect_timeout=30.0,
            name="backend-iac",
            open=False,
        )
        # Do not wait for the first connection: start-up must not hang on a database that is down.
        self._pool.open(wait=False)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection(timeout=self._pool_timeout) as conn, conn.transaction():
                yield conn
        except PoolTimeout as error:
            raise DatabaseUnavailable(f"no database connection within {self._pool_timeout}s") from error
        except psycopg.OperationalError as error:
            # Connection lost, server shutting down, statement timeout: the pool drops the broken one.
            raise DatabaseUnavailable(f"PostgreSQL: {error}".strip()) from error

    def _encode_time(self, value: datetime) -> object:
        return value

    def _decode_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            msg = f"expected a timestamp, got {type(value).__name__}"
            raise TypeError(msg)
        return value

    def _sql(self, sql: str) -> str:
        return named_to_pyformat(sql)

    def migrate(self) -> list[int]:
        done: list[int] = []
        with self._transaction() as conn:
            # Every migrator (workers, instances, `migrate`) queues here; the lock ends with the transaction.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for migration in pending(applied):
                for statement in migration.postgres:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                done.append(migration.version)
        return done

    def ping(self) -> None:
        with self._transaction() as conn:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        if row is None or row[0] != MIGRATIONS[-1].version:
            raise DatabaseUnavailable("PostgreSQL schema is not at the current version")

    def close(self) -> None:
        self._pool.close(timeout=2.0)
