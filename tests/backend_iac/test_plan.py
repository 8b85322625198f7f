"""`backend-iac plan`: resources, policy verdict and estimated cost offline; exit 0, 1 or 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend_iac.cli import main
from backend_iac.pricing import APP_SERVICE_HOURLY, HOURS_PER_MONTH
from tests.stack.conftest import BASE_CONFIG, REPO, write_stack


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stack_root(tmp_path: Path, **overrides: Any) -> Path:
    config = {**BASE_CONFIG, **{f"backend-iac:{key}": value for key, value in overrides.items()}}
    write_stack(tmp_path, "check", config)
    # `--root` is a checkout: its own program runs (a copy of this one's).
    shutil.copytree(REPO / "stack", tmp_path / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_dev_plan_prints_resources_verdict_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """The dev stack's text plan lists the web app, passes the pack and prices B1 as an estimate; exit 0."""
    code, out, _ = plan(capsys, "--stack", "dev", "--root", str(REPO))
    assert code == 0, out
    assert "azure-native:web:WebApp  app-site" in out
    assert "repo:example-org/backend-iac:ref:refs/heads/main" in out
    assert "passed, no violations" in out
    assert "Monthly cost estimate: $12.41 USD" in out
    assert out.count("estimate") == 2  # the total line and the note naming the price source, once each
    assert "prices as of" in out


def test_json_plan_has_resources_violations_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON form: resources with type, name and inputs; violations; monthly_cost_usd as a number."""
    code, out, _ = plan(capsys, "--stack", "dev", "--root", str(REPO), "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert {"resources", "violations", "monthly_cost_usd"} <= set(report)
    assert report["violations"] == []
    assert report["monthly_cost_usd"] == round(APP_SERVICE_HOURLY["B1"] * HOURS_PER_MONTH, 2)
    assert all(set(resource) == {"type", "name", "inputs"} for resource in report["resources"])
    plan_inputs = next(
        r["inputs"] for r in report["resources"] if r["type"] == "azure-native:web:AppServicePlan"
    )
    assert plan_inputs["sku"]["capacity"] == 1


def test_cost_counts_instances_and_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two B2 instances, Postgres B1ms and 32 GB, and the private network (DNS zone, queries; the rest free)."""
    root = stack_root(tmp_path, appServiceSku="B2", instanceCount=2, enablePostgres=True)
    code, out, _ = plan(capsys, "--stack", "check", "--root", str(root), "--format", "json")
    report = json.loads(out)
    assert code == 0, report["violations"]
    descriptions = [item["description"] for item in report["estimate"]["items"]]
    assert sorted(descriptions) == [
        "App Service plan B2 (Linux) x 2",
        "Log Analytics ingestion at the 0.1 GB/day cap (3.04 GB/month at most, 5 GB free)",
        "PostgreSQL Flexible Server Standard_B1ms",
        "PostgreSQL storage 32 GB",
        "Private DNS queries, up to 1 million ($0.40 per million)",
        "Private DNS zone backend-iac-check.private.postgres.database.azure.com",
        "Private DNS zone link network-postgres-dns-link: free",
        "Subnet network-app-subnet: free",
        "Subnet network-postgres-subnet: free",
        "Virtual network network-vnet: free",
    ]
    assert report["monthly_cost_usd"] == round(sum(i["monthly_usd"] for i in report["estimate"]["items"]), 2)


def test_secrets_never_appear_in_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In password mode the generated password and the URL holding it print as [secret], text and JSON."""
    root = stack_root(tmp_path, enablePostgres=True, postgresAuth="password")
    for output_format in ("json", "text"):
        code, out, _ = plan(capsys, "--stack", "check", "--root", str(root), "--format", output_format)
        assert code == 0
        assert "mock" + "x" * 28 not in out
        assert "[secret]" in out


def test_policy_violation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SKU the pack's config file (policy/config.json) refuses makes the plan exit 1 and name the policy."""
    root = stack_root(tmp_path, appServiceSku="S1")
    code, out, _ = plan(capsys, "--stack", "check", "--root", str(root))
    assert code == 0, out
    (root / "policy").mkdir()
    (root / "policy" / "config.json").write_text('{"sku-allowed": {"allowedPlanSkus": ["B1"]}}')
    code, out, _ = plan(capsys, "--stack", "check", "--root", str(root))
    assert code == 1
    assert "[sku-allowed]" in out
    assert "policy/config.json" in out


def test_invalid_pack_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable policy/config.json is a configuration error (exit 2) naming the file, not a traceback."""
    root = stack_root(tmp_path)
    (root / "policy").mkdir()
    (root / "policy" / "config.json").write_text("{not json")
    code, out, err = plan(capsys, "--stack", "check", "--root", str(root))
    assert code == 2
    assert out == ""
    assert "policy/config.json" in err


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad repository and an unknown SKU exit 2 with both keys named on stderr, nothing on stdout."""
    root = stack_root(tmp_path, githubRepository="nope", appServiceSku="X9")
    code, out, err = plan(capsys, "--stack", "check", "--root", str(root))
    assert code == 2
    assert out == ""
    assert "backend-iac:githubRepository" in err
    assert "backend-iac:appServiceSku" in err


def test_missing_stack_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown stack name exits 2 and says which file is missing."""
    code, _, err = plan(capsys, "--stack", "nosuchstack", "--root", str(REPO))
    assert code == 2
    assert "Pulumi.nosuchstack.yaml: not found" in err


def test_unreadable_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack file that is not YAML exits 2."""
    write_stack(tmp_path, "check", BASE_CONFIG)
    (tmp_path / "Pulumi.check.yaml").write_text("config: [unclosed", encoding="utf-8")
    code, _, err = plan(capsys, "--stack", "check", "--root", str(tmp_path))
    assert code == 2
    assert "unreadable" in err


def test_console_script_reports_bad_config_without_a_traceback(tmp_path: Path) -> None:
    """The installed `backend-iac plan` exits 2 on bad config with a message, not a traceback."""
    root = stack_root(tmp_path, pythonVersion="3.9")
    result = subprocess.run(
        [sys.executable, "-m", "backend_iac.cli", "plan", "--stack", "check", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "backend-iac:pythonVersion" in result.stderr
    assert "Traceback" not in result.stderr
