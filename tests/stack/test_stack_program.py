"""The whole program under Pulumi's mocks, for the configurations a user can choose."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_iac.evaluate import DeclaredResource, Evaluation, StackFileError, evaluate_stack
from service.startup import STARTUP_COMMAND
from stack.config import StackConfigError
from tests.stack.conftest import REPO, Evaluate

WEB_APP = "azure-native:web:WebApp"
PLAN = "azure-native:web:AppServicePlan"
SERVER = "azure-native:dbforpostgresql:Server"
CREDENTIAL = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
# Types ARM lets carry tags (the others are sub-resources or settings of one).
TAGGABLE = {
    "azure-native:resources:ResourceGroup",
    "azure-native:managedidentity:UserAssignedIdentity",
    PLAN,
    WEB_APP,
    SERVER,
    "azure-native:keyvault:Vault",
}


def one(evaluation: Evaluation, type_token: str) -> DeclaredResource:
    found = evaluation.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def app_settings(evaluation: Evaluation) -> dict[str, str]:
    site = one(evaluation, WEB_APP)
    return {item["name"]: item["value"] for item in site.inputs["siteConfig"]["appSettings"]}


def test_dev_stack_declares_the_web_app_identity_and_no_database() -> None:
    """The committed dev stack: one plan, one web app, CI identities, no Postgres."""
    evaluation = evaluate_stack(REPO, "dev")
    assert len(evaluation.of_type(PLAN)) == 1
    assert len(evaluation.of_type(WEB_APP)) == 1
    assert evaluation.of_type(SERVER) == []
    assert "database_host" not in evaluation.outputs


def test_web_app_runs_the_service_start_command_hardened() -> None:
    """The site runs the service's one start command on Python 3.12, HTTPS only, TLS 1.2, FTPS off."""
    site = one(evaluation := evaluate_stack(REPO, "dev"), WEB_APP)
    config = site.inputs["siteConfig"]
    assert config["appCommandLine"] == STARTUP_COMMAND
    assert config["linuxFxVersion"] == "PYTHON|3.12"
    assert site.inputs["httpsOnly"] is True
    assert config["minTlsVersion"] == "1.2"
    assert config["ftpsState"] == "Disabled"
    assert config["http20Enabled"] is True
    assert config["alwaysOn"] is True
    assert config["healthCheckPath"] == "/healthz"
    assert site.inputs["identity"]["type"] == "UserAssigned"
    assert one(evaluation, "azure-native:web:WebAppFtpAllowed").inputs["allow"] is False
    assert one(evaluation, "azure-native:web:WebAppScmAllowed").inputs["allow"] is False


def test_plan_is_linux_b1_with_one_instance_by_default(evaluate: Evaluate) -> None:
    """Default plan: Linux (reserved), B1, capacity 1."""
    plan = one(evaluate(), PLAN)
    assert plan.inputs["kind"] == "linux"
    assert plan.inputs["reserved"] is True
    assert plan.inputs["sku"] == {"name": "B1", "tier": "Basic", "capacity": 1}


def test_instance_count_sets_plan_capacity(evaluate: Evaluate) -> None:
    """instanceCount becomes the plan's capacity."""
    plan = one(evaluate(instanceCount=3), PLAN)
    assert plan.inputs["sku"] == {"name": "B1", "tier": "Basic", "capacity": 3}


