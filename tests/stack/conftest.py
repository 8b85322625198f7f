"""Fixtures for the stack tests: evaluate the real program for a stack file written on the fly."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend_iac.evaluate import Evaluation, evaluate_stack, stack_config_values
from backend_iac.evaluation_cache import EvaluationCache

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


def _stack_file_for(root: Path, overrides: dict[str, Any]) -> None:
    config = dict(BASE_CONFIG)
    config.update({(k if ":" in k else f"backend-iac:{k}"): v for k, v in overrides.items()})
    write_stack(root, "test", {key: value for key, value in config.items() if value is not None})


@pytest.fixture
def evaluate(tmp_path: Path, shared_evaluations: EvaluationCache) -> Evaluate:
    """Evaluate the program for BASE_CONFIG plus overrides (short keys get backend-iac:, None removes).

    Through the session's shared evaluation cache: the same config evaluated by another test is read
    back (what `evaluate_stack(tmp_path, "test", program=REPO)` would give; the cache's key covers it)."""

    def run(**overrides: Any) -> Evaluation:
        _stack_file_for(tmp_path, overrides)
        return shared_evaluations.evaluate_program(REPO, "test", stack_config_values(tmp_path, "test"))

    return run


@pytest.fixture
def evaluate_afresh(tmp_path: Path) -> Evaluate:
    """As `evaluate`, but every call runs the program under the mocks (for tests about evaluation itself)."""

    def run(**overrides: Any) -> Evaluation:
        _stack_file_for(tmp_path, overrides)
        return evaluate_stack(tmp_path, "test", program=REPO)

    return run
