"""The PostgreSQL store: psycopg 3's async pool, bounded waits everywhere.

A dead database must cost a request a few seconds and a clear 503, never a hung worker: connecting has
a timeout, every statement has a timeout, waiting for a pooled connection has a timeout, and a
connection is checked before it is handed out so the pool heals by itself once the server returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from anyio import to_thread
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.db.errors import DatabaseUnavailable, IdempotencyKeyInFlight
from service.db.schema import ADVISORY_LOCK_KEY, latest_version, pending
from service.db.store import (
    FIND_KEY,
    FORGET_EXPIRED_KEY,
    INSERT_ITEM,
    INSERT_KEY,
    Row,
    Store,
    named_to_pyformat,
)

logger = logging.getLogger("backend_iac.db")

T = TypeVar("T")

Connection = psycopg.AsyncConnection[Any]


# A pooled connection idle longer than this is pinged before use. Connections in steady use skip the
# extra round trip; one that sat through a database restart is caught and replaced, not handed out.
IDLE_CHECK_SECONDS = 1.0
# The longest a migration run may take before start-up goes on without it.
MIGRATION_DEADLINE_SECONDS = 30
# The first half of the two-integer advisory lock a create under an idempotency key holds for its
# transaction (the second half hashes owner and key). Two-integer and one-bigint advisory locks are
# separate key spaces that "do not overlap" (https://www.postgresql.org/docs/current/functions-admin.html,
# advisory lock functions), so it can never meet the migrators' lock.
_IDEMPOTENCY_LOCK_CLASS = 0x69646B  # "idk"


async def _autocommit(conn: Connection) -> None:
    await conn.set_autocommit(True)


class _IdleCheck:
    """The pool's check/reset callbacks: remember when each connection came back, ping stale ones."""

    def __init__(self) -> None:
        self._returned_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    async def check(self, conn: Connection) -> None:
        if time.monotonic() - self._returned_at.get(conn, 0.0) > IDLE_CHECK_SECONDS:
            await AsyncConnectionPool.check_connection(conn)

    async def reset(self, conn: Connection) -> None:
        self._returned_at[conn] = time.monotonic()