def test_app_settings_without_postgres(evaluate: Evaluate) -> None:
    """Without Postgres: production, the issuer and audience, an Oryx build, a 600 s start limit, no DB."""
    evaluation = evaluate()
    settings = app_settings(evaluation)
    assert settings["APP_ENV"] == "production"
    assert (
        settings["AUTH_ISSUER"] == f"https://login.microsoftonline.com/{evaluation.outputs['tenant_id']}/v2.0"
    )
    assert settings["AUTH_AUDIENCE"] == evaluation.outputs["api_client_id"]
    assert settings["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "true"
    assert settings["WEBSITES_CONTAINER_START_TIME_LIMIT"] == "600"
    assert "DATABASE_URL" not in settings
    assert "DATABASE_AUTH" not in settings


def test_postgres_passwordless_by_default(evaluate: Evaluate) -> None:
    """Postgres on: 16, B1ms Burstable, 32 GB, Entra only, the app identity as admin, a passwordless URL."""
    evaluation = evaluate(enablePostgres=True)
    server = one(evaluation, SERVER)
    assert server.inputs["version"] == "16"
    assert server.inputs["sku"] == {"name": "Standard_B1ms", "tier": "Burstable"}
    assert server.inputs["storage"]["storageSizeGB"] == 32
    assert server.inputs["authConfig"]["activeDirectoryAuth"] == "Enabled"
    assert server.inputs["authConfig"]["passwordAuth"] == "Disabled"
    assert "administratorLoginPassword" not in server.inputs
    admin = one(evaluation, "azure-native:dbforpostgresql:Administrator")
    assert admin.inputs["principalName"] == "app-identity"
    assert admin.inputs["principalType"] == "ServicePrincipal"
    settings = app_settings(evaluation)
    assert settings["DATABASE_AUTH"] == "managed-identity"
    assert settings["DATABASE_URL"] == (
        "postgresql://app-identity@db-server.postgres.database.azure.com:5432/backend?sslmode=require"
    )
    assert evaluation.outputs["database_host"] == "db-server.postgres.database.azure.com"


def test_postgres_requires_tls_and_admits_only_azure(evaluate: Evaluate) -> None:
    """Public mode: TLS is required and the only firewall rule is Azure services (0.0.0.0), never the internet."""
    evaluation = evaluate(enablePostgres=True, postgresNetwork="public")
    tls = one(evaluation, "azure-native:dbforpostgresql:Configuration")
    assert (tls.inputs["configurationName"], tls.inputs["value"]) == ("require_secure_transport", "on")
    rule = one(evaluation, "azure-native:dbforpostgresql:FirewallRule")
    azure_services = "0.0.0.0"  # noqa: S104 - ARM's marker for Azure services, not a bind address
    assert (rule.inputs["startIpAddress"], rule.inputs["endIpAddress"]) == (azure_services, azure_services)
    assert one(evaluation, "azure-native:dbforpostgresql:Database").inputs["databaseName"] == "backend"


def test_password_mode_keeps_the_url_in_key_vault(evaluate: Evaluate) -> None:
    """Password mode: generated password (secret), URL in Key Vault, the app setting only a reference."""
    evaluation = evaluate(enablePostgres=True, postgresAuth="password")
    server = one(evaluation, SERVER)
    assert server.inputs["authConfig"]["passwordAuth"] == "Enabled"
    assert server.inputs["administratorLogin"] == "backendadmin"
    assert "administratorLoginPassword" in server.secret_paths
    secret = one(evaluation, "azure-native:keyvault:Secret")
    assert "properties.value" in secret.secret_paths
    vault = one(evaluation, "azure-native:keyvault:Vault")
    assert vault.inputs["properties"]["enableRbacAuthorization"] is True
    assert "enablePurgeProtection" not in vault.inputs["properties"]
    settings = app_settings(evaluation)
    assert settings["DATABASE_AUTH"] == "password"
    assert settings["DATABASE_URL"].startswith("@Microsoft.KeyVault(SecretUri=https://")
    assert one(evaluation, WEB_APP).inputs["keyVaultReferenceIdentity"].endswith("app-identity")
    assert evaluation.of_type("azure-native:dbforpostgresql:Administrator") == []


def test_default_subjects_are_exact(evaluate: Evaluate) -> None:
    """Defaults: the main branch (deploy) and pull_request (preview), with GitHub's issuer and audience."""
    evaluation = evaluate()
    assert sorted(evaluation.federated_subjects) == [
        "repo:Example-Org/backend-iac:pull_request",
        "repo:Example-Org/backend-iac:ref:refs/heads/main",
    ]
    for credential in evaluation.of_type(CREDENTIAL):
        assert credential.inputs["issuer"] == "https://token.actions.githubusercontent.com"
        assert credential.inputs["audiences"] == ["api://AzureADTokenExchange"]


def test_branches_tags_environments_without_pull_requests(evaluate: Evaluate) -> None:
    """Several branches, a tag and an environment; no pull_request subject and no preview identity."""
    evaluation = evaluate(
        githubBranches=["main", "release/1.x"],
        githubTags=["v1.2.3"],
        githubEnvironments=["production"],
        githubPullRequests=False,
    )
    assert sorted(evaluation.federated_subjects) == [
        "repo:Example-Org/backend-iac:environment:production",
        "repo:Example-Org/backend-iac:ref:refs/heads/main",
        "repo:Example-Org/backend-iac:ref:refs/heads/release/1.x",
        "repo:Example-Org/backend-iac:ref:refs/tags/v1.2.3",
    ]
    identities = [r.name for r in evaluation.of_type("azure-native:managedidentity:UserAssignedIdentity")]
    assert sorted(identities) == ["app-identity", "github-deploy"]
    assert "ci_preview_identity_client_id" not in evaluation.outputs


def test_subject_prefix_reaches_every_credential_under_the_same_names(evaluate: Evaluate) -> None:
    """githubSubjectPrefix changes each credential's subject, not its Pulumi or Azure name."""
    names = sorted(
        (r.name, r.inputs["federatedIdentityCredentialResourceName"])
        for r in evaluate(githubEnvironments=["production"]).of_type(CREDENTIAL)
    )
    evaluation = evaluate(
        githubEnvironments=["production"], githubSubjectPrefix="repo:Example-Org@1/backend-iac@2"
    )
    assert sorted(evaluation.federated_subjects) == [
        "repo:Example-Org@1/backend-iac@2:environment:production",
        "repo:Example-Org@1/backend-iac@2:pull_request",
        "repo:Example-Org@1/backend-iac@2:ref:refs/heads/main",
    ]
    credentials = evaluation.of_type(CREDENTIAL)
    assert sorted((r.name, r.inputs["federatedIdentityCredentialResourceName"]) for r in credentials) == names


def test_pull_requests_get_reader_and_deploys_get_contributor(evaluate: Evaluate) -> None:
    """The preview identity is Reader on the group, the deploy identity Contributor; nothing wider."""
    evaluation = evaluate()
    roles = {r.inputs["principalId"]: r.inputs for r in evaluation.of_type(ROLE)}
    assert roles["principal-id-of-github-preview"]["roleDefinitionId"].endswith(READER)
    assert roles["principal-id-of-github-deploy"]["roleDefinitionId"].endswith(CONTRIBUTOR)
    group_id = "/mock/azure-native:resources:ResourceGroup/resource-group"
    assert {role["scope"] for role in roles.values()} == {group_id}


def test_one_federated_credential_per_subject(evaluate: Evaluate) -> None:
    """Two branches, an environment and pull requests give four credentials, no more."""
    evaluation = evaluate(githubBranches=["main", "next"], githubEnvironments=["production"])
    assert len(evaluation.of_type(CREDENTIAL)) == 4


def test_federated_credentials_on_one_identity_are_created_one_after_another(evaluate: Evaluate) -> None:
    """Entra refuses concurrent credential writes on one identity, so each credential waits for the last."""
    evaluation = evaluate(githubBranches=["main", "next"], githubEnvironments=["production"])
    deploy = {r.name: r for r in evaluation.of_type(CREDENTIAL) if r.name.startswith("github-deploy-")}
    assert "github-deploy-branch-main" in deploy["github-deploy-branch-next"].depends_on
    assert "github-deploy-branch-next" in deploy["github-deploy-env-production"].depends_on


def test_postgres_children_are_created_one_at_a_time(evaluate: Evaluate) -> None:
    """A Flexible Server runs one operation at a time: TLS setting, firewall, database, Entra admin in turn."""
    by_name = {r.name: r for r in evaluate(enablePostgres=True, postgresNetwork="public").resources}
    assert "db-server" in by_name["db-require-tls"].depends_on
    assert "db-require-tls" in by_name["db-azure-services"].depends_on
    assert "db-azure-services" in by_name["db-database"].depends_on
    assert "db-database" in by_name["db-entra-admin"].depends_on


@pytest.mark.parametrize("auth", ["managed-identity", "password"])
def test_site_starts_after_the_database_is_ready(evaluate: Evaluate, auth: str) -> None:
    """The site waits for the whole database component (Entra admin, or the Key Vault role it reads with)."""
    evaluation = evaluate(enablePostgres=True, postgresAuth=auth)
    site = one(evaluation, WEB_APP)
    ready = "db-entra-admin" if auth == "managed-identity" else "db-kv-secrets-user"
    assert ready in site.depends_on


def test_outputs_name_the_app_group_and_identities(evaluate: Evaluate) -> None:
    """Outputs: web app name, host and URL, group, CI client id, tenant and subscription."""
    outputs = evaluate().outputs
    assert outputs["web_app_name"] == "app-site"
    assert outputs["url"] == "https://app-site.azurewebsites.net"
    assert outputs["resource_group"] == "rg-backend-iac-test"
    assert outputs["ci_identity_client_id"] == "client-id-of-github-deploy"
    assert {"tenant_id", "subscription_id", "default_host_name"} <= set(outputs)


@pytest.mark.parametrize(
    "postgres", [{}, {"enablePostgres": True}, {"enablePostgres": True, "postgresAuth": "password"}]
)
def test_every_taggable_resource_is_tagged(evaluate: Evaluate, postgres: dict[str, object]) -> None:
    """Every resource that takes tags carries project, stack and managed-by."""
    for resource in evaluate(**postgres).resources:
        if resource.type in TAGGABLE:
            assert resource.inputs["tags"] == {
                "project": "backend-iac",
                "stack": "test",
                "managed-by": "pulumi",
            }


def test_nothing_is_protected_or_retained(evaluate: Evaluate) -> None:
    """No Key Vault purge protection, so `pulumi destroy` leaves nothing that blocks a re-create."""
    evaluation = evaluate(enablePostgres=True, postgresAuth="password")
    assert all(not r.inputs.get("properties", {}).get("enablePurgeProtection") for r in evaluation.resources)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"githubRepository": "not-a-repo"}, "backend-iac:githubRepository"),
        ({"appServiceSku": "X1"}, "backend-iac:appServiceSku"),
        ({"pythonVersion": "3.9"}, "backend-iac:pythonVersion"),
        ({"githubSubjectPrefix": "repo:o/r:ref:refs/heads/main"}, "backend-iac:githubSubjectPrefix"),
        ({"postgresAuth": "password"}, "backend-iac:postgresAuth"),
        ({"azure-native:location": None}, "azure-native:location"),
    ],
)
def test_invalid_config_fails_naming_the_key(
    evaluate: Evaluate, overrides: dict[str, object], key: str
) -> None:
    """The program refuses invalid config before declaring anything, naming the key."""
    with pytest.raises(StackConfigError) as caught:
        evaluate(**overrides)
    assert key in caught.value.problems
    assert key in str(caught.value)


