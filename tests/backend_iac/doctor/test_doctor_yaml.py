"""The workflow YAML shapes real repositories use: `on` forms, permissions levels, reusable workflows."""

from __future__ import annotations

import pytest

from backend_iac.doctor.workflows import presented_subjects, read_workflow
from tests.backend_iac.doctor.conftest import SHA, Tree, of, only

REPO = "example-org/backend-iac"
LOGIN_STEP = f"""\
      - uses: azure/login@{SHA}
        with:
          client-id: ${{{{ vars.AZURE_CLIENT_ID }}}}
          tenant-id: ${{{{ vars.AZURE_TENANT_ID }}}}
          subscription-id: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
"""


def _login_workflow(on: str) -> str:
    return f"""\
name: extra
{on}
permissions:
  id-token: write
  contents: read
jobs:
  sign-in:
    runs-on: ubuntu-24.04
    steps:
{LOGIN_STEP}"""


@pytest.mark.parametrize(
    ("on", "subject"),
    [
        ("on: push", "ref:refs/heads/**"),  # a string: every branch
        ("on: [push, workflow_dispatch]", "ref:refs/heads/**"),  # a list
        ('"on":\n  push:\n    branches: [develop]', "ref:refs/heads/develop"),  # a quoted key
        ("on:\n  push:\n    branches: [develop]", "ref:refs/heads/develop"),  # YAML 1.1 reads `on` as True
    ],
)
def test_on_as_string_list_or_map(tree: Tree, on: str, subject: str) -> None:
    """Every form of `on:` yields the trigger's subject (here one the stack does not trust)."""
    tree.workflow("extra.yml", _login_workflow(on))
    findings = [f for f in tree.findings() if f.file == ".github/workflows/extra.yml"]
    assert findings, "the extra workflow's sign-in was not seen"
    assert any(subject in f.message for f in findings), [f.message for f in findings]
    # The extra job is also not gated on the branch (pipeline); the subject is the identity layer's finding.
    assert {f.layer for f in findings if f.code != "deploy-ungated"} == {"identity"}


def test_bare_on_key_is_read_as_true_by_yaml_11(tree: Tree) -> None:
    """PyYAML reads a bare `on:` key as the boolean True; the doctor still finds the triggers."""
    path = tree.root / ".github/workflows/deploy.yml"
    workflow = read_workflow(tree.root, path)
    assert True in workflow.raw
    assert set(workflow.triggers) == {"push", "workflow_dispatch"}
    assert workflow.triggers_line == 2


def _reusable(tree: Tree, *, caller_permissions: str, branches: str = "[main]", gate: str = "main") -> None:
    tree.workflow(
        "_sign_in.yml",
        f"""\
name: reusable sign-in
on:
  workflow_call:
jobs:
  sign-in:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    steps:
{LOGIN_STEP}""",
    )
    tree.workflow(
        "caller.yml",
        f"""\
name: caller
on:
  push:
    branches: {branches}
permissions: {{}}
jobs:
  call:
    if: github.ref == 'refs/heads/{gate}'
{caller_permissions}    uses: ./.github/workflows/_sign_in.yml
""",
    )


def test_reusable_workflow_runs_in_the_callers_context(tree: Tree) -> None:
    """A called workflow's sign-in presents the caller's ref; with id-token granted by the caller, all is well."""
    _reusable(tree, caller_permissions="    permissions:\n      contents: read\n      id-token: write\n")
    assert tree.findings() == []


def test_reusable_workflow_caller_must_grant_id_token(tree: Tree) -> None:
    """The caller job must grant id-token: the called job cannot have more than its caller."""
    _reusable(tree, caller_permissions="    permissions:\n      contents: read\n")
    finding = only(tree.findings())
    assert (finding.code, finding.file) == ("id-token-missing", ".github/workflows/caller.yml")
    assert "calling job `call`" in finding.message


def test_reusable_workflow_subject_follows_the_callers_trigger(tree: Tree) -> None:
    """The caller's push to develop is the subject of the called job's sign-in."""
    _reusable(
        tree,
        caller_permissions="    permissions:\n      contents: read\n      id-token: write\n",
        branches="[develop]",
        gate="develop",
    )
    finding = only(of(tree.findings(), "oidc-subject-unmatched"))
    assert finding.file == ".github/workflows/_sign_in.yml"
    assert "refs/heads/develop" in finding.message
    assert "called from .github/workflows/caller.yml job `call`" in finding.message


