"""Versioned schema migrations, applied once, in order, under a lock, by any number of processes at once.

The runner: `backend-iac migrate` and the gunicorn master open the configured store and apply what
`service.db.schema.MIGRATIONS` holds that the database has not applied yet. Each store applies them in
its own dialect (`PostgresStore.migrate`, `SqliteStore.migrate`).

A hand-written runner (about sixty lines) rather than yoyo or alembic: both want their own connection
from a URL, which does not fit passwordless Postgres (a fresh Entra token per connection), and alembic
wants SQLAlchemy, which this service does not otherwise need.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from service.db.schema import latest_version

if TYPE_CHECKING:
    from service.config import Settings


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
