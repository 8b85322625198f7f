"""The whole stack, from a validated StackConfig: resource group, identities, the API's app registration,
web app, optional database."""

from __future__ import annotations

from typing import Final

import pulumi
from pulumi_azure_native import authorization, managedidentity, resources

from service.startup import STARTUP_COMMAND
from service.startup import TELEMETRY_CONNECTION_STRING_SETTING as TELEMETRY_SETTING
from stack.components.api_registration import ApiRegistration, ApiRegistrationArgs
from stack.components.github_oidc import GitHubOidc, GitHubOidcArgs
from stack.components.monitoring import Monitoring, MonitoringArgs
from stack.components.network import PrivateNetwork, PrivateNetworkArgs, dns_zone_name
from stack.components.postgres import PostgresDatabase, PostgresDatabaseArgs, PostgresPrivateAccess
from stack.components.web_app import WebApp, WebAppArgs
from stack.config import APP_SERVICE_SKU_TIERS, StackConfig
from stack.github_subjects import subjects_for

# Oryx builds the zip's requirements.txt into a virtualenv during the deployment, never at container
# start; App Service then unpacks that build when the container starts. 600 s leaves room for that on a
# B1 after a deploy (the default 230 s does not always), and still fails a broken start within the
# 10 minutes the deploy workflow's runtime gate waits.
CONTAINER_START_TIME_LIMIT_SECONDS: Final = 600


def app_settings(
    config: StackConfig,
    identity_client_id: pulumi.Input[str],
    *,
    auth_issuer: pulumi.Input[str],
    auth_audience: pulumi.Input[str],
) -> dict[str, pulumi.Input[str]]:
    """The settings every deployment has; database settings are added by the caller when Postgres is on."""
    return {
        "APP_ENV": "production",
        "AUTH_ISSUER": auth_issuer,
        "AUTH_AUDIENCE": auth_audience,
        "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
        "WEBSITES_CONTAINER_START_TIME_LIMIT": str(CONTAINER_START_TIME_LIMIT_SECONDS),
        # azure-identity picks the user-assigned identity by this client id (there is no system identity).
        "AZURE_CLIENT_ID": identity_client_id,
    }


def define_stack(config: StackConfig) -> dict[str, pulumi.Input[str]]:
    """Declare every resource; return the stack outputs (nothing secret among them)."""
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(
        "resource-group",
        resource_group_name=config.resource_group_name,
        location=config.location,
        tags=config.tags,
    )
    # The web app's own identity exists before the server, so it can be the database's Entra principal.
    app_identity = managedidentity.UserAssignedIdentity(
        "app-identity",
        resource_group_name=group.name,
        location=config.location,
        tags=config.tags,
    )

    # The CI identities come first: the API's registration makes the deploy identity its owner and gives
    # it the app role the runtime gate calls the API with.
    oidc = GitHubOidc(
        "github",
        GitHubOidcArgs(
            resource_group_name=group.name,
            resource_group_id=group.id,
            location=config.location,
            subscription_id=client.subscription_id,
            subjects=subjects_for(
                config.github_repository,
                branches=config.github_branches,
                tags=config.github_tags,
                environments=config.github_environments,
                pull_requests=config.github_pull_requests,
                subject_prefix=config.github_subject_prefix,
            ),
            tags=config.tags,
        ),
    )
    registration: ApiRegistration | None = None
    auth_issuer: pulumi.Input[str] = config.auth_issuer
    auth_audience: pulumi.Input[str] = config.auth_audience
    if config.declares_api_registration:
        registration = ApiRegistration(
            "api",
            ApiRegistrationArgs(
                display_name=f"{config.project}-{config.stack} API",
                tenant_id=client.tenant_id,
                deploy_principal_id=oidc.deploy_principal_id,
            ),
        )
        auth_issuer, auth_audience = registration.issuer, registration.audience

    settings = app_settings(
        config, app_identity.client_id, auth_issuer=auth_issuer, auth_audience=auth_audience
    )
    database: PostgresDatabase | None = None
    private_network: PrivateNetwork | None = None
    if config.private_database:
        private_network = PrivateNetwork(
            "network",
            PrivateNetworkArgs(
                resource_group_name=group.name,
                location=config.location,
                address_space=config.vnet_address_space,
                app_subnet_prefix=config.app_subnet_prefix,
                postgres_subnet_prefix=config.postgres_subnet_prefix,
                dns_zone_name=dns_zone_name(config.project, config.stack),
                tags=config.tags,
            ),
        )
    if config.enable_postgres:
        database = PostgresDatabase(
            "db",
            PostgresDatabaseArgs(
                resource_group_name=group.name,
                location=config.location,
                tenant_id=client.tenant_id,
                subscription_id=client.subscription_id,
                database_name=config.postgres_database_name,
                auth=config.postgres_auth,
                app_identity_name=app_identity.name,
                app_identity_principal_id=app_identity.principal_id,
                admin_login=config.postgres_admin_login,
                tags=config.tags,
                private_access=(
                    PostgresPrivateAccess(
                        delegated_subnet_id=private_network.postgres_subnet_id,
                        private_dns_zone_id=private_network.dns_zone_id,
                        ready=[private_network.dns_zone_link, private_network.postgres_subnet],
                    )
                    if private_network is not None
                    else None
                ),
            ),
        )
        settings["DATABASE_AUTH"] = database.database_auth
        settings["DATABASE_URL"] = database.database_url_setting

    monitoring: Monitoring | None = None
    if config.enable_monitoring:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                resource_group_name=group.name,
                location=config.location,
                daily_cap_gb=config.monitoring_daily_cap_gb,
                tags=config.tags,
            ),
        )
        # The service turns telemetry on when this is set (service/telemetry.py); not a secret (see
        # stack/components/monitoring.py), and never a stack output.
        settings[TELEMETRY_SETTING] = monitoring.connection_string

    app = WebApp(
        "app",
        WebAppArgs(
            resource_group_name=group.name,
            location=config.location,
            sku_name=config.app_service_sku,
            sku_tier=APP_SERVICE_SKU_TIERS[config.app_service_sku],
            instance_count=config.instance_count,
            python_version=config.python_version,
            startup_command=STARTUP_COMMAND,
            identity_id=app_identity.id,
            app_settings=settings,
            key_vault_reference_identity_id=(
                app_identity.id if database is not None and database.database_auth == "password" else None
            ),
            tags=config.tags,
            start_after=[database] if database is not None else [],
            integration_subnet=private_network.app_subnet if private_network is not None else None,
        ),
    )
    if monitoring is not None:
        monitoring.collect_web_app_logs(app.site_id)

    outputs: dict[str, pulumi.Input[str]] = {
        "resource_group": group.name,
        "web_app_name": app.name,
        "default_host_name": app.default_host_name,
        "url": app.url,
        "ci_identity_client_id": oidc.deploy_client_id,
        "tenant_id": client.tenant_id,
        "subscription_id": client.subscription_id,
        "auth_issuer": auth_issuer,
        "auth_audience": auth_audience,
    }
    if registration is not None:
        outputs["api_client_id"] = registration.client_id
        outputs["api_identifier_uri"] = registration.identifier_uri
    if oidc.preview_client_id is not None:
        outputs["ci_preview_identity_client_id"] = oidc.preview_client_id
    if database is not None:
        outputs["database_host"] = database.host
    return outputs
