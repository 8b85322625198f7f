"""The evaluation cache: a repeat run prints exactly what the first printed without evaluating, and a change
to any input (config defaults, the stack file, the program, a service constant, the pack config, an
installed distribution, PULUMI_* variables) is evaluated afresh."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend_iac import evaluation_cache
from backend_iac.cli import main
from backend_iac.evaluate import Evaluation, evaluate_program, stack_config_values
from backend_iac.evaluation_cache import (
    CACHE_DIR_ENV,
    MAX_ENTRIES,
    EvaluationCache,
    default_directory,
    evaluation_key,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout of its own: the program, the service it reads, the config files, the pack config."""
    root = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("stack", "service"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    shutil.copytree(REPO / ".github" / "workflows", root / ".github" / "workflows")
    for relative in ("Pulumi.yaml", "Pulumi.dev.yaml", "pyproject.toml", "policy/config.json"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, root / relative)
    return root


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The checkouts the real evaluation ran for, in order (a spy: every call still evaluates)."""
    seen: list[Path] = []

    def spy(checkout: Path, stack: str, values: Any) -> Evaluation:
        seen.append(checkout)
        return evaluate_program(checkout, stack, values)

    monkeypatch.setattr(evaluation_cache, "evaluate_program", spy)
    return seen


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], checkout: Path) -> Run:
    """`backend-iac COMMAND --root <checkout> ARGS...`: exit code and stdout."""

    def invoke(command: str, *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([command, "--root", str(checkout), "--stack", "dev", *args])
        return code, capsys.readouterr().out

    return invoke


def canonical(evaluation: Evaluation) -> Evaluation:
    """The evaluation with its resources sorted: the mock engine's registration order varies from one
    evaluation to the next in one process (the program's coroutines interleave differently)."""
    ordered = tuple(sorted(evaluation.resources, key=lambda r: (r.type, r.name)))
    return dataclasses.replace(evaluation, resources=ordered)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_a_repeat_run_prints_the_same_without_evaluating(
    run: Run, evaluations: list[Path], output_format: str
) -> None:
    """plan and doctor print byte for byte what they printed the first time, from the cache."""
    first_plan = run("plan", "--format", output_format)
    first_doctor = run("doctor", "--format", output_format)
    assert len(evaluations) == 1  # the doctor found the plan's evaluation
    assert run("plan", "--format", output_format) == first_plan
    assert run("doctor", "--format", output_format) == first_doctor
    assert len(evaluations) == 1
    assert first_plan[0] == 0, first_plan[1]


def test_cached_evaluation_equals_a_fresh_one(checkout: Path, tmp_path: Path) -> None:
    """What the cache reads back is equal, field by field, to what the program declares."""
    cache = EvaluationCache(tmp_path / "cache")
    stored = cache.evaluate_stack(checkout, "dev")
    read_back = cache.evaluate_stack(checkout, "dev")
    fresh = evaluate_program(checkout, "dev", stack_config_values(checkout, "dev"))
    assert read_back == stored  # the very order too
    assert canonical(read_back) == canonical(fresh)
    assert read_back.config is not None
    assert read_back.config.github_branches == ("main",)


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        ("Pulumi.yaml", "    default: B1\n", "    default: B2\n", "App Service plan B2"),
        (
            "Pulumi.dev.yaml",
            "config:\n",
            "config:\n  backend-iac:instanceCount: 2\n",
            "(Linux) x 2",
        ),
        (
            "stack/program.py",
            "CONTAINER_START_TIME_LIMIT_SECONDS: Final = 600",
            "CONTAINER_START_TIME_LIMIT_SECONDS: Final = 599",
            "WEBSITES_CONTAINER_START_TIME_LIMIT=599",
        ),
        ("service/startup.py", "gunicorn --config", "gunicorn  --config", "gunicorn  --config"),
        ("policy/config.json", '"B1", ', "", "[sku-allowed]"),
    ],
    ids=["project-default", "stack-file", "program", "service-constant", "pack-config"],
)
def test_a_changed_input_is_evaluated_again(
    run: Run, evaluations: list[Path], checkout: Path, relative: str, old: str, new: str, expected: str
) -> None:
    """Each input the plan depends on, changed after a cached run, shows in the next plan."""
    code, before = run("plan")
    assert code == 0, before
    assert expected not in before
    edit(checkout / relative, old, new)
    _, after = run("plan")
    assert expected in after
    assert len(evaluations) == (1 if relative.startswith("policy/") else 2)


