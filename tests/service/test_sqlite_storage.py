"""SQLite on a network share: detection from the mount table, and the network-share mode itself.

No SMB or NFS share can be mounted here (the kernel has neither filesystem), so detection is tested on
mount tables shaped like App Service's, plus this machine's own, and the mode is forced with
SQLITE_STORAGE=network on a local disk: the same pragmas, the same single connection, the same workers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from service.config import Settings, SqliteStorage, load_settings
from service.db.storage import mount_of, parse_mountinfo, storage_mode
from tests.reliability.conftest import worker_pids
from tests.service.test_store import (
    test_concurrent_writers_lose_nothing,
    test_created_item_reads_back_for_its_owner_only,
    test_delete_is_owner_scoped,
    test_list_is_owner_scoped_stable_and_paginated,
    test_migrate_is_idempotent_and_safe_concurrently,
    test_update_changes_only_given_fields_and_never_another_owners,
)
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.service_process import ServiceProcess, production_env

# Shaped like App Service Linux's (/home from Azure Files over SMB), with a local overlay root.
APP_SERVICE_MOUNTINFO = (
    "22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
    "40 22 0:35 / /home rw,relatime - cifs //wawsprod.file.core.windows.net/site rw,vers=3.1.1\n"
    "41 40 0:36 / /home/local\\040cache rw - tmpfs tmpfs rw,size=1024k\n"
    "42 22 0:37 / /mnt/nfs rw - nfs4 10.0.0.4:/export rw\n"
    "this line is not mountinfo\n"
)


def test_app_service_home_is_detected_as_a_network_share() -> None:
    """A file under /home on App Service's mount table is on cifs: the network-share mode."""
    mode = storage_mode(
        Path("/home/data/backend-iac.sqlite3"), SqliteStorage.AUTO, mountinfo=APP_SERVICE_MOUNTINFO
    )
    assert mode.network
    assert (mode.journal_mode, mode.locking_mode) == ("delete", "exclusive")
    assert "cifs filesystem at /home" in mode.reason


def test_the_deepest_mount_wins_and_escaped_paths_are_read() -> None:
    """A local mount inside the share is local; NFS is network; the overlay root is local."""
    mounts = parse_mountinfo(APP_SERVICE_MOUNTINFO)
    assert len(mounts) == 4
    local_cache = mount_of(Path("/home/local cache/db.sqlite3"), mounts)
    assert local_cache is not None
    assert (local_cache.point, local_cache.fstype) == ("/home/local cache", "tmpfs")
    assert storage_mode(
        Path("/mnt/nfs/x.sqlite3"), SqliteStorage.AUTO, mountinfo=APP_SERVICE_MOUNTINFO
    ).network
    assert not storage_mode(
        Path("/srv/x.sqlite3"), SqliteStorage.AUTO, mountinfo=APP_SERVICE_MOUNTINFO
    ).network
    assert not storage_mode(Path("/home2/x"), SqliteStorage.AUTO, mountinfo=APP_SERVICE_MOUNTINFO).network


def test_this_machines_disk_is_local_and_the_setting_overrides_detection(tmp_path: Path) -> None:
    """Read from the real /proc/self/mountinfo, a temporary directory is local; the override wins both ways."""
    detected = storage_mode(tmp_path / "db.sqlite3", SqliteStorage.AUTO)
    assert not detected.network, detected
    assert detected.journal_mode == "wal"
    assert storage_mode(tmp_path / "x", SqliteStorage.NETWORK).network
    assert not storage_mode(Path("/home/x"), SqliteStorage.LOCAL, mountinfo=APP_SERVICE_MOUNTINFO).network


def test_sqlite_storage_is_validated_at_start_up() -> None:
    """A value other than auto, local or network is refused, naming the setting."""
    from service.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="SQLITE_STORAGE"):
        load_settings(sqlite_storage="smb")


# -- the store's specification, again, in the network-share mode --------------------------------------
for _imported in (
    test_concurrent_writers_lose_nothing,
    test_created_item_reads_back_for_its_owner_only,
    test_delete_is_owner_scoped,
    test_list_is_owner_scoped_stable_and_paginated,
    test_migrate_is_idempotent_and_safe_concurrently,
    test_update_changes_only_given_fields_and_never_another_owners,
):
    pytest.mark.anyio(_imported)  # test_store marks them module-wide; here each carries the mark itself


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Overrides the two-backend fixture: the imported store tests run once, on SQLite, as on a share."""
    return f"sqlite:///{tmp_path / 'share.sqlite3'}"


@pytest.fixture
def settings(database_url: str, issuer: LocalIssuer, tmp_path: Path) -> Settings:
    return load_settings(
        app_env="production",
        database_url=database_url,
        auth_issuer=issuer.url,
        auth_audience=AUDIENCE,
        sqlite_storage="network",
        build_info_path=tmp_path / "missing-build-info.json",
    )


@pytest.mark.anyio
async def test_network_mode_uses_the_rollback_journal_and_keeps_the_file_to_itself(
    settings: Settings, tmp_path: Path
) -> None:
    """No -wal or -shm file; journal_mode=delete; another process cannot write while the store is open."""
    from service.db.factory import open_store

    store = open_store(settings)
    await store.migrate()
    try:
        await store.create_item(owner="o", name="n", description=None)
        rows = await store._read("PRAGMA journal_mode", {})
        assert rows[0][0] == "delete"
        assert not (tmp_path / "share.sqlite3-wal").exists()
        assert not (tmp_path / "share.sqlite3-shm").exists()
        intruder = sqlite3.connect(settings.sqlite_path, timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            intruder.execute("INSERT INTO items VALUES ('x', 'o', 'n', NULL, 'now', 'now')")
        intruder.close()
    finally:
        await store.close()
    with sqlite3.connect(settings.sqlite_path) as after:  # closed: the lock is released
        assert after.execute("SELECT count(*) FROM items").fetchone()[0] == 1


@pytest.mark.slow
def test_under_gunicorn_the_network_mode_runs_one_worker_and_says_so(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    """WEB_CONCURRENCY=2 on a network share: one worker, the mode logged once, concurrent writes all 201."""
    env = production_env(issuer.url, AUDIENCE, tmp_path, SQLITE_STORAGE="network", LOG_LEVEL="INFO")
    with ServiceProcess(env, workers=2) as service:
        workers = worker_pids(service)  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {issuer.mint(subject='share-writer')}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client:
            statuses = [client.post("/api/v1/items", json={"name": f"n{n}"}).status_code for n in range(20)]
            listed = client.get("/api/v1/items", params={"limit": 100}).json()["items"]
        logs = service.logs()
    assert len(workers) == 1
    assert statuses == [201] * 20
    assert len(listed) == 20
    assert logs.count("SQLite journal_mode=delete locking_mode=exclusive (one worker process)") == 1, logs[
        -3000:
    ]
    assert "WEB_CONCURRENCY=2 lowered to 1" in logs
    database = tmp_path / "data" / "backend-iac.sqlite3"
    assert not database.with_name(database.name + "-wal").exists()
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 20
