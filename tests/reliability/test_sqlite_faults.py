"""Outage-style faults on the embedded store, on a small tmpfs made for the test.

Disk full under the running service: writes answer 503 (never 500), reads and liveness stay 200, and the
service recovers by itself once space is freed, losing no acknowledged write. Read-only: a filesystem
with files open for writing cannot be remounted read-only (EBUSY; SQLite keeps its files open), so the
read-only case is the one a restart meets: the service refuses to start, naming DATABASE_URL, instead of
serving a database it cannot write."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer, production_env
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.reliability

FILESYSTEM_BYTES = 4 * 1024 * 1024
RECOVERY_SECONDS = 10.0


def _mount(*arguments: str) -> None:
    """mount(8) as root, or through passwordless sudo (CI runners); a failure names the command."""
    command = ["mount", *arguments] if os.geteuid() == 0 else ["sudo", "-n", "mount", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed (needs root or sudo): {result.stderr}"


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own: filling it or making it read-only touches nothing else."""
    point = tmp_path / "small"
    point.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={FILESYSTEM_BYTES},mode=0777", "tmpfs", str(point))
    try:
        yield point
    finally:
        umount = ["umount", "-l", str(point)]
        subprocess.run(
            umount if os.geteuid() == 0 else ["sudo", "-n", *umount],
            capture_output=True,
            timeout=30,
            check=False,
        )


def _fill(directory: Path) -> Path:
    """Write a filler file until the filesystem is full (bounded by its size)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as out:
        for _ in range(FILESYSTEM_BYTES // len(chunk) + 2):
            try:
                out.write(chunk)
                out.flush()
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    return filler


def _create(client: httpx.Client, name: str) -> tuple[int, str | None]:
    try:
        response = client.post("/api/v1/items", json={"name": name})
    except httpx.HTTPError:
        return 0, None
    return response.status_code, response.json().get("id") if response.status_code == 201 else None


def _until_created(client: httpx.Client, name: str) -> tuple[float, str | None]:
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_SECONDS:
        status, item_id = _create(client, name)
        if status == 201:
            return time.monotonic() - started, item_id
        time.sleep(0.1)
    return float("inf"), None


def test_disk_full_then_read_only_degrade_to_503_and_recover(
    start_service: ServiceFactory, small_filesystem: Path, issuer: LocalIssuer
) -> None:
    """Disk full: writes 503, reads and liveness 200; freed: writes again. Read-only: the same."""
    database = small_filesystem / "items.sqlite3"
    service = start_service(DATABASE_URL=f"sqlite:///{database}")
    acknowledged: set[str] = set()
    statuses: Counter[str] = Counter()
    with httpx.Client(
        base_url=service.url, headers=bearer(issuer.mint(subject="faults")), timeout=15
    ) as client:
        for n in range(5):
            status, item_id = _create(client, f"before {n}")
            assert status == 201
            acknowledged.add(str(item_id))
        known = next(iter(acknowledged))

        filler = _fill(small_filesystem)
        full = [_create(client, f"while full {n}") for n in range(5)]
        statuses.update(f"full_POST_{status}" for status, _ in full)
        statuses[f"full_GET_{client.get(f'/api/v1/items/{known}').status_code}"] += 1
        statuses[f"full_healthz_{httpx.get(f'{service.url}/healthz').status_code}"] += 1
        filler.unlink()
        full_recovery_s, item_id = _until_created(client, "after full")
        acknowledged.add(str(item_id))

    service.terminate()
    with closing(sqlite3.connect(database)) as db:  # closed: a file left open would keep the mount busy
        stored = {row[0] for row in db.execute("SELECT id FROM items")}

    _mount("-o", "remount,ro", str(small_filesystem))
    try:
        refused = ServiceProcess(
            production_env(issuer, small_filesystem.parent, DATABASE_URL=f"sqlite:///{database}")
        )
        refused.start(wait=False)
        assert refused.process is not None
        exit_code = refused.process.wait(timeout=60)
    finally:
        _mount("-o", "remount,rw", str(small_filesystem))
    report(
        "sqlite-faults",
        by_status=dict(statuses),
        full_recovery_s=full_recovery_s,
        read_only_exit_code=exit_code,
        acknowledged=len(acknowledged),
        lost=len(acknowledged - stored),
    )
    assert [status for status, _ in full] == [503] * 5, full
    assert statuses["full_GET_200"] == 1, statuses
    assert statuses["full_healthz_200"] == 1, statuses
    assert full_recovery_s < RECOVERY_SECONDS
    assert acknowledged <= stored
    assert '"status": 500' not in service.logs()
    assert exit_code == 3, refused.logs()[-2000:]
    assert "start-up refused: DATABASE_URL" in refused.logs()
    assert str(database) in refused.logs()
