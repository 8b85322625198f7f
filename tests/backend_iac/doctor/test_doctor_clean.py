"""The clean tree, and the real repository."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backend_iac.doctor.command import diagnose
from tests.backend_iac.doctor.conftest import REPO, Tree


def test_clean_tree_has_no_findings(tree: Tree) -> None:
    """A tree whose workflows, stack and service agree produces no finding at all."""
    findings = tree.findings()
    assert findings == [], findings


def test_real_repository_has_no_error_findings() -> None:
    """The repository as committed: no error-level finding (warnings are allowed and listed)."""
    errors = [f for f in diagnose(REPO, "dev") if f.severity == "error"]
    assert errors == [], "\n".join(f"{f.code} {f.file}:{f.line} {f.message}" for f in errors)


@pytest.mark.slow
def test_console_script_on_the_real_repository() -> None:
    """`backend-iac doctor --format json` as CI runs it: exit 0 and a findings document."""
    result = subprocess.run(
        [sys.executable, "-m", "backend_iac.cli", "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "findings" in json.loads(result.stdout)
