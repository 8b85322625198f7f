"""The clean tree and the real repository."""

from __future__ import annotations

from pathlib import Path

from stack.doctor.command import diagnose
from tests.doctor.conftest import Tree


def test_clean_tree_has_no_findings(tree: Tree) -> None:
    """A tree whose workflows, stack and service agree produces no finding at all."""
    findings = tree.findings()
    assert findings == [], findings
