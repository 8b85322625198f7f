"""The command: exit codes, JSON and text forms, and `explain`."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from backend_iac.cli import main
from tests.backend_iac.doctor.conftest import Tree


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["doctor", *argv])
    return code, out.getvalue(), err.getvalue()


def test_clean_tree_exits_zero(tree: Tree) -> None:
    """No error-level finding: exit 0, and the text says so."""
    code, out, _ = _run("--root", str(tree.root))
    assert code == 0, out
    assert "no findings" in out


def test_errors_exit_one_with_json_findings(tree: Tree) -> None:
    """An error-level finding: exit 1; the JSON form carries every field of the schema."""
    tree.set_config(instanceCount=2, githubTags=["v1"])
    code, out, _ = _run("--root", str(tree.root), "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert list(document) == ["findings"]
    for finding in document["findings"]:
        assert set(finding) == {"code", "severity", "layer", "file", "line", "message", "fix"}
        assert finding["severity"] in ("error", "warning")
        assert finding["layer"] in ("identity", "pipeline", "runtime", "config")
        assert isinstance(finding["line"], int | None)
    # Most severe first: the runtime error's layer comes before the identity warning's.
    assert [f["code"] for f in document["findings"]] == [
        "sqlite-multiple-instances",
        "oidc-credential-unused",
    ]


def test_warnings_only_exit_zero(tree: Tree) -> None:
    """Warnings alone do not fail the command."""
    tree.set_config(githubTags=["v1"])
    code, out, _ = _run("--root", str(tree.root))
    assert code == 0
    assert "identity" in out
    assert "fix:" in out


def test_text_groups_by_layer_with_errors_first(tree: Tree) -> None:
    """Text: one heading per layer, the layer with an error before the layer with only a warning."""
    tree.set_config(instanceCount=2, githubTags=["v1"])
    code, out, _ = _run("--root", str(tree.root))
    assert code == 1
    lines = out.splitlines()
    assert lines.index("runtime") < lines.index("identity")
    assert "1 error, 1 warning" in out


def test_missing_stack_file_exits_two(tree: Tree) -> None:
    """An unreadable input: exit 2, naming the file."""
    code, _, err = _run("--root", str(tree.root), "--stack", "prod")
    assert code == 2
    assert "Pulumi.prod.yaml" in err


def test_malformed_stack_file_exits_two_with_line(tree: Tree) -> None:
    """Malformed YAML: exit 2 with file and line."""
    tree.write("Pulumi.dev.yaml", "config:\n  a: [b\n  c: d\n")
    code, _, err = _run("--root", str(tree.root))
    assert code == 2
    assert "Pulumi.dev.yaml:3" in err


@pytest.mark.parametrize(
    "code", ["AADSTS700016", "aadsts70021", "700211", "700212", "700213", "7002138", "700024"]
)
def test_explain_known_codes(tree: Tree, code: str) -> None:
    """Every code GitHub OIDC sign-ins are known to end in is explained."""
    status, out, _ = _run("--root", str(tree.root), "explain", code)
    assert status == 0
    assert out.startswith("AADSTS")
    assert "Usual causes:" in out
    assert "What to check on this stack:" in out


def test_explain_names_this_stacks_subjects(tree: Tree) -> None:
    """700213's explanation lists the subjects the evaluated stack declares."""
    _, out, _ = _run("--root", str(tree.root), "explain", "AADSTS700213")
    assert "repo:example-org/backend-iac:ref:refs/heads/main" in out
    assert "repo:example-org/backend-iac:pull_request" in out


def test_explain_700213_names_the_immutable_subject_format(tree: Tree) -> None:
    """700213 mentions GitHub's immutable-id subjects, githubSubjectPrefix, and the prefix when set."""
    _, out, _ = _run("--root", str(tree.root), "explain", "AADSTS700213")
    assert "immutable subject format" in out
    assert "githubSubjectPrefix" in out
    tree.set_config(githubSubjectPrefix="repo:example-org@1234/backend-iac@5678")
    _, out, _ = _run("--root", str(tree.root), "explain", "AADSTS700213")
    assert "repo:example-org@1234/backend-iac@5678:ref:refs/heads/main" in out
    assert "`repo:example-org@1234/backend-iac@5678:environment:<name>`" in out


def test_explain_unknown_code_exits_two(tree: Tree) -> None:
    """An unknown code: exit 2 and the list of known ones."""
    status, _, err = _run("--root", str(tree.root), "explain", "AADSTS1")
    assert status == 2
    assert "AADSTS700016" in err


def test_explain_without_a_code_is_a_usage_error() -> None:
    """`doctor explain` alone, or a stray word, is a usage error."""
    code, _, err = _run("explain")
    assert code == 2
    assert "usage: backend-iac doctor [options] explain CODE" in err
    assert _run("nonsense")[0] == 2


def test_explain_names_the_exact_subject_of_each_job(tree: Tree) -> None:
    """700213 lists, per job that signs in, the exact subject and who trusts it: `up` in production as
    the environment subject (not main's), the preview on pull_request only, destroy on main."""
    tree.set_config(githubEnvironments=["production"])
    tree.replace(
        ".github/workflows/deploy.yml",
        "  up:\n    if: github.ref == 'refs/heads/main'\n",
        "  up:\n    if: github.ref == 'refs/heads/main'\n    environment: production\n",
    )
    _, out, _ = _run("--root", str(tree.root), "explain", "AADSTS700213")
    lines = out.splitlines()

    def line_of(job: str) -> str:
        return next(line for line in lines if f"job `{job}`:" in line)

    assert "repo:example-org/backend-iac:environment:production on push, workflow_dispatch" in line_of("up")
    assert "deploy identity" in line_of("up")
    assert "repo:example-org/backend-iac:pull_request on pull_request" in line_of("preview")
    assert "Azure preview identity (Reader)" in line_of("preview")
    assert "repo:example-org/backend-iac:ref:refs/heads/main on workflow_dispatch" in line_of("destroy")
    assert "nothing broader" in out
