"""PostgresDatabase: an Azure Database for PostgreSQL Flexible Server, one database, and how the app signs in.

managed-identity (default): Entra authentication only; the web app's user-assigned identity is the
server's Entra administrator and signs in with a token, so no password exists anywhere.
password: a generated administrator password that lives only as a Pulumi secret and in Key Vault; the
web app's DATABASE_URL is a Key Vault reference, never the connection string itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, dbforpostgresql, keyvault

from stack import azure_roles
from stack.config import PostgresAuth

POSTGRES_VERSION: Final = "16"
SKU_NAME: Final = "Standard_B1ms"
SKU_TIER: Final = "Burstable"
STORAGE_GB: Final = 32
PORT: Final = 5432
# ARM's name for the special 0.0.0.0-0.0.0.0 rule: traffic from inside Azure only, never the internet.
AZURE_SERVICES_RULE: Final = "AllowAllAzureServicesAndResourcesWithinAzureIps"


@dataclass
class PostgresPrivateAccess:
    """Private access: the delegated subnet, the private DNS zone, and what must exist before the server.

    `ready` holds the zone's VNet link: the server registers its address in the zone at creation and is
    reachable by name only through a linked VNet (MicrosoftDocs/azure-docs articles/postgresql/flexible-
    server/concepts-networking-private.md; the azurerm provider's flexible-server example makes the server
    depend on the link for the same reason). Waiting on it also makes `pulumi destroy` delete the server
    before the link, the zone and the subnet it sits in.
    """

    delegated_subnet_id: pulumi.Input[str]
    private_dns_zone_id: pulumi.Input[str]
    ready: Sequence[pulumi.Resource] = ()


@dataclass
class PostgresDatabaseArgs:
    """The server's placement, the database, and the identity the web app signs in with."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    database_name: str
    auth: PostgresAuth
    # The web app's user-assigned identity: Entra principal (managed-identity) or Key Vault reader (password).
    app_identity_name: pulumi.Input[str]
    app_identity_principal_id: pulumi.Input[str]
    admin_login: str = "backendadmin"
    tags: Mapping[str, str] = field(default_factory=dict)
    # None: a public endpoint admitting Azure services only (firewall rule 0.0.0.0).
    private_access: PostgresPrivateAccess | None = None


