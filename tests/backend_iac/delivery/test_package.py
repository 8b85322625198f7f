"""`backend-iac package`: same commit, same bytes; service code, pinned runtime requirements, build info."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend_iac.package import Artifact, build, requirement_names
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac, head_commit

ALLOWED_TOP_LEVEL = {"service", "requirements.txt", "build_info.json"}
NEVER_SHIPPED = ("tests/", "stack/", "policy/", "backend_iac/", "bench/", ".github/", "Pulumi")
NOT_RUNTIME = {
    "pulumi",
    "pulumi-azure-native",
    "pulumi-policy",
    "pytest",
    "ruff",
    "mypy",
    "schemathesis",
    "zizmor",
}


@pytest.fixture(scope="module")
def commit() -> str:
    return head_commit()


@pytest.fixture(scope="module")
def artifact(commit: str, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return build(root=REPO_ROOT, output=tmp_path_factory.mktemp("package") / "a.zip", ref=commit)


def test_same_commit_gives_identical_bytes(artifact: Artifact, commit: str, tmp_path: Path) -> None:
    """Building the same commit again, later, gives a byte-identical zip."""
    again = build(root=REPO_ROOT, output=tmp_path / "b.zip", ref=commit)
    assert again.path.read_bytes() == artifact.path.read_bytes()


def test_same_commit_in_another_clone_gives_identical_bytes(
    artifact: Artifact, commit: str, tmp_path: Path
) -> None:
    """A different checkout (other path, other file times, no work tree at all) gives the same bytes."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO_ROOT), str(clone)], check=True)
    elsewhere = build(root=clone, output=tmp_path / "c.zip", ref=commit)
    assert elsewhere.path.read_bytes() == artifact.path.read_bytes()


def test_contents_are_service_code_requirements_and_build_info_only(artifact: Artifact) -> None:
    """No tests, no stack, no policy, no dev tooling, no caches: only what App Service runs."""
    names = zipfile.ZipFile(artifact.path).namelist()
    assert {name.split("/", 1)[0] for name in names} == ALLOWED_TOP_LEVEL
    assert not [name for name in names if name.startswith(NEVER_SHIPPED) or "/tests/" in name]
    assert not [name for name in names if name.endswith((".pyc", ".sqlite3")) or "__pycache__" in name]
    assert {"service/main.py", "service/gunicorn_conf.py", "service/startup.py"} <= set(names)
    assert names == sorted(names)


def test_entries_have_fixed_times_and_permissions(artifact: Artifact) -> None:
    """Every entry carries the commit time and mode 0644, whatever the checkout's clock and umask."""
    when = datetime.fromisoformat(artifact.built_at).astimezone(UTC)
    expected = (
        when.year,
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second // 2 * 2,
    )  # 2 s resolution
    for entry in zipfile.ZipFile(artifact.path).infolist():
        assert entry.date_time == expected, entry.filename
        assert entry.external_attr >> 16 == 0o100644, entry.filename


def test_build_info_records_commit_version_and_commit_time(artifact: Artifact, commit: str) -> None:
    """build_info.json holds the commit, the project version and the commit time (not the clock)."""
    info = json.loads(zipfile.ZipFile(artifact.path).read("build_info.json"))
    commit_time = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", "-s", "--format=%cI", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert info == {"commit": commit, "version": info["version"], "built_at": commit_time}
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["version"])


def test_requirements_are_pinned_hashed_and_runtime_only(artifact: Artifact) -> None:
    """Every requirement is pinned with == and hashed; nothing from Pulumi or the dev tooling."""
    text = zipfile.ZipFile(artifact.path).read("requirements.txt").decode()
    lines = [line for line in text.splitlines() if line and not line.lstrip().startswith(("#", "--hash"))]
    assert lines, text
    for line in lines:
        assert re.match(r"^[A-Za-z0-9._-]+(\[[^\]]*\])?==\S+", line), line
    assert text.count("--hash=sha256:") >= len(lines)
    names = requirement_names(text)
    assert not names & NOT_RUNTIME
    assert {"fastapi", "gunicorn", "uvicorn-worker", "psycopg", "pyjwt"} <= names


def test_cli_prints_the_zip_path_on_its_last_line(commit: str, tmp_path: Path) -> None:
    """`backend-iac package --output PATH` exits 0 and ends its output with the zip's path."""
    result = backend_iac("package", "--ref", commit, "--output", str(tmp_path / "out.zip"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str((tmp_path / "out.zip").resolve())
    assert zipfile.ZipFile(tmp_path / "out.zip").testzip() is None


def test_unknown_commit_is_refused_with_a_reason(tmp_path: Path) -> None:
    """An unknown ref exits 1 with git's reason, and leaves no zip behind."""
    result = backend_iac("package", "--ref", "no-such-ref", "--output", str(tmp_path / "x.zip"))
    assert result.returncode == 1
    assert "no-such-ref" in result.stderr
    assert not (tmp_path / "x.zip").exists()