def test_missing_stack_file_is_a_file_error(tmp_path: Path) -> None:
    """A stack with no Pulumi.<stack>.yaml is reported as such."""
    with pytest.raises(StackFileError, match=r"Pulumi\.yaml: not found"):
        evaluate_stack(tmp_path, "nope")


def test_evaluations_in_one_process_are_independent(evaluate_afresh: Evaluate) -> None:
    """Evaluating twice in one process gives each run only its own resources."""
    first = evaluate_afresh()
    second = evaluate_afresh(enablePostgres=True)
    assert first.of_type(SERVER) == []
    assert len(second.of_type(SERVER)) == 1
    assert len(second.of_type(WEB_APP)) == 1


def test_program_itself_refuses_invalid_config_with_a_run_error() -> None:
    """Run by the Pulumi CLI, the program stops with a RunError naming the key (no traceback shown)."""
    import runpy

    import pulumi

    from backend_iac.evaluate import run_under_mocks

    config = {
        "azure-native:location": "westeurope",
        "backend-iac:githubRepository": "no-slash",
    }
    with pytest.raises(pulumi.RunError, match=r"backend-iac:githubRepository"):
        run_under_mocks(
            lambda: runpy.run_path(str(REPO / "stack" / "__main__.py"), run_name="__pulumi__"),
            stack="bad",
            config=config,
        )
