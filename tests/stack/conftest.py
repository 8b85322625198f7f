"""Fixtures for the stack tests: evaluate the real program for a stack file written on the fly."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend_iac.evaluate import Evaluation, evaluate_stack

REPO = Path(__file__).resolve().parents[2]

BASE_CONFIG: dict[str, Any] = {
    "azure-native:location": "westeurope",
    "backend-iac:githubRepository": "Example-Org/backend-iac",
}

Evaluate = Callable[..., Evaluation]


@pytest.fixture(autouse=True)
def current_event_loop() -> None:
    """`@pulumi.runtime.test` runs on asyncio's current loop; an earlier asyncio.run() leaves none set."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def write_stack(root: Path, name: str, config: dict[str, Any]) -> Path:
    """A repository root holding the real Pulumi.yaml and a Pulumi.<name>.yaml with `config`."""
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    path = root / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    return path


@pytest.fixture
def evaluate(tmp_path: Path) -> Evaluate:
    """Evaluate the program for BASE_CONFIG plus overrides (short keys get backend-iac:, None removes)."""

    def run(**overrides: Any) -> Evaluation:
        config = dict(BASE_CONFIG)
        config.update({(k if ":" in k else f"backend-iac:{k}"): v for k, v in overrides.items()})
        config = {key: value for key, value in config.items() if value is not None}
        write_stack(tmp_path, "test", config)
        return evaluate_stack(tmp_path, "test", program=REPO)

    return run
