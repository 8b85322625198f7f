"""/version reports the build baked into the artifact, else APP_COMMIT_SHA, else "unknown"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from service.routes.version import read_version_info

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
