"""Federated credential subjects: exactly the strings GitHub puts in the token's sub claim."""

from __future__ import annotations

from stack.github_subjects import subjects_for


def test_default_subjects_are_main_branch_and_pull_request() -> None:
    """Defaults: the main branch deploys, pull requests preview."""
    subjects = subjects_for("Example-Org/backend-iac")
    assert [(s.subject, s.purpose) for s in subjects] == [
        ("repo:Example-Org/backend-iac:ref:refs/heads/main", "deploy"),
        ("repo:Example-Org/backend-iac:pull_request", "preview"),
    ]


def test_branches_tags_and_environments_each_get_a_deploy_subject() -> None:
    """Each branch, tag and environment has its own subject, in that order."""
    subjects = subjects_for(
        "o/r",
        branches=("main", "release/2.x"),
        tags=("v1.0.0",),
        environments=("production",),
        pull_requests=False,
    )
    assert [s.subject for s in subjects] == [
        "repo:o/r:ref:refs/heads/main",
        "repo:o/r:ref:refs/heads/release/2.x",
        "repo:o/r:ref:refs/tags/v1.0.0",
        "repo:o/r:environment:production",
    ]
    assert {s.purpose for s in subjects} == {"deploy"}


def test_credential_names_are_valid_azure_names() -> None:
    """Credential names replace characters Azure refuses (/, .) and stay unique per subject here."""
    subjects = subjects_for("o/r", branches=("release/2.x",), tags=("v1.0.0",))
    assert [s.credential_name for s in subjects] == ["branch-release-2-x", "tag-v1-0-0", "pull-request"]


def test_subject_prefix_replaces_the_repository_part() -> None:
    """With githubSubjectPrefix set, every subject starts with it, character for character."""
    subjects = subjects_for(
        "octocat/my-repo",
        branches=("main",),
        tags=("v1.0.0",),
        environments=("production",),
        subject_prefix="repo:octocat@123456/my-repo@456789",
    )
    assert [(s.subject, s.purpose) for s in subjects] == [
        ("repo:octocat@123456/my-repo@456789:ref:refs/heads/main", "deploy"),
        ("repo:octocat@123456/my-repo@456789:ref:refs/tags/v1.0.0", "deploy"),
        ("repo:octocat@123456/my-repo@456789:environment:production", "deploy"),
        ("repo:octocat@123456/my-repo@456789:pull_request", "preview"),
    ]


def test_credential_names_do_not_depend_on_the_prefix() -> None:
    """Setting the prefix changes subjects only: the credentials keep their names (no replacement)."""
    branches, tags, environments = ("main", "release/2.x"), ("v1",), ("production",)
    without = subjects_for("octocat/my-repo", branches=branches, tags=tags, environments=environments)
    with_prefix = subjects_for(
        "octocat/my-repo",
        branches=branches,
        tags=tags,
        environments=environments,
        subject_prefix="repo:octocat-123456/my-repo-456789",
    )
    assert [s.credential_name for s in with_prefix] == [s.credential_name for s in without]
    assert with_prefix[0].subject == "repo:octocat-123456/my-repo-456789:ref:refs/heads/main"
