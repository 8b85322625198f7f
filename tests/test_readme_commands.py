"""The README's commands, as a new user pastes them into a fresh clone (PATH without uv)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend_iac.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh clone of this repository's HEAD, as `git clone` gives a new user."""
    target = tmp_path_factory.mktemp("first-hour") / "backend-iac"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    yield target
    shutil.rmtree(target, ignore_errors=True)


def _user_env() -> dict[str, str]:
    """A shell whose PATH does not find uv (make installs it under ~/.local/bin, off most PATHs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.pop("NO_COLOR", None)
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=_user_env(), capture_output=True, text=True, timeout=300, check=False
    )


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(("make ", "./backend-iac ", "TOKEN=$(make"))]


def test_make_help_lists_every_target(clone: Path) -> None:
    """Every target the Makefile defines appears in `make help`, with what it does."""
    makefile = (clone / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    result = _run(["make", "help"], clone)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^make (\S+)", result.stdout, flags=re.M))
    assert targets <= listed, targets - listed


def test_make_token_prints_only_the_token(clone: Path) -> None:
    """`TOKEN=$(make -s token)` captures exactly one line: a JWT, nothing of uv's sync chatter."""
    result = _run(["make", "-s", "token"], clone)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", lines[0])


def test_make_serve_honours_app_env_and_names_every_bad_setting(clone: Path) -> None:
    """`APP_ENV=production make serve` runs in production (so it asks for the auth settings), and a worker
    count gunicorn would crash on is named with them: exit 3 from the recipe, no traceback, nothing served."""
    env = _user_env() | {"APP_ENV": "production", "WEB_CONCURRENCY": "two"}
    result = subprocess.run(
        ["make", "-s", "serve"], cwd=clone, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode != 0
    assert "Error 3" in result.stderr, result.stderr
    for name in ("AUTH_ISSUER", "AUTH_AUDIENCE", "WEB_CONCURRENCY"):
        assert name in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_the_cli_runs_as_pasted_without_uv_on_path(clone: Path, tmp_path: Path) -> None:
    """`./backend-iac ...` works in a fresh clone whose PATH has no uv, from the clone and from elsewhere."""
    version = _run(["./backend-iac", "--version"], clone)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("backend-iac ")
    elsewhere = _run([str(clone / "backend-iac"), "plan", "--stack", "dev", "--format", "json"], tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_every_command_in_the_readme_names_a_real_target_or_command() -> None:
    """What the README tells a user to type exists: each make target, each backend-iac command."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    commands = _readme_commands()
    assert any(c.startswith("make serve") for c in commands)
    assert any(c.startswith("make test") for c in commands)
    for command in commands:
        if command.startswith("./backend-iac "):
            assert command.split()[1] in COMMANDS, command
        else:
            target = re.search(r"make (?:-s )?([a-z-]+)", command)
            assert target is not None, command
            assert target.group(1) in targets, command
