"""Identity: the subject each sign-in presents, against the credentials the evaluated stack declares."""

from __future__ import annotations

import subprocess

import pytest

from tests.backend_iac.doctor.conftest import Tree, of, only


def test_push_to_undeclared_branch_is_an_unmatched_subject(tree: Tree) -> None:
    """A deploy on push to `develop`, which the stack has no credential for, is AADSTS700213 (once the jobs'
    branch gate is gone: with it, a develop run never signs in)."""
    tree.replace(".github/workflows/deploy.yml", "branches: [main]", "branches: [main, develop]")
    tree.replace(".github/workflows/deploy.yml", "    if: github.ref == 'refs/heads/main'\n", "")
    findings = of(tree.findings(), "oidc-subject-unmatched")
    assert {(f.layer, f.severity, f.file) for f in findings} == {
        ("identity", "error", ".github/workflows/deploy.yml")
    }
    assert [f.message.split("`")[1] for f in findings] == ["up", "deploy"]  # both jobs sign in
    for finding in findings:
        assert "repo:example-org/backend-iac:ref:refs/heads/develop" in finding.message
        assert "AADSTS700213" in finding.message
        assert "githubBranches" in finding.fix
        assert finding.line is not None


def test_environment_replaces_the_ref_in_the_subject(tree: Tree) -> None:
    """A job with `environment: staging` presents the environment subject, not the branch's."""
    tree.replace(
        ".github/workflows/deploy.yml",
        "  deploy:\n    needs: [up]\n",
        "  deploy:\n    needs: [up]\n    environment: staging\n",
    )
    finding = only(of(tree.findings(), "oidc-subject-unmatched"))
    assert "repo:example-org/backend-iac:environment:staging" in finding.message
    assert "githubEnvironments" in finding.fix
    assert (
        finding.line
        == tree.read(".github/workflows/deploy.yml").splitlines().index("    environment: staging") + 1
    )


def test_declared_environment_matches(tree: Tree) -> None:
    """`environment: {name: production}` signs in when githubEnvironments declares production."""
    tree.set_config(githubEnvironments=["production"])
    tree.replace(
        ".github/workflows/deploy.yml",
        "  deploy:\n    needs: [up]\n",
        "  deploy:\n    needs: [up]\n    environment:\n      name: production\n      url: https://example.org\n",
    )
    assert of(tree.findings(), "oidc-subject-unmatched") == []
    assert of(tree.findings(), "oidc-credential-unused") == []


def test_environment_differing_in_case_is_7002138(tree: Tree) -> None:
    """`environment: Production` against a `production` credential: case-sensitive mismatch."""
    tree.set_config(githubEnvironments=["production"])
    tree.replace(
        ".github/workflows/deploy.yml",
        "  deploy:\n    needs: [up]\n",
        "  deploy:\n    needs: [up]\n    environment: Production\n",
    )
    finding = only(of(tree.findings(), "oidc-subject-case"))
    assert (finding.layer, finding.severity) == ("identity", "error")
    assert "AADSTS7002138" in finding.message


def test_glob_branch_filter_without_any_credential_is_an_error(tree: Tree) -> None:
    """`release/*` with no release credential: no exact credential can ever match."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    tree.replace(".github/workflows/deploy.yml", "branches: [main]", "branches: [main, 'release/*']")
    findings = of(tree.findings(), "oidc-subject-unmatched")
    assert len(findings) == 2  # the up and deploy jobs
    assert all("refs/heads/release/*" in f.message and f.severity == "error" for f in findings)


def test_glob_branch_filter_partly_covered_is_a_warning(tree: Tree) -> None:
    """`release/*` with a credential for release/1.0 only: a warning naming what can sign in."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    tree.set_config(githubBranches=["main", "release/1.0"])
    tree.replace(".github/workflows/deploy.yml", "branches: [main]", "branches: [main, 'release/*']")
    findings = tree.findings()
    patterns = of(findings, "oidc-subject-pattern")
    assert {(f.layer, f.severity) for f in patterns} == {("identity", "warning")}
    assert all("refs/heads/release/1.0" in f.message for f in patterns)
    assert [f for f in findings if f.severity == "error" and f.code != "deploy-ungated"] == []
    assert of(findings, "oidc-credential-unused") == []


def test_unused_credential_is_a_warning(tree: Tree) -> None:
    """A tag credential no workflow signs in with is reported at the config key that creates it."""
    tree.set_config(githubTags=["v1.0.0"])
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "oidc-credential-unused",
        "identity",
        "warning",
    )
    assert finding.file == "Pulumi.dev.yaml"
    assert "refs/tags/v1.0.0" in finding.message


