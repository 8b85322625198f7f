"""What code is running: the build information baked into the artifact, else APP_COMMIT_SHA."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

from fastapi import APIRouter, Request

from service.schemas import VersionInfo
from service.startup import BUILD_INFO_FILE

router = APIRouter(tags=["health"])


def default_build_info_path() -> Path:
    return Path(__file__).resolve().parents[2] / BUILD_INFO_FILE


def checkout_commit(directory: Path | None = None) -> str | None:
    """The commit checked out where the service runs from (development only: the artifact has no .git).

    Bounded (2 s) and quiet: no git, no checkout or a hung git all mean "not known".
    """
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],  # noqa: S607 - git from PATH, fixed args
            cwd=directory or Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def read_version_info(
    *,
    build_info_path: Path,
    commit_env: str | None,
    started_at: datetime,
    checkout: bool = False,
) -> VersionInfo:
    """Build file first, then APP_COMMIT_SHA, then (with `checkout`, in development) the git checkout's
    HEAD, then "unknown"; an unreadable file counts as absent."""
    build: dict[str, object] = {}
    try:
        loaded = json.loads(build_info_path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            build = loaded
    except (OSError, ValueError):
        pass
    commit = build.get("commit") if isinstance(build.get("commit"), str) else None
    version = build.get("version") if isinstance(build.get("version"), str) else None
    if version is None:
        try:
            version = metadata.version("backend-iac")
        except metadata.PackageNotFoundError:
            version = "unknown"
    return VersionInfo(
        version=str(version),
        commit=str(commit or commit_env or (checkout_commit() if checkout else None) or "unknown"),
        python=platform.python_version(),
        started_at=started_at,
    )


@router.get("/version", summary="The running build: version, commit, Python, start time")
@router.head("/version", summary="The running build, headers only", operation_id="version_head")
async def version(request: Request) -> VersionInfo:
    info: VersionInfo = request.app.state.version_info
    return info
