"""/version reports the build baked into the artifact, else APP_COMMIT_SHA, else "unknown"."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from service.config import load_settings
from service.main import create_app
from service.routes.version import checkout_commit, read_version_info

REPO = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_build_file_wins_over_the_environment(tmp_path: Path) -> None:
    """The commit written at packaging time is what /version reports."""
    build = tmp_path / "build_info.json"
    build.write_text(
        json.dumps({"commit": "deadbeef", "version": "1.2.3", "built_at": "2026-01-01T00:00:00Z"})
    )
    info = read_version_info(build_info_path=build, commit_env="from-env", started_at=NOW)
    assert (info.commit, info.version, info.started_at) == ("deadbeef", "1.2.3", NOW)


def test_environment_then_unknown(tmp_path: Path) -> None:
    """Without a build file: APP_COMMIT_SHA, and without that, "unknown"."""
    missing = tmp_path / "none.json"
    assert read_version_info(build_info_path=missing, commit_env="cafe", started_at=NOW).commit == "cafe"
    assert read_version_info(build_info_path=missing, commit_env=None, started_at=NOW).commit == "unknown"


def test_corrupt_build_file_counts_as_absent(tmp_path: Path) -> None:
    """A damaged build file does not break /version."""
    build = tmp_path / "build_info.json"
    build.write_text("{not json")
    assert read_version_info(build_info_path=build, commit_env="cafe", started_at=NOW).commit == "cafe"


def test_development_reports_the_checkouts_commit(tmp_path: Path) -> None:
    """In development (checkout=True) with no build file or APP_COMMIT_SHA, /version says git's HEAD."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    missing = tmp_path / "none.json"
    info = read_version_info(build_info_path=missing, commit_env=None, started_at=NOW, checkout=True)
    assert info.commit == head
    assert read_version_info(build_info_path=missing, commit_env=None, started_at=NOW).commit == "unknown"


def test_outside_a_checkout_the_commit_is_not_known(tmp_path: Path) -> None:
    """No git repository where it runs: no commit, no error."""
    assert checkout_commit(tmp_path) is None


def test_the_development_app_serves_the_checkouts_commit(tmp_path: Path) -> None:
    """`make serve` (development, no APP_COMMIT_SHA) answers /version with this checkout's commit."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    settings = load_settings(
        app_env="development",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        build_info_path=tmp_path / "none.json",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/version").json()["commit"] == head