def test_tag_push_matches_a_tag_credential(tree: Tree) -> None:
    """A push of tag v1.0.0 presents ref:refs/tags/v1.0.0, which githubTags declares."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    tree.set_config(githubTags=["v1.0.0"])
    tree.replace(".github/workflows/deploy.yml", "branches: [main]", "branches: [main]\n    tags: [v1.0.0]")
    assert [f for f in tree.findings() if f.code != "deploy-ungated"] == []


def test_preview_subject_signed_in_with_the_deploy_client_id(tree: Tree) -> None:
    """The pull_request credential lives on the preview identity: the deploy client id cannot use it."""
    tree.replace(
        ".github/workflows/ci.yml",
        "client-id: ${{ vars.AZURE_PREVIEW_CLIENT_ID }}",
        "client-id: ${{ vars.AZURE_CLIENT_ID }}",
    )
    finding = only(of(tree.findings(), "oidc-subject-wrong-identity"))
    assert (finding.layer, finding.severity) == ("identity", "error")
    assert "github-preview" in finding.message


def test_job_if_on_event_name_narrows_the_events(tree: Tree) -> None:
    """Without its `if: github.event_name == 'pull_request'`, the preview job also runs on push to main."""
    tree.replace(
        ".github/workflows/ci.yml",
        "    if: github.event_name == 'pull_request' && github.event.pull_request.head.repo.full_name == github.repository\n",
        "",
    )
    finding = only(of(tree.findings(), "oidc-subject-wrong-identity"))
    assert "refs/heads/main" in finding.message


def test_dispatch_assumes_the_default_branch_and_says_so(tree: Tree) -> None:
    """workflow_dispatch is checked as the default branch; the finding says it assumed that."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    tree.ungate(".github/workflows/destroy.yml")
    tree.set_config(githubBranches=["release"])
    tree.replace(
        ".github/workflows/deploy.yml",
        "  push:\n    branches: [main]\n",
        "  push:\n    branches: [release]\n",
    )
    findings = of(tree.findings(), "oidc-subject-unmatched")
    # deploy.yml's dispatch (jobs up and deploy) and destroy.yml's: all sign in from main.
    assert sorted(f.file for f in findings) == [".github/workflows/deploy.yml"] * 2 + [
        ".github/workflows/destroy.yml"
    ]
    for finding in findings:
        assert "on workflow_dispatch" in finding.message
        assert "refs/heads/main" in finding.message
        assert "assumed the default branch `main`" in finding.message


def test_environment_expression_is_unresolved(tree: Tree) -> None:
    """An `environment:` expression cannot be checked offline: a warning says so."""
    tree.replace(
        ".github/workflows/deploy.yml",
        "  deploy:\n    needs: [up]\n",
        "  deploy:\n    needs: [up]\n    environment: ${{ inputs.target }}\n",
    )
    finding = only(of(tree.findings(), "oidc-subject-unresolved"))
    assert (finding.layer, finding.severity) == ("identity", "warning")


def _origin(tree: Tree, url: str) -> None:
    subprocess.run(["git", "init", "-q", str(tree.root)], check=True)
    subprocess.run(["git", "-C", str(tree.root), "remote", "add", "origin", url], check=True)


@pytest.mark.parametrize(
    "url",
    ["https://github.com/Example-Org/backend-iac.git", "git@github.com:Example-Org/backend-iac.git"],
)
def test_remote_differing_only_in_case_is_a_warning_with_the_way_to_check(tree: Tree, url: str) -> None:
    """A remote's letter case proves nothing about GitHub's spelling: a warning saying how to check, no fix."""
    _origin(tree, url)
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("oidc-repository-case", "identity", "warning")
    assert "AADSTS7002138" in finding.message
    assert "gh api repos/example-org/backend-iac --jq .full_name" in finding.fix
    assert "Example-Org" not in finding.fix  # no confident fix towards the remote's spelling
    assert finding.file == "Pulumi.dev.yaml"
    assert finding.line is not None


def test_remote_naming_another_repository_is_an_error(tree: Tree) -> None:
    """A remote that names a different repository (not just another case) is an error."""
    _origin(tree, "https://github.com/example-org/another-repo.git")
    finding = only(tree.findings())
    assert (finding.code, finding.severity) == ("oidc-repository-mismatch", "error")
    assert "AADSTS700213" in finding.message


def test_remote_matching_config_is_fine(tree: Tree) -> None:
    """An origin remote equal to githubRepository adds no finding; a non-GitHub remote is ignored."""
    _origin(tree, "https://github.com/example-org/backend-iac")
    assert tree.findings() == []
    subprocess.run(
        ["git", "-C", str(tree.root), "remote", "set-url", "origin", "https://gitlab.com/x/y.git"], check=True
    )
    assert tree.findings() == []


