"""Each component on its own, under Pulumi's mocks: what it declares and what it exposes."""

from __future__ import annotations

import pulumi
import pytest

from backend_iac.evaluate import Evaluation, recording_mocks, recording_monitor, run_under_mocks
from stack.components.github_oidc import GitHubOidc, GitHubOidcArgs
from stack.components.postgres import PostgresDatabase, PostgresDatabaseArgs
from stack.components.web_app import WebApp, WebAppArgs
from stack.github_subjects import subjects_for

TAGS = {"project": "backend-iac", "stack": "unit", "managed-by": "pulumi"}


def web_app_args(**changes: object) -> WebAppArgs:
    values: dict[str, object] = {
        "resource_group_name": "rg",
        "location": "westeurope",
        "sku_name": "B1",
        "sku_tier": "Basic",
        "instance_count": 2,
        "python_version": "3.12",
        "startup_command": "gunicorn app",
        "identity_id": "/identities/app",
        "app_settings": {"APP_ENV": "production"},
        "tags": TAGS,
    }
    values.update(changes)
    return WebAppArgs(**values)  # type: ignore[arg-type]


def postgres_args(auth: str) -> PostgresDatabaseArgs:
    return PostgresDatabaseArgs(
        resource_group_name="rg",
        location="westeurope",
        tenant_id="tenant",
        subscription_id="sub",
        database_name="backend",
        auth=auth,  # type: ignore[arg-type]
        app_identity_name="app-identity",
        app_identity_principal_id="app-principal",
        tags=TAGS,
    )


def declare(build: object) -> Evaluation:
    return run_under_mocks(build, stack="unit", config={})


def types_and_names(evaluation: Evaluation) -> set[tuple[str, str]]:
    return {(r.type, r.name) for r in evaluation.resources}


def test_web_app_component_declares_plan_site_and_basic_auth_off() -> None:
    """WebApp: its own component type, a plan, a site, and both basic-auth policies, named from it."""
    evaluation = declare(lambda: WebApp("front", web_app_args()))
    assert types_and_names(evaluation) == {
        ("backend-iac:index:WebApp", "front"),
        ("azure-native:web:AppServicePlan", "front-plan"),
        ("azure-native:web:WebApp", "front-site"),
        ("azure-native:web:WebAppFtpAllowed", "front-ftp-basic-auth"),
        ("azure-native:web:WebAppScmAllowed", "front-scm-basic-auth"),
    }
    plan = evaluation.of_type("azure-native:web:AppServicePlan")[0]
    assert plan.inputs["sku"]["capacity"] == 2


def test_web_app_passes_app_settings_through_in_order() -> None:
    """The app settings given are the app settings declared, in order."""
    evaluation = declare(lambda: WebApp("front", web_app_args(app_settings={"B": "2", "A": "1"})))
    site = evaluation.of_type("azure-native:web:WebApp")[0]
    assert site.inputs["siteConfig"]["appSettings"] == [
        {"name": "B", "value": "2"},
        {"name": "A", "value": "1"},
    ]
    assert "keyVaultReferenceIdentity" not in site.inputs


@pulumi.runtime.test
def test_web_app_url_is_https_on_the_default_host_name() -> None:
    """WebApp.url is https:// plus the site's default host name (checked with @pulumi.runtime.test)."""
    from pulumi.runtime import settings

    settings.reset_options(project="backend-iac", stack="unit")
    mocks = recording_mocks([])
    pulumi.runtime.set_mocks(mocks, project="backend-iac", stack="unit", monitor=recording_monitor(mocks))
    app = WebApp("front", web_app_args())

    def check(values: list[str]) -> None:
        url, host = values
        assert host == "front-site.azurewebsites.net"
        assert url == f"https://{host}"

    return pulumi.Output.all(app.url, app.default_host_name).apply(check)


def test_postgres_component_passwordless_declares_entra_admin_and_no_vault() -> None:
    """PostgresDatabase (managed-identity): server, TLS setting, Azure-only rule, database, Entra admin."""
    evaluation = declare(lambda: PostgresDatabase("data", postgres_args("managed-identity")))
    assert types_and_names(evaluation) == {
        ("backend-iac:index:PostgresDatabase", "data"),
        ("azure-native:dbforpostgresql:Server", "data-server"),
        ("azure-native:dbforpostgresql:Configuration", "data-require-tls"),
        ("azure-native:dbforpostgresql:FirewallRule", "data-azure-services"),
        ("azure-native:dbforpostgresql:Database", "data-database"),
        ("azure-native:dbforpostgresql:Administrator", "data-entra-admin"),
    }
    admin = evaluation.of_type("azure-native:dbforpostgresql:Administrator")[0]
    assert admin.inputs["objectId"] == "app-principal"
    assert admin.inputs["tenantId"] == "tenant"


def test_postgres_component_password_mode_declares_vault_secret_and_reader_role() -> None:
    """PostgresDatabase (password): a generated password, a vault, the URL secret, Secrets User for the app."""
    evaluation = declare(lambda: PostgresDatabase("data", postgres_args("password")))
    names = types_and_names(evaluation)
    assert ("random:index/randomPassword:RandomPassword", "data-admin-password") in names
    assert ("azure-native:keyvault:Vault", "data-kv") in names
    assert ("azure-native:keyvault:Secret", "data-database-url") in names
    role = evaluation.of_type("azure-native:authorization:RoleAssignment")[0]
    assert role.inputs["principalId"] == "app-principal"
    assert role.inputs["roleDefinitionId"].endswith("4633458b-17de-408a-b874-0445c86b69e6")
    assert ("azure-native:dbforpostgresql:Administrator", "data-entra-admin") not in names


@pytest.mark.parametrize("pull_requests", [True, False])
def test_github_oidc_component_one_credential_per_subject(pull_requests: bool) -> None:
    """GitHubOidc: a deploy identity always, a preview identity only for pull requests, one credential each."""
    subjects = subjects_for("o/r", branches=("main",), environments=("prod",), pull_requests=pull_requests)
    evaluation = declare(
        lambda: GitHubOidc(
            "ci",
            GitHubOidcArgs(
                resource_group_name="rg",
                resource_group_id="/subscriptions/sub/resourceGroups/rg",
                location="westeurope",
                subscription_id="sub",
                subjects=subjects,
                tags=TAGS,
            ),
        )
    )
    identities = {r.name for r in evaluation.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    assert identities == ({"ci-deploy", "ci-preview"} if pull_requests else {"ci-deploy"})
    credentials = {
        r.name: r.inputs["subject"]
        for r in evaluation.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    }
    expected = {
        "ci-deploy-branch-main": "repo:o/r:ref:refs/heads/main",
        "ci-deploy-env-prod": "repo:o/r:environment:prod",
    }
    if pull_requests:
        expected["ci-preview-pull-request"] = "repo:o/r:pull_request"
    assert credentials == expected
    roles = {r.name for r in evaluation.of_type("azure-native:authorization:RoleAssignment")}
    assert roles == (
        {"ci-deploy-contributor", "ci-preview-reader"} if pull_requests else {"ci-deploy-contributor"}
    )
    for role in evaluation.of_type("azure-native:authorization:RoleAssignment"):
        assert role.inputs["scope"] == "/subscriptions/sub/resourceGroups/rg"
