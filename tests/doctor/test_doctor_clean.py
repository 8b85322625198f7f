"""The clean tree, and the real repository."""

from __future__ import annotations

from stack.doctor.command import diagnose
from tests.doctor.conftest import REPO, Tree


def test_clean_tree_has_no_findings(tree: Tree) -> None:
    """A tree whose workflows, stack and service agree produces no finding at all."""
    findings = tree.findings()
    assert findings == [], findings


def test_real_repository_has_no_error_findings() -> None:
    """The repository as committed: no error-level finding (warnings are allowed and listed)."""
    errors = [f for f in diagnose(REPO, "dev") if f.severity == "error"]
    assert errors == [], "\n".join(f"{f.code} {f.file}:{f.line} {f.message}" for f in errors)