def test_dispatch_uses_origins_default_branch_when_known(tree: Tree) -> None:
    """With origin's HEAD on `trunk`, a dispatch is checked as trunk, not main."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    _origin(tree, "https://github.com/example-org/backend-iac.git")
    head = tree.root / ".git/refs/remotes/origin/HEAD"
    head.parent.mkdir(parents=True, exist_ok=True)
    head.write_text("ref: refs/remotes/origin/trunk\n", encoding="utf-8")
    findings = of(tree.findings(), "oidc-subject-unmatched")
    assert findings
    assert all("refs/heads/trunk" in f.message and "default branch `trunk`" in f.message for f in findings)


def test_login_asking_for_another_audience(tree: Tree) -> None:
    """azure/login's `audience` input other than api://AzureADTokenExchange is AADSTS700212."""
    tree.replace(
        ".github/workflows/ci.yml",
        "          subscription-id: ${{ vars.AZURE_SUBSCRIPTION_ID }}\n      - uses: pulumi",
        "          subscription-id: ${{ vars.AZURE_SUBSCRIPTION_ID }}\n          audience: api://custom\n      - uses: pulumi",
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("oidc-login-audience", "identity", "error")
    assert (
        finding.line
        == tree.read(".github/workflows/ci.yml").splitlines().index("          audience: api://custom") + 1
    )


def test_credential_with_another_issuer(tree: Tree) -> None:
    """A credential trusting an issuer with a trailing slash is AADSTS700211 for every sign-in."""
    tree.replace(
        "stack/components/github_oidc.py",
        "issuer=GITHUB_ISSUER,",
        'issuer="https://token.actions.githubusercontent.com/",',
    )
    findings = of(tree.findings(), "oidc-credential-issuer")
    assert len(findings) == 2  # main and pull_request
    assert {(f.layer, f.severity) for f in findings} == {("identity", "error")}
    assert all("AADSTS700211" in f.message for f in findings)


def test_credential_with_another_audience(tree: Tree) -> None:
    """A credential accepting another audience is AADSTS700212 for every sign-in."""
    tree.replace(
        "stack/components/github_oidc.py",
        "audiences=[TOKEN_EXCHANGE_AUDIENCE],",
        'audiences=["api://other"],',
    )
    findings = of(tree.findings(), "oidc-credential-audience")
    assert len(findings) == 2
    assert all("AADSTS700212" in f.message for f in findings)


IMMUTABLE_PREFIX = "repo:example-org@1234/backend-iac@5678"


def test_subject_prefix_in_config_and_workflows_agree(tree: Tree) -> None:
    """With githubSubjectPrefix set, workflows and credentials both use it: no findings."""
    tree.set_config(githubSubjectPrefix=IMMUTABLE_PREFIX)
    assert tree.findings() == []
    _origin(tree, "https://github.com/example-org/backend-iac.git")
    assert tree.findings() == []


def test_subject_prefix_is_what_an_unmatched_subject_names(tree: Tree) -> None:
    """The doctor derives workflow subjects with the configured prefix, so a missing branch says so."""
    tree.ungate(".github/workflows/deploy.yml")  # subjects per trigger, not the gated run
    tree.set_config(githubSubjectPrefix=IMMUTABLE_PREFIX)
    tree.replace(".github/workflows/deploy.yml", "branches: [main]", "branches: [main, develop]")
    findings = of(tree.findings(), "oidc-subject-unmatched")
    assert [f.message.split("`")[1] for f in findings] == ["up", "deploy"]
    for finding in findings:
        assert f"'{IMMUTABLE_PREFIX}:ref:refs/heads/develop'" in finding.message
        assert "githubBranches" in finding.fix


def test_subject_prefix_with_a_declared_environment(tree: Tree) -> None:
    """An environment job presents `<prefix>:environment:E`, which the prefixed credential matches."""
    tree.set_config(githubSubjectPrefix=IMMUTABLE_PREFIX, githubEnvironments=["production"])
    tree.replace(
        ".github/workflows/deploy.yml",
        "  deploy:\n    needs: [up]\n",
        "  deploy:\n    needs: [up]\n    environment: production\n",
    )
    assert tree.findings() == []


def test_credentials_without_the_prefix_do_not_match_prefixed_workflows(tree: Tree) -> None:
    """A stack that ignored githubSubjectPrefix would declare name-only subjects: every sign-in fails."""
    tree.replace("stack/program.py", "subject_prefix=config.github_subject_prefix,", "")
    tree.set_config(githubSubjectPrefix=IMMUTABLE_PREFIX)
    findings = tree.findings()
    unmatched = of(findings, "oidc-subject-unmatched")
    assert unmatched
    assert all(IMMUTABLE_PREFIX in f.message and "AADSTS700213" in f.message for f in unmatched)
    assert of(findings, "oidc-credential-unused")


def test_remote_check_still_compares_github_repository_with_a_prefix_set(tree: Tree) -> None:
    """The prefix does not silence oidc-repository-mismatch: githubRepository must still match origin."""
    tree.set_config(githubSubjectPrefix=IMMUTABLE_PREFIX)
    _origin(tree, "https://github.com/other-org/backend-iac.git")
    finding = only(tree.findings())
    assert finding.code == "oidc-repository-mismatch"
