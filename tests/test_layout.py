"""The shape of the house: no import circle among our packages, and Pulumi's main folder holds only the program."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "stack", "backend_iac", "policy")

# What the Pulumi program may import: the standard library, Pulumi and its providers, its own modules,
# and the service's leaf module of shared names (the start command, the health path).
PROGRAM_MAY_IMPORT = frozenset(
    {"pulumi", "pulumi_azure_native", "pulumi_azuread", "pulumi_random", "stack", "service.startup"}
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _imported(path: Path) -> Iterator[str]:
    """Every module a file imports, at the top or inside a function (a lazy import still ties the two)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Our module -> our modules it imports (a `from package import name` counts when name is a module)."""
    modules = _modules()
    return {
        name: {target for target in _imported(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it; None when the graph has none."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    """No module of service, stack, backend_iac or policy imports itself back, even through lazy imports."""
    graph = import_graph()
    assert "service.db.postgres" in graph  # the walk sees the modules
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check itself: a two-module circle is found, with its path."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_service_imports_nothing_of_the_infrastructure() -> None:
    """The artifact stays small: service imports neither stack, the tools, the policy pack nor Pulumi."""
    for name, path in _modules().items():
        if name.partition(".")[0] == "service":
            foreign = {
                m
                for m in _imported(path)
                if m.partition(".")[0] in {"stack", "backend_iac", "policy", "pulumi"}
            }
            assert not foreign, f"{name} imports {sorted(foreign)}"


def test_pulumis_main_folder_holds_only_the_program() -> None:
    """Pulumi runs stack/ (Pulumi.yaml `main`); every module there is part of the program that
    `stack/__main__.py` imports, and imports only Pulumi, the standard library, its own modules and the
    service's leaf of shared names: no YAML parsing, no offline tool, no policy pack."""
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["main"].rstrip("/") == "stack"
    graph = import_graph()
    modules = _modules()
    program = {name for name in modules if name == "stack" or name.startswith("stack.")}
    for name in sorted(program):
        for imported in _imported(modules[name]):
            top = imported.partition(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top == "__future__"
                or imported in PROGRAM_MAY_IMPORT
                or top in PROGRAM_MAY_IMPORT
                or any(imported.startswith(f"{allowed}.") for allowed in PROGRAM_MAY_IMPORT)
            )
            assert allowed, f"{name} imports {imported}: stack/ is the Pulumi program only"
    reached: set[str] = set()
    pending = ["stack.__main__"]
    while pending:
        module = pending.pop()
        if module not in reached:
            reached.add(module)
            pending.extend(graph[module])
    packages = {name for name in program if modules[name].name == "__init__.py"}
    assert program - packages - reached == set(), "modules in stack/ that the program never imports"
