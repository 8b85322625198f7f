"""SQLite online backup and restore: a backup taken while writers write restores to a database that passes
the store's specification; the command line refuses what it cannot do, with exit 2."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from service.db.backup import BackupError, backup_database, restore_database
from service.db.sqlite import SqliteStore
from tests.service.test_store import (
    test_created_item_reads_back_for_its_owner_only,
    test_delete_is_owner_scoped,
    test_list_is_owner_scoped_stable_and_paginated,
    test_migrate_is_idempotent_and_safe_concurrently,
    test_update_changes_only_given_fields_and_never_another_owners,
)
from tests.support.service_process import REPO_ROOT

for _imported in (
    test_created_item_reads_back_for_its_owner_only,
    test_delete_is_owner_scoped,
    test_list_is_owner_scoped_stable_and_paginated,
    test_migrate_is_idempotent_and_safe_concurrently,
    test_update_changes_only_given_fields_and_never_another_owners,
):
    pytest.mark.anyio(_imported)

WRITERS = 3


def _write_until(path: Path, stop: threading.Event, written: list[str]) -> None:
    """One writer process-alike: its own store (own connections), creating items until told to stop."""

    async def write() -> None:
        store = SqliteStore(path)
        try:
            for n in range(100_000):  # bounded; stopped long before
                if stop.is_set():
                    return
                written.append((await store.create_item(owner="load", name=f"n{n}", description=None)).id)
        finally:
            await store.close()

    asyncio.run(write())


def _backup_under_load(tmp_path: Path) -> tuple[Path, int, int, int]:
    """Back up while writers write; returns the backup, items before, items in the backup, items after."""
    database = tmp_path / "live.sqlite3"
    asyncio.run(_migrate(database))
    stop = threading.Event()
    written: list[list[str]] = [[] for _ in range(WRITERS)]
    threads = [
        threading.Thread(target=_write_until, args=(database, stop, written[n]), daemon=True)
        for n in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    try:
        while sum(map(len, written)) < 30:  # the writers are well under way
            threading.Event().wait(0.02)
        before = sum(map(len, written))
        target = tmp_path / "home" / "backups" / "backup.sqlite3"
        in_backup = backup_database(database, target)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return target, before, in_backup, sum(map(len, written))


async def _migrate(path: Path) -> None:
    store = SqliteStore(path)
    await store.migrate()
    await store.close()


def test_a_backup_under_write_load_is_a_consistent_snapshot(tmp_path: Path) -> None:
    """The copy holds every item committed before it began, passes integrity_check, and writers never stopped."""
    backup, before, in_backup, after = _backup_under_load(tmp_path)
    assert before <= in_backup <= after
    assert after > in_backup, "the writers stopped during the backup: it was not taken under load"
    with closing(sqlite3.connect(backup)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == in_backup


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Overrides the two-backend fixture: the imported store tests run on a database restored from a
    backup taken under write load."""
    backup, _, in_backup, _ = _backup_under_load(tmp_path)
    restored = tmp_path / "restored" / "items.sqlite3"
    assert restore_database(backup, restored) == in_backup
    return f"sqlite:///{restored}"


def test_backup_and_restore_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    """No overwriting an existing backup, no restoring a file that is not a backend-iac database."""
    database = tmp_path / "db.sqlite3"
    asyncio.run(_migrate(database))
    target = tmp_path / "b.sqlite3"
    backup_database(database, target)
    with pytest.raises(BackupError, match="already exists"):
        backup_database(database, target)
    stranger = tmp_path / "stranger.sqlite3"
    with closing(sqlite3.connect(stranger)) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(BackupError, match="not a backend-iac database"):
        restore_database(stranger, tmp_path / "restored.sqlite3")
    with pytest.raises(BackupError, match="no such database"):
        backup_database(tmp_path / "missing.sqlite3", tmp_path / "c.sqlite3")


def _command(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.db.backup", *arguments],
        cwd=REPO_ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_one_liner_backs_up_and_restores_the_configured_database(tmp_path: Path) -> None:
    """`python -m service.db.backup backup|restore FILE` on DATABASE_URL: exit 0, then 2 on a refusal."""
    database = tmp_path / "data" / "db.sqlite3"
    asyncio.run(_migrate(database))
    env = {"DATABASE_URL": f"sqlite:///{database}", "HOME": str(tmp_path)}
    target = tmp_path / "backups" / "one.sqlite3"
    made = _command("backup", str(target), env=env)
    assert made.returncode == 0, made.stderr
    assert "integrity ok" in made.stdout
    again = _command("backup", str(target), env=env)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    restored = _command("restore", str(target), env=env)
    assert restored.returncode == 0, restored.stderr
    postgres = _command("backup", str(target), env={**env, "DATABASE_URL": "postgresql://u@127.0.0.1/x"})
    assert postgres.returncode == 2
    assert "PostgreSQL" in postgres.stderr
    assert "Traceback" not in made.stderr + again.stderr + restored.stderr + postgres.stderr


def test_backend_iac_backup_and_restore_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backend-iac backup FILE` and `backend-iac restore FILE` run the same core: 0, then 2 with the reason."""
    from backend_iac.cli import main
    from service.config import get_settings

    database = tmp_path / "data" / "db.sqlite3"
    asyncio.run(_migrate(database))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    get_settings.cache_clear()
    try:
        target = tmp_path / "cli-backup.sqlite3"
        assert main(["backup", str(target)]) == 0
        assert "integrity ok" in capsys.readouterr().out
        assert main(["backup", str(target)]) == 2
        assert "already exists" in capsys.readouterr().err
        assert main(["restore", str(target)]) == 0
        assert main(["restore", str(tmp_path / "missing.sqlite3")]) == 2
        assert "no such backup file" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
