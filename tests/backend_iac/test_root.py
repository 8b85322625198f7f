"""`--root`: the tools evaluate that checkout's own program, or refuse a checkout they cannot evaluate."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from backend_iac.cli import main
from backend_iac.evaluate import evaluate_stack

REPO = Path(__file__).resolve().parents[2]
EXTRA = "second-checkout-only"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _copy_checkout(destination: Path) -> Path:
    """A second checkout: this repository's committed files, in a git repository of its own."""
    destination.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    # The working tree's program, so that the test follows uncommitted edits to it.
    shutil.rmtree(destination / "stack")
    shutil.copytree(REPO / "stack", destination / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", str(destination)], check=True)
    return destination


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second checkout whose program differs: its WebApp component declares one more resource, and its
    OIDC component gives every federated credential another audience."""
    root = _copy_checkout(tmp_path_factory.mktemp("second") / "checkout")
    _replace(
        root / "stack" / "components" / "web_app.py",
        "        self.register_outputs(",
        "        from pulumi_azure_native import resources as extra\n\n"
        f'        extra.ResourceGroup("{EXTRA}", opts=pulumi.ResourceOptions(parent=self))\n'
        "        self.register_outputs(",
    )
    _replace(
        root / "stack" / "components" / "github_oidc.py",
        "audiences=[TOKEN_EXCHANGE_AUDIENCE],",
        'audiences=["api://second-checkout"],',
    )
    return root


def test_plan_root_evaluates_that_checkouts_program(other: Path) -> None:
    """`plan --root OTHER` lists the resource only OTHER's component declares; this checkout's plan does not."""
    code, out, err = _run("plan", "--root", str(other), "--format", "json")
    assert code == 0, err
    names = [resource["name"] for resource in json.loads(out)["resources"]]
    assert EXTRA in names
    code, out, err = _run("plan", "--format", "json")
    assert code == 0, err
    assert EXTRA not in [resource["name"] for resource in json.loads(out)["resources"]]


def test_doctor_root_evaluates_that_checkouts_program(other: Path) -> None:
    """`doctor --root OTHER` sees OTHER's credentials (another audience); this checkout's doctor does not."""
    code, out, _ = _run("doctor", "--root", str(other), "--format", "json")
    codes = [finding["code"] for finding in json.loads(out)["findings"]]
    assert "oidc-credential-audience" in codes
    assert code == 1
    code, out, _ = _run("doctor", "--format", "json")
    assert "oidc-credential-audience" not in [f["code"] for f in json.loads(out)["findings"]]


def test_evaluating_another_checkout_leaves_this_process_as_it_was(other: Path) -> None:
    """After OTHER is evaluated, `stack` modules are this checkout's again, and so is the program."""
    import stack.components.web_app as before

    assert EXTRA in [r.name for r in evaluate_stack(other, "dev").resources]
    import stack.components.web_app as after

    assert after is before
    assert Path(after.__file__ or "").is_relative_to(REPO)
    assert EXTRA not in [r.name for r in evaluate_stack(REPO, "dev").resources]


def test_checkout_without_a_program_is_refused(tmp_path: Path) -> None:
    """No stack/__main__.py: plan and doctor exit 2 with a message, no traceback."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    code, out, err = _run("plan", "--root", str(tmp_path))
    assert code == 2
    assert "no stack/__main__.py" in err
    assert "Traceback" not in out + err
    code, _, err = _run("doctor", "--root", str(tmp_path))
    assert code == 2
    assert "stack/__main__.py" in err


def test_checkout_without_pulumi_yaml_is_refused(other: Path, tmp_path: Path) -> None:
    """No Pulumi.yaml: exit 2 naming the file."""
    shutil.copytree(other / "stack", tmp_path / "stack")
    code, _, err = _run("plan", "--root", str(tmp_path))
    assert code == 2
    assert "Pulumi.yaml: not found" in err


def test_checkout_whose_program_fails_is_refused(other: Path, tmp_path: Path) -> None:
    """A program that raises: plan exits 2 with the program's message and no traceback."""
    broken = tmp_path / "broken"
    shutil.copytree(other, broken)
    _replace(
        broken / "stack" / "program.py",
        '    """Declare every resource; return the stack outputs (nothing secret among them)."""',
        '    raise ValueError("broken on purpose")',
    )
    code, out, err = _run("plan", "--root", str(broken))
    assert code == 2, out
    assert "failed under Pulumi's mocks" in err
    assert "broken on purpose" in err
    assert "Traceback" not in err
