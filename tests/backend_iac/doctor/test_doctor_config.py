"""Config: the program's own validation, surfaced with the key's line, and contradictory options."""

from __future__ import annotations

from tests.backend_iac.doctor.conftest import Tree, only


def test_malformed_repository_name(tree: Tree) -> None:
    """githubRepository must be owner/name."""
    tree.set_config(githubRepository="example-org backend-iac")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "config-repository-malformed",
        "config",
        "error",
    )
    assert finding.file == "Pulumi.dev.yaml"
    assert (
        finding.line
        == tree.read("Pulumi.dev.yaml")
        .splitlines()
        .index("  backend-iac:githubRepository: example-org backend-iac")
        + 1
    )


def test_unknown_sku(tree: Tree) -> None:
    """An App Service SKU the stack does not know."""
    tree.set_config(appServiceSku="F1")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("config-sku-unknown", "config", "error")


def test_password_mode_without_a_server(tree: Tree) -> None:
    """postgresAuth: password with enablePostgres false contradicts itself."""
    tree.set_config(postgresAuth="password")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "config-options-contradictory",
        "config",
        "error",
    )


def test_python_version_app_service_does_not_offer(tree: Tree) -> None:
    """A Python version App Service does not offer is refused by the program's validation."""
    tree.set_config(pythonVersion="3.9")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("config-python-version", "config", "error")


def test_postgres_in_both_auth_modes_is_clean(tree: Tree) -> None:
    """Postgres with managed identity, and with a generated secret password: nothing contradicts."""
    tree.set_config(enablePostgres=True)
    assert tree.findings() == []
    tree.set_config(postgresAuth="password")
    assert tree.findings() == []


def test_secure_value_skips_evaluation_with_a_warning(tree: Tree) -> None:
    """A `secure:` value cannot be decrypted offline: a warning, not an error, and no crash."""
    tree.set_config(authAudience={"secure": "v1:abc"})
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("stack-not-evaluated", "config", "warning")


def test_malformed_subject_prefix(tree: Tree) -> None:
    """githubSubjectPrefix running into the ref is refused by the program, at its line in the stack file."""
    tree.set_config(githubSubjectPrefix="repo:example-org/backend-iac:ref:refs/heads/main")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("config-subjects-invalid", "config", "error")
    assert "backend-iac:githubSubjectPrefix" in finding.message
    assert finding.file == "Pulumi.dev.yaml"
    assert (
        finding.line
        == tree.read("Pulumi.dev.yaml")
        .splitlines()
        .index("  backend-iac:githubSubjectPrefix: repo:example-org/backend-iac:ref:refs/heads/main")
        + 1
    )


TENANT = "7f0c3c52-1c8f-4b0e-9d4e-3f5b6a7c8d9e"


def test_default_stack_declares_the_registration_and_is_clean(tree: Tree) -> None:
    """No authIssuer/authAudience: the stack derives them, nothing to report."""
    assert tree.findings() == []


def test_v2_issuer_with_identifier_uri_audience(tree: Tree) -> None:
    """The old documented example: a v2.0 issuer with api:// audience can never validate, with the fix."""
    tree.set_config(
        authIssuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", authAudience="api://backend-iac"
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("config-auth-audience", "config", "error")
    assert "client id" in finding.message
    assert "delete backend-iac:authIssuer and backend-iac:authAudience" in finding.fix
    assert finding.line is not None


def test_v1_issuer_is_a_warning_that_explains_token_versions(tree: Tree) -> None:
    """sts.windows.net is the v1.0 issuer: allowed, explained, with the way to v2.0."""
    tree.set_config(authIssuer=f"https://sts.windows.net/{TENANT}/", authAudience="api://backend-iac")
    finding = only(tree.findings())
    assert (finding.code, finding.severity) == ("config-auth-issuer-v1", "warning")
    assert "requestedAccessTokenVersion" in finding.message
    assert "v2.0" in finding.fix


def test_issuer_without_audience(tree: Tree) -> None:
    """Half of the bring-your-own pair is refused naming the missing key."""
    tree.set_config(authIssuer=f"https://login.microsoftonline.com/{TENANT}/v2.0")
    finding = only(tree.findings())
    assert finding.code == "config-auth-audience"
    assert "go together" in finding.message
