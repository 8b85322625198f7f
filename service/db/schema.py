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
)


def pending(applied: set[int]) -> list[Migration]:
    return [migration for migration in MIGRATIONS if migration.version not in applied]


def latest_version() -> int:
    return MIGRATIONS[-1].version