def test_malformed_workflow_names_file_and_line(tree: Tree) -> None:
    """Malformed YAML is an input error with the file and the line."""
    from backend_iac.doctor.findings import DoctorInputError

    tree.workflow("broken.yml", "name: broken\non: [push\njobs: {}\n")
    with pytest.raises(DoctorInputError) as raised:
        tree.findings()
    assert raised.value.file == ".github/workflows/broken.yml"
    assert raised.value.line == 3


def test_subjects_for_each_trigger_kind() -> None:
    """The subject rules: environment wins, pull_request, branches, tags, schedule on the default branch."""
    triggers = {
        "push": {"branches": ["main"], "tags": ["v1"]},
        "pull_request": None,
        "schedule": [{"cron": "0 0 * * *"}],
    }
    subjects = {p.subject for p in presented_subjects(REPO, triggers, environment=None)}
    assert subjects == {
        f"repo:{REPO}:ref:refs/heads/main",
        f"repo:{REPO}:ref:refs/tags/v1",
        f"repo:{REPO}:pull_request",
    }
    with_environment = {p.subject for p in presented_subjects(REPO, triggers, environment="prod")}
    assert with_environment == {f"repo:{REPO}:environment:prod"}


def test_subject_prefix_replaces_the_repository_in_every_subject() -> None:
    """githubSubjectPrefix, when given, starts every subject and pattern instead of `repo:<repository>`."""
    prefix = "repo:o@1/r@2"
    triggers = {"push": {"branches": ["main"], "tags": ["v*"]}, "pull_request": None}
    presented = presented_subjects(REPO, triggers, environment=None, subject_prefix=prefix)
    assert {(p.subject, p.pattern) for p in presented} == {
        (f"{prefix}:ref:refs/heads/main", None),
        (None, f"{prefix}:ref:refs/tags/v*"),
        (f"{prefix}:pull_request", None),
    }
    with_environment = presented_subjects(REPO, triggers, environment="prod", subject_prefix=prefix)
    assert {p.subject for p in with_environment} == {f"{prefix}:environment:prod"}


def test_tag_only_filter_does_not_run_on_branches() -> None:
    """`push: tags:` alone: GitHub runs the workflow for those tags and no branch."""
    presented = presented_subjects(REPO, {"push": {"tags": ["v*"]}}, environment=None)
    assert [(p.subject, p.pattern) for p in presented] == [(None, f"repo:{REPO}:ref:refs/tags/v*")]


def test_ref_condition_narrows_an_unfiltered_push() -> None:
    """`if: github.ref == 'refs/heads/main'` turns an any-branch push into main's exact subject."""
    presented = presented_subjects(
        REPO, {"push": None}, environment=None, conditions=["github.ref == 'refs/heads/main'"]
    )
    assert [p.subject for p in presented] == [f"repo:{REPO}:ref:refs/heads/main"]


def test_disjunction_in_a_condition_does_not_narrow() -> None:
    """An `||` condition may let either side through: every trigger stays in play."""
    presented = presented_subjects(
        REPO,
        {"push": {"branches": ["main"]}, "pull_request": None},
        environment=None,
        conditions=["github.event_name == 'push' || github.event_name == 'pull_request'"],
    )
    assert {p.subject for p in presented} == {f"repo:{REPO}:ref:refs/heads/main", f"repo:{REPO}:pull_request"}


def test_step_condition_narrows_one_sign_in(tree: Tree) -> None:
    """A sign-in step guarded by `if: github.event_name == 'push'` presents only the push subject."""
    tree.replace(
        ".github/workflows/ci.yml",
        "    if: github.event_name == 'pull_request' && github.event.pull_request.head.repo.full_name == github.repository\n",
        "",
    )
    tree.replace(
        ".github/workflows/ci.yml",
        "      - name: Azure sign-in (preview identity)\n",
        "      - name: Azure sign-in (preview identity)\n        if: github.event_name == 'pull_request'\n",
    )
    # The pulumi step still runs on push with the preview client id: main's credential is on the deploy identity.
    # (And the job, now running on push, is not gated on the branch.)
    assert {f.code for f in tree.findings()} == {"oidc-subject-wrong-identity", "deploy-ungated"}
    finding = only(of(tree.findings(), "oidc-subject-wrong-identity"))
    assert (
        tree.read(".github/workflows/ci.yml")
        .splitlines()[finding.line - 1]
        .strip()
        .startswith("ARM_CLIENT_ID")
    )
