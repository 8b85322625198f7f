"""The artifact is an allow-list: a stray file committed under service/ stops the build, named."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from backend_iac.package import PackagingError, build
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac

# Secret-like files someone might commit next to the code; none is a module or a declared data file.
STRAY_FILES = (
    "service/.env",
    "service/x.pem",
    "service/id_rsa",
    "service/dump.sql",
    "service/local.settings.json",
    "service/db/.env.production",
)


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A fresh git repository holding this commit's service, pyproject.toml and uv.lock."""
    root = tmp_path / "repo"
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "HEAD", "service", "pyproject.toml", "uv.lock"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True, timeout=60)
    _git(root, "init", "--quiet")
    _git(root, "add", "-A")
    _git(root, "commit", "--quiet", "-m", "service")
    return root


def _commit(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    _git(root, "add", "--force", relative)  # --force: a .gitignore would not stop a determined commit
    _git(root, "commit", "--quiet", "-m", f"add {relative}")


def test_the_clean_repository_packages(repository: Path, tmp_path: Path) -> None:
    """Without stray files the same repository builds: what follows is refused for the file alone."""
    result = backend_iac("package", "--root", str(repository), "--output", str(tmp_path / "ok.zip"))
    assert result.returncode == 0, result.stderr
    names = zipfile.ZipFile(tmp_path / "ok.zip").namelist()
    assert all(name.endswith(".py") for name in names if name.startswith("service/"))


@pytest.mark.parametrize("stray", STRAY_FILES)
def test_a_committed_stray_file_fails_the_build_naming_it(
    repository: Path, tmp_path: Path, stray: str
) -> None:
    """Each stray file alone stops the build, named, and no zip is left behind."""
    _commit(repository, stray, "PASSWORD=hunter2\n")
    output = tmp_path / "stray.zip"
    with pytest.raises(PackagingError) as refused:
        build(root=repository, output=output)
    assert f"  {stray}" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert not output.exists()


def test_every_stray_file_is_named_at_once(repository: Path, tmp_path: Path) -> None:
    """`backend-iac package` names all of them in one run (a clean-up is one pass): exit 1, no traceback."""
    for stray in STRAY_FILES:
        _commit(repository, stray, "x\n")
    result = backend_iac("package", "--root", str(repository), "--output", str(tmp_path / "x.zip"))
    assert result.returncode == 1, result.stdout + result.stderr
    for stray in STRAY_FILES:
        assert f"  {stray}" in result.stderr, stray
    assert "looks like a secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.zip").exists()


def test_a_declared_data_file_ships(repository: Path, tmp_path: Path) -> None:
    """A non-Python file the service reads ships once pyproject.toml declares it."""
    _commit(repository, "service/templates/banner.txt", "hello\n")
    refused = backend_iac("package", "--root", str(repository), "--output", str(tmp_path / "a.zip"))
    assert refused.returncode == 1
    assert "service/templates/banner.txt" in refused.stderr
    pyproject = (repository / "pyproject.toml").read_text()
    _commit(
        repository,
        "pyproject.toml",
        pyproject + '\n[tool.backend-iac.package]\ndata-files = ["service/templates/banner.txt"]\n',
    )
    shipped = backend_iac("package", "--root", str(repository), "--output", str(tmp_path / "b.zip"))
    assert shipped.returncode == 0, shipped.stderr
    assert zipfile.ZipFile(tmp_path / "b.zip").read("service/templates/banner.txt") == b"hello\n"


def test_gitignore_keeps_secret_like_files_out() -> None:
    """.gitignore covers .env*, *.pem, *.key and id_* (git check-ignore agrees)."""
    for name in ("service/.env", "service/.env.local", "x.pem", "service/tls.key", "id_rsa", "id_ed25519"):
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "check-ignore", "--no-index", "-q", name], check=False, timeout=30
        )
        assert result.returncode == 0, f"{name} is not ignored"
