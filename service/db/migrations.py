"""Versioned schema migrations, applied once, in order, under a lock, by any number of processes at once.

A hand-written runner (about sixty lines) rather than yoyo or alembic: both want their own connection
from a URL, which does not fit passwordless Postgres (a fresh Entra token per connection), and alembic
wants SQLAlchemy, which this service does not otherwise need. Each dialect's statements live here, side
by side, so a schema change is reviewed for both backends at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from service.config import Settings

logger = logging.getLogger("backend_iac.migrations")

Dialect = Literal["postgres", "sqlite"]

# Any constant shared by every process of this service: pg_advisory_xact_lock serialises migrators.
_ADVISORY_LOCK_KEY: Final = 0x6261636B656E64  # "backend"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.postgres if dialect == "postgres" else self.sqlite


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        version=1,
        name="items",
        postgres=(
            """CREATE TABLE items (
                id uuid PRIMARY KEY,
                owner text NOT NULL,
                name text NOT NULL,
                description text,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            )""",
            "CREATE INDEX items_owner_order ON items (owner, created_at, id)",
        ),
        sqlite=(
            """CREATE TABLE items (
                id text PRIMARY KEY,
                owner text NOT NULL,
                name text NOT NULL,
                description text,
                created_at text NOT NULL,
                updated_at text NOT NULL
            )""",
            "CREATE INDEX items_owner_order ON items (owner, created_at, id)",
        ),
    ),
    # Idempotency-Key (issue 16): one row per caller and key, written in the same transaction as the item
    # it created. No foreign key to items: a replay answers with the original 201 even after the item
    # changed or went away. Self-contained (touches no other table), so it can sit anywhere after version 1.
    Migration(
        version=2,
        name="idempotency_keys",
        postgres=(
            """CREATE TABLE idempotency_keys (
                owner text NOT NULL,
                key text NOT NULL,
                fingerprint text NOT NULL,
                item_id uuid NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (owner, key)
            )""",
            "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)",
        ),
        sqlite=(
            """CREATE TABLE idempotency_keys (
                owner text NOT NULL,
                key text NOT NULL,
                fingerprint text NOT NULL,
                item_id text NOT NULL,
                created_at text NOT NULL,
                PRIMARY KEY (owner, key)
            )""",
            "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)",
        ),
    ),
)

_CREATE_LEDGER: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
)


def pending(applied: set[int]) -> list[Migration]:
    return [migration for migration in MIGRATIONS if migration.version not in applied]


def latest_version() -> int:
    return MIGRATIONS[-1].version


async def migrate_database(settings: Settings) -> list[int]:
    """Open the configured store, apply pending migrations, close it."""
    from service.db.factory import open_store

    store = open_store(settings)
    try:
        return await store.migrate()
    finally:
        await store.close()


def run_migrations() -> int:
    """`backend-iac migrate`: apply pending migrations to the configured database."""
    from service.config import ConfigurationError, get_settings
    from service.db.errors import DatabaseUnavailable

    try:
        applied = asyncio.run(migrate_database(get_settings()))
    except (ConfigurationError, DatabaseUnavailable) as error:
        print(f"backend-iac migrate: {error}", file=sys.stderr)
        return 2
    print(f"schema at version {latest_version()}; applied now: {applied or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_migrations())
