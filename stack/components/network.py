"""PrivateNetwork: the virtual network that keeps PostgreSQL off the internet.

One VNet, two delegated subnets (App Service's outbound integration; PostgreSQL Flexible Server), and a
private DNS zone linked to the VNet, in which the server registers its private address. Sources:
- App Service VNet integration needs an empty subnet delegated to Microsoft.Web/serverFarms, a /28 at
  least (MicrosoftDocs/azure-docs articles/app-service/configure-vnet-integration-enable.md).
- A server with private access needs a subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers (a
  /28 at least) and a private DNS zone whose name ends in `.postgres.database.azure.com`, not of the form
  `<server name>.postgres.database.azure.com`; the VNet must be linked to the zone for names to resolve
  (MicrosoftDocs/azure-docs articles/postgresql/flexible-server/concepts-networking-private.md). The same
  page asks for the Microsoft.Storage service endpoint on the server's subnet (Azure adds it by default;
  declaring it keeps a later subnet update from taking it away).
- Private DNS zones and their links live in location "Global" (pulumi-azure-native's privatedns
  VirtualNetworkLink example, registry docs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
from pulumi_azure_native import network, privatedns

APP_SERVICE_DELEGATION: Final = "Microsoft.Web/serverFarms"
POSTGRES_DELEGATION: Final = "Microsoft.DBforPostgreSQL/flexibleServers"
DNS_ZONE_SUFFIX: Final = ".private.postgres.database.azure.com"
GLOBAL_LOCATION: Final = "Global"


def dns_zone_name(project: str, stack: str) -> str:
    """`<project>-<stack>.private.postgres.database.azure.com`, one DNS label before the suffix.

    The `.private.` label keeps the zone from ever equalling `<server name>.postgres.database.azure.com`.
    """
    label = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{stack}".lower()).strip("-")[:63].strip("-")
    return f"{label}{DNS_ZONE_SUFFIX}"


@dataclass
class PrivateNetworkArgs:
    """Where the network goes and its address ranges (validated by stack.config: IPv4, inside, no overlap)."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    address_space: str
    app_subnet_prefix: str
    postgres_subnet_prefix: str
    dns_zone_name: str
    tags: Mapping[str, str] = field(default_factory=dict)


class PrivateNetwork(pulumi.ComponentResource):
    """VNet + App Service subnet + PostgreSQL subnet + private DNS zone linked to the VNet."""

    vnet_id: pulumi.Output[str]
    app_subnet_id: pulumi.Output[str]
    postgres_subnet_id: pulumi.Output[str]
    dns_zone_id: pulumi.Output[str]
    # Resources others must wait for (and outlive them on destroy), beyond what their ids already carry.
    app_subnet: network.Subnet
    postgres_subnet: network.Subnet
    dns_zone_link: privatedns.VirtualNetworkLink

    def __init__(
        self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("backend-iac:index:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Subnets are separate resources, not inline `subnets`: since azure-native v2 a VNet update leaves
        # subnets it does not declare alone (pulumi/pulumi-azure-native#611, closed).
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            tags=dict(args.tags),
            opts=child,
        )
        app_subnet = network.Subnet(
            f"{name}-app-subnet",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            address_prefix=args.app_subnet_prefix,
            delegations=[network.DelegationArgs(name="app-service", service_name=APP_SERVICE_DELEGATION)],
            opts=child,
        )
        # One subnet write at a time on a VNet: ARM serialises them and may answer a concurrent one with
        # "AnotherOperationInProgress" (unchecked for this provider's retries; the wait costs seconds).
        postgres_subnet = network.Subnet(
            f"{name}-postgres-subnet",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            address_prefix=args.postgres_subnet_prefix,
            delegations=[network.DelegationArgs(name="postgres", service_name=POSTGRES_DELEGATION)],
            service_endpoints=[network.ServiceEndpointPropertiesFormatArgs(service="Microsoft.Storage")],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[app_subnet]),
        )
        zone = privatedns.PrivateZone(
            f"{name}-postgres-dns",
            resource_group_name=args.resource_group_name,
            private_zone_name=args.dns_zone_name,
            location=GLOBAL_LOCATION,
            tags=dict(args.tags),
            opts=child,
        )
        link = privatedns.VirtualNetworkLink(
            f"{name}-postgres-dns-link",
            resource_group_name=args.resource_group_name,
            private_zone_name=zone.name,
            location=GLOBAL_LOCATION,
            virtual_network=privatedns.SubResourceArgs(id=vnet.id),
            # Only the server writes records here (Azure does it); nothing else auto-registers.
            registration_enabled=False,
            tags=dict(args.tags),
            opts=child,
        )

        self.app_subnet = app_subnet
        self.postgres_subnet = postgres_subnet
        self.dns_zone_link = link
        self.vnet_id = vnet.id
        self.app_subnet_id = app_subnet.id
        self.postgres_subnet_id = postgres_subnet.id
        self.dns_zone_id = zone.id
        self.register_outputs(
            {
                "vnet_id": self.vnet_id,
                "app_subnet_id": self.app_subnet_id,
                "postgres_subnet_id": self.postgres_subnet_id,
                "dns_zone_id": self.dns_zone_id,
            }
        )
