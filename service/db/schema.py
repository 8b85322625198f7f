"""The schema: every migration, in order, with each dialect's statements side by side.

A leaf module (it imports nothing of the service), so the stores and the runner both read it without
importing each other. Each dialect's statements live here together, so a schema change is reviewed for
both backends at once. To change the schema, append a Migration with the next version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Dialect = Literal["postgres", "sqlite"]

# Any constant shared by every process of this service: pg_advisory_xact_lock serialises migrators.
ADVISORY_LOCK_KEY: Final = 0x6261636B656E64  # "backend"


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
    # Owners became namespaced ("oid:<issuer>:<oid>", "sub:<issuer>:<sub>"; service.auth.owner_key):
    # the unprefixed owners written before (oid, else sub) are kept under "legacy:", a prefix no new owner
    # has, and each moves to its caller's namespaced owner on that caller's first request
    # (Store.adopt_items). Self-contained: one statement, the same SQL on both backends.
    Migration(
        version=2,
        name="owners_namespaced",
        postgres=("UPDATE items SET owner = 'legacy:' || owner WHERE owner NOT LIKE 'legacy:%'",),
        sqlite=("UPDATE items SET owner = 'legacy:' || owner WHERE owner NOT LIKE 'legacy:%'",),
    ),
    # Idempotency-Key (issue 16): one row per caller and key, written in the same transaction as the item
    # it created. No foreign key to items: a replay answers with the original 201 even after the item
    # changed or went away. Self-contained (touches no other table). After owners_namespaced, so its owners
    # are namespaced from the first row.
    Migration(
        version=3,
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


def pending(applied: set[int]) -> list[Migration]:
    return [migration for migration in MIGRATIONS if migration.version not in applied]


def latest_version() -> int:
    return MIGRATIONS[-1].version