class PostgresDatabase(pulumi.ComponentResource):
    """Flexible Server 16 (Burstable B1ms, 32 GB), TLS required, one database; private access (a delegated
    subnet, no public endpoint, no firewall) or a public endpoint admitting Azure services only."""

    host: pulumi.Output[str]
    database_name: pulumi.Output[str]
    database_auth: str
    # What the web app's DATABASE_URL app setting holds: the passwordless URL, or a Key Vault reference.
    database_url_setting: pulumi.Output[str]

    def __init__(
        self, name: str, args: PostgresDatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("backend-iac:index:PostgresDatabase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        passwordless = args.auth == "managed-identity"

        password: random.RandomPassword | None = None
        admin_password: pulumi.Output[str] | None = None
        if not passwordless:
            password = random.RandomPassword(
                f"{name}-admin-password", length=32, special=False, opts=child
            )  # letters and digits only: the password goes into a URL unescaped by some clients
            # RandomPassword marks its result secret; saying so here keeps it secret whatever that does.
            admin_password = pulumi.Output.secret(password.result)

        server = dbforpostgresql.Server(
            f"{name}-server",
            resource_group_name=args.resource_group_name,
            location=args.location,
            version=POSTGRES_VERSION,
            sku=dbforpostgresql.SkuArgs(name=SKU_NAME, tier=SKU_TIER),
            storage=dbforpostgresql.StorageArgs(storage_size_gb=STORAGE_GB, auto_grow="Disabled"),
            backup=dbforpostgresql.BackupArgs(backup_retention_days=7, geo_redundant_backup="Disabled"),
            high_availability=dbforpostgresql.HighAvailabilityArgs(mode="Disabled"),
            auth_config=dbforpostgresql.AuthConfigArgs(
                active_directory_auth="Enabled" if passwordless else "Disabled",
                password_auth="Disabled" if passwordless else "Enabled",
                tenant_id=args.tenant_id if passwordless else None,
            ),
            administrator_login=None if passwordless else args.admin_login,
            administrator_login_password=admin_password,
            network=_network(args.private_access),
            tags=dict(args.tags),
            # Azure fixes a server's networking at creation ("You can't change your networking option
            # after the server is created": concepts-networking.md), so moving between public and private
            # is a replacement, and Pulumi says so in the preview instead of failing mid-update.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.private_access.ready) if args.private_access else [],
                replace_on_changes=["network.delegatedSubnetResourceId"],
            ),
        )

        # A Flexible Server runs one management operation at a time ("ServerBusy" otherwise), so its
        # children are created one after another rather than all at once.
        def after(previous: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[previous])

        # Explicit (it is also Azure's default) so a review, and the policy pack, can see TLS is required.
        tls = dbforpostgresql.Configuration(
            f"{name}-require-tls",
            resource_group_name=args.resource_group_name,
            server_name=server.name,
            configuration_name="require_secure_transport",
            value="on",
            source="user-override",
            opts=after(server),
        )
        previous: pulumi.Resource = tls
        if args.private_access is None:
            # A server with private access has no firewall: the VNet is its only way in.
            previous = dbforpostgresql.FirewallRule(
                f"{name}-azure-services",
                resource_group_name=args.resource_group_name,
                server_name=server.name,
                firewall_rule_name=AZURE_SERVICES_RULE,
                start_ip_address="0.0.0.0",  # noqa: S104 - ARM's marker for "Azure services", not a bind address
                end_ip_address="0.0.0.0",  # noqa: S104
                opts=after(tls),
            )
        database = dbforpostgresql.Database(
            f"{name}-database",
            resource_group_name=args.resource_group_name,
            server_name=server.name,
            database_name=args.database_name,
            charset="UTF8",
            collation="en_US.utf8",
            opts=after(previous),
        )
        host = server.fully_qualified_domain_name.apply(lambda fqdn: fqdn or "")

        if passwordless:
            dbforpostgresql.Administrator(
                f"{name}-entra-admin",
                resource_group_name=args.resource_group_name,
                server_name=server.name,
                object_id=args.app_identity_principal_id,
                principal_name=args.app_identity_name,
                principal_type="ServicePrincipal",
                tenant_id=args.tenant_id,
                opts=after(database),
            )
            url_setting = pulumi.Output.format(
                "postgresql://{0}@{1}:{2}/{3}?sslmode=require",
                args.app_identity_name,
                host,
                PORT,
                args.database_name,
            )
        else:
            assert admin_password is not None  # noqa: S101 - narrowing for mypy: password mode built it above
            url_setting = self._key_vault_reference(name, args, host, admin_password, child)

        self.host = host
        self.database_name = database.name
        self.database_auth = "managed-identity" if passwordless else "password"
        self.database_url_setting = url_setting
        self.register_outputs({"host": self.host, "database_name": self.database_name})

    def _key_vault_reference(
        self,
        name: str,
        args: PostgresDatabaseArgs,
        host: pulumi.Output[str],
        password: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """Keep the password-bearing URL in Key Vault; return the reference App Service resolves at start."""
        vault = keyvault.Vault(
            f"{name}-kv",  # auto-named with a random suffix: a soft-deleted vault never blocks a re-create
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                # Purge protection would keep the vault (and its name) for the whole retention period.
                enable_purge_protection=None,
                soft_delete_retention_in_days=7,
            ),
            tags=dict(args.tags),
            opts=child,
        )
        url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql://{0}:{1}@{2}:{3}/{4}?sslmode=require",
                args.admin_login,
                password.apply(lambda value: quote(value, safe="")),
                host,
                PORT,
                args.database_name,
            )
        )
        secret = keyvault.Secret(
            f"{name}-database-url",
            resource_group_name=args.resource_group_name,
            vault_name=vault.name,
            secret_name="database-url",  # noqa: S106 - the secret's name, not its value
            properties=keyvault.SecretPropertiesArgs(value=url, content_type="text/uri"),
            opts=child,
        )
        authorization.RoleAssignment(
            f"{name}-kv-secrets-user",
            principal_id=args.app_identity_principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=azure_roles.role_definition_id(
                args.subscription_id, azure_roles.KEY_VAULT_SECRETS_USER
            ),
            scope=vault.id,
            description="The web app reads its DATABASE_URL secret (Key Vault reference).",
            opts=child,
        )
        # Versionless URI: App Service picks up a rotated secret without a redeploy.
        secret_uri = secret.properties.apply(lambda properties: properties.secret_uri)
        return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


def _network(private_access: PostgresPrivateAccess | None) -> dbforpostgresql.NetworkArgs:
    """Public endpoint, or the delegated subnet and private DNS zone with public access stated off."""
    if private_access is None:
        return dbforpostgresql.NetworkArgs(public_network_access="Enabled")
    return dbforpostgresql.NetworkArgs(
        delegated_subnet_resource_id=private_access.delegated_subnet_id,
        private_dns_zone_arm_resource_id=private_access.private_dns_zone_id,
        # ARM reports Disabled for a VNet-integrated server anyway; stated so the policy pack can see it.
        public_network_access="Disabled",
    )
