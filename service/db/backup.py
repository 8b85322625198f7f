"""Online backup and restore of the embedded SQLite database, with SQLite's backup API.

    python -m service.db.backup backup  /home/backups/backend-iac-$(date -u +%Y%m%dT%H%M%SZ).sqlite3
    python -m service.db.backup restore /home/backups/backend-iac-20261129T120000Z.sqlite3

`backup` copies the database the settings name (DATABASE_URL, else the embedded default under $HOME)
while the service keeps writing: the copy is one read transaction, so it is the database as of one
commit, never a torn mix (https://www.sqlite.org/backup.html). It then checks the copy
(PRAGMA integrity_check) before reporting success. `restore` checks the backup the same way and copies it
over the configured database; run it with the service stopped (it needs the write lock).

In the network-share mode (service.db.storage) the running worker holds the database's lock for its
whole life, so a backup from another process gets "database is locked" (exit 2): take it during a
restart window, or move to PostgreSQL, whose backups Azure takes for you (docs/service.md).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Final

from service.db.schema import latest_version

# How long either command waits for a lock held by the service before giving up (exit 2).
LOCK_WAIT_SECONDS: Final = 10.0


class BackupError(Exception):
    """The backup or restore could not be made, or its result failed the checks (the message says which)."""


def _check(path: Path) -> int:
    """integrity_check and the schema version of a database file; raise BackupError unless both hold."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=LOCK_WAIT_SECONDS)) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"{path}: integrity_check says {verdict}")
        try:
            version = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        except sqlite3.OperationalError:
            raise BackupError(f"{path}: not a backend-iac database (no schema_migrations)") from None
    if version != latest_version():
        raise BackupError(f"{path}: schema version {version}, this service needs {latest_version()}")
    items: int
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        items = int(db.execute("SELECT count(*) FROM items").fetchone()[0])
    return items


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    # pages=-1: the whole database in one step, inside one read transaction: a consistent snapshot even
    # while the service writes (WAL readers do not block the writer, nor it them).
    source.backup(target, pages=-1)


def backup_database(database: Path, target: Path) -> int:
    """Copy `database` to `target` (which must not exist), check the copy; return its item count."""
    if not database.is_file():
        raise BackupError(f"{database}: no such database file")
    if target.exists():
        raise BackupError(f"{target}: already exists; a backup never overwrites one")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(sqlite3.connect(database, timeout=LOCK_WAIT_SECONDS)) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            _copy(source, copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.Error as error:
        target.unlink(missing_ok=True)
        raise BackupError(f"backup of {database} failed: {error}") from None
    return _check(target)


def restore_database(backup: Path, database: Path) -> int:
    """Check `backup`, then copy it over `database` (service stopped); return the item count restored."""
    if not backup.is_file():
        raise BackupError(f"{backup}: no such backup file")
    _check(backup)
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as source,
            closing(sqlite3.connect(database, timeout=LOCK_WAIT_SECONDS)) as target,
        ):
            _copy(source, target)
    except sqlite3.Error as error:
        raise BackupError(
            f"restore into {database} failed (is the service still running?): {error}"
        ) from None
    return _check(database)


def run_backup_command(action: str, file: Path) -> int:
    """`backend-iac backup|restore FILE` and `python -m service.db.backup`: exit 0, or 2 with the reason."""
    from service.config import ConfigurationError, get_settings

    try:
        settings = get_settings()
        if settings.uses_postgres:
            print(
                f"backend-iac {action}: DATABASE_URL is PostgreSQL: use its built-in backups (docs/service.md)",
                file=sys.stderr,
            )
            return 2
        if action == "backup":
            items = backup_database(settings.sqlite_path, file)
            print(f"backed up {settings.sqlite_path} to {file}: integrity ok, {items} items")
        else:
            items = restore_database(file, settings.sqlite_path)
            print(f"restored {file} into {settings.sqlite_path}: integrity ok, {items} items")
    except (ConfigurationError, BackupError) as error:
        print(f"backend-iac {action}: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.db.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("backup", "restore"))
    parser.add_argument("file", type=Path, help="the backup file to write (backup) or read (restore)")
    args = parser.parse_args(argv)
    return run_backup_command(args.action, args.file)


if __name__ == "__main__":
    raise SystemExit(main())
