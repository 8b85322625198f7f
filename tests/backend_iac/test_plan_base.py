"""`backend-iac plan --base REF`: what the working tree changes relative to a commit, and what it costs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from backend_iac.cli import main
from backend_iac.pricing import (
    ASSUMED_DNS_QUERIES_MILLIONS,
    HOURS_PER_MONTH,
    POSTGRES_HOURLY,
    POSTGRES_STORAGE_GB_MONTH,
    PRIVATE_DNS_QUERIES_PER_MILLION,
    PRIVATE_DNS_ZONE_MONTHLY,
)

REPO = Path(__file__).resolve().parents[2]
# With enablePostgres the server is private by default (postgresNetwork): its network comes with it,
# and no firewall rule.
POSTGRES_TYPES = {
    "azure-native:dbforpostgresql:Server",
    "azure-native:dbforpostgresql:Database",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:privatedns:PrivateZone",
    "azure-native:privatedns:VirtualNetworkLink",
}


def _git(root: Path, *argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *argv], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@pytest.fixture(scope="module")
def base_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this checkout's committed files (the working tree's stack/) in one commit."""
    root = tmp_path_factory.mktemp("base") / "repo"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    shutil.rmtree(root / "stack")
    shutil.copytree(REPO / "stack", root / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    return root


@pytest.fixture
def repository(base_repository: Path, tmp_path: Path) -> Path:
    """A private copy of the base repository, for one test to change."""
    copy = tmp_path / "repo"
    shutil.copytree(base_repository, copy)
    return copy


def _change(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "change")


def _diff(root: Path, base: str = "HEAD~1") -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", "--root", str(root), f"--base={base}", "--format", "json"])
    return code, (json.loads(out.getvalue()) if out.getvalue() else {}), err.getvalue()


def test_enabling_postgres_adds_the_server_and_its_cost(repository: Path) -> None:
    """A config change: the server, its database and its private network are added (no firewall rule); the
    delta is their price."""
    _change(repository, "Pulumi.dev.yaml", "config:\n", "config:\n  backend-iac:enablePostgres: true\n")
    code, diff, err = _diff(repository)
    assert code == 0, err
    assert set(diff) == {"base", "head", "added", "removed", "changed", "violations", "monthly_cost_usd"}
    added = {item["type"] for item in diff["added"]}
    assert added >= POSTGRES_TYPES
    assert "azure-native:dbforpostgresql:FirewallRule" not in added
    assert diff["removed"] == []
    web_app = next(c for c in diff["changed"] if c["type"] == "azure-native:web:WebApp")
    assert web_app["replace"] is False
    assert any(path.startswith("siteConfig.appSettings") for path in web_app["inputs"])
    expected = round(POSTGRES_HOURLY["Standard_B1ms"] * HOURS_PER_MONTH, 2) + round(
        32 * POSTGRES_STORAGE_GB_MONTH, 2
    )
    dns = PRIVATE_DNS_ZONE_MONTHLY + round(ASSUMED_DNS_QUERIES_MILLIONS * PRIVATE_DNS_QUERIES_PER_MILLION, 2)
    cost = diff["monthly_cost_usd"]
    assert cost["delta"] == pytest.approx(expected + dns, abs=0.011)
    assert cost["head"] == pytest.approx(cost["base"] + cost["delta"], abs=0.011)
    server = next(i for i in diff["added"] if i["type"] == "azure-native:dbforpostgresql:Server")
    assert server["monthly_usd"] == pytest.approx(expected, abs=0.011)


def test_a_component_code_change_is_an_update(repository: Path) -> None:
    """A code change in a component: exactly that input of the web app changes, in place."""
    _change(repository, "stack/components/web_app.py", "http20_enabled=True", "http20_enabled=False")
    code, diff, err = _diff(repository)
    assert code == 0, err
    assert diff["added"] == diff["removed"] == []
    assert diff["changed"] == [
        {
            "type": "azure-native:web:WebApp",
            "name": diff["changed"][0]["name"],
            "replace": False,
            "inputs": {"siteConfig.http20Enabled": {"old": True, "new": False}},
            "monthly_usd": 0.0,
        }
    ]
    assert diff["monthly_cost_usd"]["delta"] == 0.0


def test_a_new_location_is_a_replacement(repository: Path) -> None:
    """Moving the stack to another region: the resource group (and what sits in it) is replaced."""
    _change(
        repository,
        "Pulumi.dev.yaml",
        "azure-native:location: westeurope",
        "azure-native:location: northeurope",
    )
    code, diff, err = _diff(repository)
    assert code == 0, err
    group = next(c for c in diff["changed"] if c["type"] == "azure-native:resources:ResourceGroup")
    assert group["replace"] is True
    assert group["inputs"]["location"] == {"old": "westeurope", "new": "northeurope"}


def test_a_service_only_change_changes_no_resource(repository: Path) -> None:
    """A change that touches only the service: no resource changes, and the text says so in one line."""
    _change(
        repository,
        "service/main.py",
        '"""',
        '"""A comment only. ',
    )
    code, diff, err = _diff(repository)
    assert code == 0, err
    assert (diff["added"], diff["removed"], diff["changed"]) == ([], [], [])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", "--root", str(repository), "--base", "HEAD~1"]) == 0
    assert "No resource changes." in out.getvalue()


@pytest.mark.parametrize("ref", ["no-such-branch", "-x", "HEAD~5"])
def test_an_unknown_ref_exits_two(repository: Path, ref: str) -> None:
    """A ref git does not know: exit 2 with a message, no traceback."""
    code, _, err = _diff(repository, ref)
    assert code == 2
    assert "unknown base" in err
    assert "Traceback" not in err


def test_a_base_whose_program_fails_is_reported(repository: Path) -> None:
    """A base commit whose program raises: exit 2 naming the failure, not a traceback."""
    program = repository / "stack" / "program.py"
    good = program.read_text(encoding="utf-8")
    _change(
        repository,
        "stack/program.py",
        '    """Declare every resource; return the stack outputs (nothing secret among them)."""',
        '    raise ValueError("broken on purpose")',
    )
    program.write_text(good, encoding="utf-8")  # the working tree is fixed; HEAD is broken
    code, _, err = _diff(repository, "HEAD")
    assert code == 2
    assert "broken on purpose" in err
    assert "Traceback" not in err
