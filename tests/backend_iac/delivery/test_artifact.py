"""The local proof: the zip runs as App Service runs it, from a fresh directory and a fresh virtualenv."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.startup import STARTUP_COMMAND
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac
from tests.backend_iac.delivery.conftest import Deployment, app_service_environment, install_fresh_venv
from tests.support.issuer import LocalIssuer
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.slow


def test_artifact_carries_the_commit_it_was_built_from(deployment: Deployment) -> None:
    """build_info.json inside the unpacked artifact names the commit that was packaged."""
    info = json.loads((deployment.site / "build_info.json").read_text())
    assert info["commit"] == deployment.commit
    assert set(info) == {"commit", "version", "built_at"}


def test_artifact_runs_the_exact_startup_command_outside_the_repository(
    artifact_service: ServiceProcess, deployment: Deployment
) -> None:
    """The stack's start command, unchanged, serves from the unpacked zip with the fresh venv's gunicorn."""
    assert artifact_service.command == STARTUP_COMMAND
    assert artifact_service.cwd == deployment.site
    assert not deployment.site.resolve().is_relative_to(REPO_ROOT)
    version = httpx.get(f"{artifact_service.url}/version", timeout=5).json()
    assert version["commit"] == deployment.commit, version
    python = subprocess.run(
        [deployment.interpreter, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version["python"] == python, (version, deployment.interpreter)


def test_verify_passes_against_the_artifact(artifact_service: ServiceProcess, deployment: Deployment) -> None:
    """`backend-iac verify` exits 0 against the artifact, expecting the packaged commit."""
    started = time.monotonic()
    result = backend_iac(
        "verify", "--url", artifact_service.url, "--commit", deployment.commit, "--timeout", "30", timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout
    assert time.monotonic() - started < 30


def test_authenticated_item_round_trip_on_the_artifact(
    artifact_service: ServiceProcess, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """A caller with a token from the configured issuer creates an item and reads it back."""
    headers = {"Authorization": f"Bearer {issuer.mint(subject='artifact-user')}"}
    created = httpx.post(
        f"{artifact_service.url}/api/v1/items",
        json={"name": "from the artifact"},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    read = httpx.get(f"{artifact_service.url}{created.headers['location']}", headers=headers, timeout=10)
    assert read.status_code == 200, read.text
    assert read.json()["name"] == "from the artifact"


def test_production_default_database_lives_under_home(artifact_service: ServiceProcess) -> None:
    """With no DATABASE_URL, the embedded SQLite file is created under $HOME/data, as on App Service."""
    home = Path(artifact_service.env["HOME"])
    assert httpx.get(f"{artifact_service.url}/readyz", timeout=5).status_code == 200
    assert (home / "data" / "backend-iac.sqlite3").exists(), sorted(str(p) for p in home.rglob("*"))


def test_packaging_and_install_stay_fast(deployment: Deployment) -> None:
    """Packaging takes seconds, not minutes; the zip stays small (source and requirements only)."""
    print(
        f"\npackage: {deployment.package_seconds:.2f} s, {deployment.zip_path.stat().st_size} bytes; "
        f"fresh venv + install: {deployment.install_seconds:.2f} s"
    )
    assert deployment.package_seconds < 20
    assert deployment.zip_path.stat().st_size < 1_000_000


def without_requirement(requirements: str, name: str) -> str:
    """The requirements file minus one pinned entry (its line, hashes and `# via` comments)."""
    blocks = re.split(r"\n(?=\S)", requirements)
    kept = [block for block in blocks if not block.startswith(f"{name}==")]
    assert len(kept) == len(blocks) - 1, f"{name} is not pinned"
    return "\n".join(kept)


def test_a_missing_runtime_dependency_fails_here_before_azure(
    deployment: Deployment, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """The same proof with uvicorn-worker dropped from requirements.txt: the start command fails at once."""
    site = tmp_path / "wwwroot"
    shutil.copytree(deployment.site, site)
    requirements = site / "requirements.txt"
    requirements.write_text(without_requirement(requirements.read_text(), "uvicorn-worker"))
    venv = install_fresh_venv(site, tmp_path / "antenv", deployment.interpreter)
    env = app_service_environment(issuer, tmp_path, venv / "bin")
    service = ServiceProcess(env=env, cwd=site, python_bin=venv / "bin", workers=1)
    with pytest.raises(RuntimeError, match="exited"):
        service.start(timeout=30)
    assert "uvicorn_worker" in service.logs()
