"""WebApp: a Linux App Service plan and the Python web app that runs the service on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network, web

from service.startup import HEALTH_PATH

HEALTH_CHECK_PATH = HEALTH_PATH  # the path the service answers liveness on (service/startup.py)


@dataclass
class WebAppArgs:
    """What the web app needs; app settings arrive complete (the program decides their values)."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    sku_name: str
    sku_tier: str
    instance_count: int
    python_version: str
    startup_command: str
    identity_id: pulumi.Input[str]
    app_settings: Mapping[str, pulumi.Input[str]]
    tags: Mapping[str, str] = field(default_factory=dict)
    # The user-assigned identity that resolves @Microsoft.KeyVault(...) references, when there are any.
    key_vault_reference_identity_id: pulumi.Input[str] | None = None
    # What must exist before the site starts (the database, its Entra admin, the Key Vault role): App
    # Service resolves a Key Vault reference at start, and one that fails stays literal until a restart.
    start_after: Sequence[pulumi.Resource] = ()
    # Regional VNet integration: the subnet delegated to Microsoft.Web/serverFarms that all the app's
    # outbound traffic goes through (how it reaches a private database). None: no integration.
    integration_subnet: network.Subnet | None = None


class WebApp(pulumi.ComponentResource):
    """Linux App Service plan + web app: HTTPS only, TLS 1.2+, no FTP or basic auth, health-checked."""

    site_id: pulumi.Output[str]
    name: pulumi.Output[str]
    default_host_name: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("backend-iac:index:WebApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnet = args.integration_subnet
        # The subnet's delegation exists before the integration that needs it (it is part of the Subnet
        # resource, and the site reads the subnet's id). The plan waits for it too, so that `pulumi destroy`
        # deletes the plan first: the subnet's service association link belongs to the plan, and a subnet
        # still linked cannot be deleted ("Subnet ... is in use by .../serviceAssociationLinks/
        # AppServiceLink": MicrosoftDocs/azure-docs#116634, Azure/deployment-stacks#150).
        integrated = [subnet] if subnet is not None else []

        plan = web.AppServicePlan(
            f"{name}-plan",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="linux",
            reserved=True,  # Linux: without it ARM creates a Windows plan whatever `kind` says.
            sku=web.SkuDescriptionArgs(name=args.sku_name, tier=args.sku_tier, capacity=args.instance_count),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=integrated),
        )
        site = web.WebApp(
            f"{name}-site",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="app,linux",
            server_farm_id=plan.id,
            https_only=True,
            client_affinity_enabled=False,  # a stateless API: let the front end balance every request
            identity=web.ManagedServiceIdentityArgs(
                type=web.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[args.identity_id],
            ),
            key_vault_reference_identity=args.key_vault_reference_identity_id,
            virtual_network_subnet_id=subnet.id if subnet is not None else None,
            # All outbound traffic through the VNet: `outboundVnetRouting.applicationTraffic` is the current
            # name of `vnetRouteAllEnabled` (pulumi-azure-native web.OutboundVnetRoutingArgs); the site
            # setting is the one Microsoft recommends auditing (configure-vnet-integration-routing.md).
            outbound_vnet_routing=(
                web.OutboundVnetRoutingArgs(application_traffic=True) if subnet is not None else None
            ),
            site_config=web.SiteConfigArgs(
                linux_fx_version=f"PYTHON|{args.python_version}",
                app_command_line=args.startup_command,
                always_on=True,
                http20_enabled=True,
                min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                ftps_state=web.FtpsState.DISABLED,
                health_check_path=HEALTH_CHECK_PATH,
                vnet_route_all_enabled=True if subnet is not None else None,
                app_settings=[
                    web.NameValuePairArgs(name=key, value=value) for key, value in args.app_settings.items()
                ],
            ),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.start_after, *integrated]),
        )
        # Basic-auth publishing (FTP and the SCM/Kudu site) off: deploys sign in with OIDC and Entra only.
        web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth",
            resource_group_name=args.resource_group_name,
            name=site.name,
            allow=False,
            opts=child,
        )
        web.WebAppScmAllowed(
            f"{name}-scm-basic-auth",
            resource_group_name=args.resource_group_name,
            name=site.name,
            allow=False,
            opts=child,
        )

        self.site_id = site.id  # the ARM id: what diagnostic settings attach to
        self.name = site.name
        self.default_host_name = site.default_host_name
        self.url = pulumi.Output.concat("https://", site.default_host_name)
        self.register_outputs(
            {"name": self.name, "default_host_name": self.default_host_name, "url": self.url}
        )
