"""The artifact as App Service receives it: built by `backend-iac package`, unpacked outside the
repository, its own requirements installed into a fresh virtual environment."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend_iac.package import uv_executable
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac, head_commit
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.service_process import ServiceProcess, production_env


@dataclass(frozen=True)
class Deployment:
    """An unpacked artifact and the virtual environment built from its own requirements.txt."""

    interpreter: str  # the Python the venv was built on
    zip_path: Path
    commit: str
    site: Path  # what App Service calls /home/site/wwwroot
    bin_dir: Path  # the fresh virtual environment's bin directory (Oryx's antenv)
    package_seconds: float
    install_seconds: float


def find_python(version: str) -> str | None:
    """An interpreter of this minor version on the machine (pyenv's, the system's), or None."""
    candidates = [
        *sorted(glob.glob(f"{Path.home()}/.pyenv/versions/{version}.*/bin/python{version}"), reverse=True),
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="session", params=["this-python", "3.12"])
def interpreter(request: pytest.FixtureRequest) -> str:
    """The Python the artifact's venv is built on: the suite's own, and App Service's 3.12."""
    if request.param == "this-python":
        return sys.executable
    found = find_python(request.param)
    if found is None:
        pytest.skip(f"Python {request.param} (App Service's runtime) is not installed on this machine")
    return found


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory, interpreter: str) -> Deployment:
    """Package the current commit, unzip it into a fresh directory, install its requirements fresh."""
    commit = head_commit()  # read once: other commits may land while the suite runs
    work = tmp_path_factory.mktemp("artifact")
    assert not work.resolve().is_relative_to(REPO_ROOT), "the artifact must run outside the repository"

    started = time.monotonic()
    packaged = backend_iac("package", "--ref", commit, "--output", str(work / "backend-iac.zip"))
    package_seconds = time.monotonic() - started
    assert packaged.returncode == 0, packaged.stderr
    zip_path = Path(packaged.stdout.strip().splitlines()[-1])

    site = work / "wwwroot"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(site)

    started = time.monotonic()
    venv = install_fresh_venv(site, work / "antenv", interpreter)
    install_seconds = time.monotonic() - started
    return Deployment(
        interpreter=interpreter,
        zip_path=zip_path,
        commit=commit,
        site=site,
        bin_dir=venv / "bin",
        package_seconds=package_seconds,
        install_seconds=install_seconds,
    )


def install_fresh_venv(site: Path, venv: Path, interpreter: str) -> Path:
    """A new virtualenv holding exactly the artifact's requirements.txt, as Oryx builds it on deploy."""
    uv_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    uv_env.pop("VIRTUAL_ENV", None)
    uv = uv_executable()
    subprocess.run(
        [uv, "venv", "--quiet", "--python", interpreter, str(venv)], env=uv_env, check=True, timeout=60
    )
    # --require-hashes: what pip does on App Service for a file whose lines carry hashes.
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--require-hashes",
         "-r", str(site / "requirements.txt")],
        env=uv_env, check=True, timeout=300, cwd=site,
    )  # fmt: skip
    return venv


def app_service_environment(issuer: LocalIssuer, home: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    """What the stack's app settings and the platform give the container (PORT comes from ServiceProcess).

    PATH holds the artifact's virtualenv and the system only: nothing from the repository's own .venv can
    stand in for a dependency the artifact lacks.
    """
    path = os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])
    return production_env(issuer.url, AUDIENCE, home, PATH=path, **extra)


@pytest.fixture
def artifact_service(deployment: Deployment, issuer: LocalIssuer, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The unpacked artifact under the exact start command, from its own directory and virtualenv."""
    home = tmp_path / "home"
    home.mkdir()
    process = ServiceProcess(
        env=app_service_environment(issuer, home, deployment.bin_dir),
        cwd=deployment.site,
        python_bin=deployment.bin_dir,
    )
    with process:
        yield process