def _forget(abandoned: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    """A done callback: drop the finished task and retrieve its outcome, so nothing logs it as lost."""

    def done(task: asyncio.Future[Any]) -> None:
        abandoned.discard(task)
        if not task.cancelled():
            task.exception()

    return done


def _worth_retrying(error: psycopg.OperationalError, *, idempotent: bool) -> bool:
    """Whether one more try on a fresh connection is safe and useful.

    A read is safe to repeat after any connection failure, except a statement timeout (repeating it would
    only double the wait). A write is repeated only when the server said the session was terminated
    (SQLSTATE class 57: admin or crash shutdown): the statement was then rolled back, never half-done;
    after a bare lost connection the write may have committed, so it is reported, not repeated.
    """
    if isinstance(error, psycopg.errors.QueryCanceled):
        return False
    return idempotent or (error.sqlstate or "").startswith("57P")


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
        migration_deadline: float = MIGRATION_DEADLINE_SECONDS,
    ) -> None:
        super().__init__()
        self._pool_timeout = pool_timeout
        self._migration_deadline = migration_deadline
        static: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            "application_name": "backend-iac",
        }

        async def connection_kwargs() -> dict[str, Any]:
            # Called for every new connection: a token-based password is fetched fresh each time, off
            # the event loop (azure-identity's managed identity call is blocking HTTP).
            if password is None:
                return static
            return {**static, "password": await to_thread.run_sync(password)}

        idle_check = _IdleCheck()
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            kwargs=connection_kwargs,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            configure=_autocommit,
            check=idle_check.check,
            reset=idle_check.reset,
            reconnect_timeout=30.0,
            name="backend-iac",
            open=False,
        )
        self._opened = False
        self._schema_ready = False
        # The longest a request waits on the database, pool wait and retry included: the statement timeout,
        # which the server also enforces on its side (so it stops work the client has given up on).
        self._answer_timeout = statement_timeout
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def _ensure_open(self) -> None:
        if not self._opened:
            # Do not wait for the first connection: start-up must not hang on a database that is down.
            await self._pool.open(wait=False)
            self._opened = True

    async def _within(self, work: Coroutine[Any, Any, T], seconds: float, what: str) -> T:
        """Await `work`, answering within `seconds` whatever the server does.

        statement_timeout is enforced by the server: a server that stops answering altogether (frozen,
        or cut off without a reset) would hold the caller forever, and cancelling psycopg mid-query
        makes it wait up to ten more seconds for the server to acknowledge the cancellation. So the work
        runs in a task of its own; past the deadline the caller gets DatabaseUnavailable at once, and
        the task is cancelled to clean up (closing the connection) in the background.
        """
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.wait_for(asyncio.shield(task), seconds)
        except TimeoutError:
            raise DatabaseUnavailable(f"PostgreSQL did not {what} within {seconds:g}s") from None
        finally:
            if not task.done():
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(_forget(self._abandoned))

    async def _execute(self, sql: str, params: Mapping[str, object], *, idempotent: bool) -> list[Row]:
        """Run one statement, answered (rows or DatabaseUnavailable) within the statement timeout."""
        return await self._within(
            self._execute_with_retry(sql, params, idempotent=idempotent), self._answer_timeout, "answer"
        )

    async def _execute_with_retry(
        self, sql: str, params: Mapping[str, object], *, idempotent: bool
    ) -> list[Row]:
        if not self._schema_ready:
            # The database was down when the service started: migrate on first contact instead.
            await self.migrate()
        for attempt in (1, 2):
            try:
                async with self._pool.connection(timeout=self._pool_timeout) as conn:
                    cursor = await conn.execute(named_to_pyformat(sql), params)
                    return await cursor.fetchall() if cursor.description else []
            except PoolTimeout as error:
                raise DatabaseUnavailable(f"no database connection within {self._pool_timeout}s") from error
            except psycopg.OperationalError as error:
                # The pool drops the broken connection; a second attempt gets a new one.
                if attempt == 1 and _worth_retrying(error, idempotent=idempotent):
                    # Its idle siblings likely died with it (a server restart): weed them out first.
                    await self._pool.check()
                    continue
                raise DatabaseUnavailable(f"PostgreSQL: {error}".strip()) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        return await self._execute(sql, params, idempotent=True)

    async def _write(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        return await self._execute(sql, params, idempotent=False)

    async def _create_once(self, params: Mapping[str, object]) -> Row | None:
        return await self._within(self._create_once_with_retry(params), self._answer_timeout, "answer")

    async def _create_once_with_retry(self, params: Mapping[str, object]) -> Row | None:
        if not self._schema_ready:
            await self.migrate()
        owner, key = str(params["owner"]), str(params["key"])
        for attempt in (1, 2):
            try:
                async with self._pool.connection(timeout=self._pool_timeout) as conn, conn.transaction():
                    # Held until commit or rollback, by whichever process runs this key now: another
                    # process with the same key does not wait for it, it answers 409.
                    cursor = await conn.execute(
                        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                        (_IDEMPOTENCY_LOCK_CLASS, f"{len(owner)}:{owner}{key}"),
                    )
                    locked = await cursor.fetchone()
                    if not locked or not locked[0]:
                        raise IdempotencyKeyInFlight(key)
                    cursor = await conn.execute(named_to_pyformat(FIND_KEY), params)
                    found: Row | None = await cursor.fetchone()
                    if found is None:
                        for statement in (FORGET_EXPIRED_KEY, INSERT_ITEM, INSERT_KEY):
                            await conn.execute(named_to_pyformat(statement), params)
                    return found
            except PoolTimeout as error:
                raise DatabaseUnavailable(f"no database connection within {self._pool_timeout}s") from error
            except psycopg.OperationalError as error:
                # Unlike a bare write, this one is always safe to repeat: if the lost attempt committed,
                # the repeat finds its key and replays it; if it is still running, the repeat gets 409.
                if attempt == 1 and not isinstance(error, psycopg.errors.QueryCanceled):
                    await self._pool.check()
                    continue
                raise DatabaseUnavailable(f"PostgreSQL: {error}".strip()) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _encode_time(self, value: datetime) -> object:
        return value

    def _decode_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            msg = f"expected a timestamp, got {type(value).__name__}"
            raise TypeError(msg)
        return value

    async def migrate(self) -> list[int]:
        # A frozen server never trips its own statement_timeout: the whole migration is bounded, so a
        # worker's start-up (or the gunicorn master's) cannot hang on it. Giving up leaves the schema to
        # the first request, as when the database was down.
        return await self._within(self._migrate_now(), self._migration_deadline, "finish the migrations")

    async def _migrate_now(self) -> list[int]:
        await self._ensure_open()
        done: list[int] = []
        try:
            async with self._pool.connection(timeout=self._pool_timeout) as conn, conn.transaction():
                # Every migrator (workers, instances, `migrate`) queues here; the lock ends with the transaction.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                cursor = await conn.execute("SELECT version FROM schema_migrations")
                applied = {row[0] for row in await cursor.fetchall()}
                for migration in pending(applied):
                    for statement in migration.postgres:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                    done.append(migration.version)
        except PoolTimeout as error:
            raise DatabaseUnavailable(f"no database connection within {self._pool_timeout}s") from error
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(f"PostgreSQL: {error}".strip()) from error
        self._schema_ready = True
        return done

    async def ping(self) -> None:
        rows = await self._read("SELECT max(version) FROM schema_migrations", {})
        if not rows or rows[0][0] != latest_version():
            raise DatabaseUnavailable("PostgreSQL schema is not at the current version")

    async def close(self) -> None:
        if self._opened:
            await self._pool.close(timeout=2.0)
