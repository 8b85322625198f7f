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