def test_an_installed_distribution_or_a_pulumi_variable_changes_the_key(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another version of any installed package, or another PULUMI_* variable, is another key."""
    values = stack_config_values(checkout, "dev")
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    base = evaluation_key(checkout, "dev", values)
    (site / "pulumi_example-1.0.0.dist-info").mkdir()
    with_one = evaluation_key(checkout, "dev", values)
    (site / "pulumi_example-1.0.0.dist-info").rename(site / "pulumi_example-1.0.1.dist-info")
    upgraded = evaluation_key(checkout, "dev", values)
    monkeypatch.setenv("PULUMI_EXAMPLE", "1")
    with_variable = evaluation_key(checkout, "dev", values)
    assert len({base, with_one, upgraded, with_variable}) == 4
    monkeypatch.delenv("PULUMI_EXAMPLE")
    assert evaluation_key(checkout, "dev", values) == upgraded


def test_a_corrupt_or_foreign_entry_is_a_miss(
    checkout: Path, tmp_path: Path, evaluations: list[Path]
) -> None:
    """Garbage, another key's entry or a wrong shape in an entry file: evaluated again, same answer."""
    cache = EvaluationCache(tmp_path / "cache")
    good = cache.evaluate_stack(checkout, "dev")
    (entry,) = cache.directory.glob("*.json")
    document = json.loads(entry.read_text(encoding="utf-8"))
    for broken in (
        "{not json",
        json.dumps({**document, "key": "0" * 64}),
        json.dumps({**document, "value": {"__dataclass__": "Path", "fields": {}}}),
        json.dumps({**document, "value": [1, 2]}),
    ):
        entry.write_text(broken, encoding="utf-8")
        assert canonical(cache.evaluate_stack(checkout, "dev")) == canonical(good)
    assert len(evaluations) == 5


def test_an_unwritable_cache_directory_is_no_cache(
    run: Run, evaluations: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BACKEND_IAC_CACHE_DIR naming a file: plan still works, evaluating every time."""
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    assert run("plan") == run("plan")
    assert len(evaluations) == 2


def test_a_value_json_cannot_carry_exactly_is_not_remembered(tmp_path: Path) -> None:
    """remember() returns such a value but writes nothing, and computes it again next time."""
    cache = EvaluationCache(tmp_path / "cache")
    calls: list[int] = []

    def compute() -> dict[Any, str]:
        calls.append(1)
        return {1: "an int key reads back as a string"}

    assert cache.remember("test", [b"x"], compute) == {1: "an int key reads back as a string"}
    assert cache.remember("test", [b"x"], compute) == {1: "an int key reads back as a string"}
    assert len(calls) == 2
    assert not cache.directory.exists() or not list(cache.directory.glob("*.json"))


def test_the_cache_keeps_at_most_max_entries(tmp_path: Path) -> None:
    """The least recently used entries go once there are more than MAX_ENTRIES."""
    cache = EvaluationCache(tmp_path / "cache")
    for index in range(MAX_ENTRIES + 5):
        assert cache.remember("test", [str(index).encode()], lambda i=index: [i]) == [index]
    assert len(list(cache.directory.glob("*.json"))) == MAX_ENTRIES


def test_the_directory_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BACKEND_IAC_CACHE_DIR, else an absolute XDG_CACHE_HOME, else ~/.cache: each /backend-iac."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "explicit"))
    assert default_directory() == tmp_path / "explicit"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "backend-iac"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_directory() == tmp_path / "home" / ".cache" / "backend-iac"
