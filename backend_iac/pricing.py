"""A small price table and the monthly cost estimate `backend-iac plan` prints.

An estimate, not a quote: Azure list prices, pay-as-you-go, USD, Linux, no reservations or savings
plans, 730 hours a month, before tax and data transfer. The figures are the East US retail prices as
published by the Azure Retail Prices API (https://prices.azure.com/api/retail/prices) and the pricing
pages (azure.microsoft.com/pricing/details/app-service/linux/ and .../postgresql/flexible-server/),
recorded on PRICES_AS_OF; they were not re-fetched offline. Other regions use the East US figure and
say so: most differ by a few percent, some (Brazil, Switzerland, Australia) by 20-50%.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # the protocol only: importing policy.rules starts pulumi_policy, which plan may not need
    from policy.rules import Declared

PRICES_AS_OF: Final = "2025-06-01"
PRICE_SOURCE: Final = "Azure Retail Prices API / azure.microsoft.com pricing pages, East US, pay-as-you-go"
PRICED_REGION: Final = "eastus"
HOURS_PER_MONTH: Final = 730

# USD per instance-hour, Linux App Service plans.
# Basic (B1-B3) corrected on 2026-11-29 (issue 9): B1 $0.017/h is $12.41 for 730 hours, the figure the
# Azure pricing calculator gives for "Basic Tier; 1 B1 ... x 730 Hours; Linux OS" (quoted in
# PacktPublishing/ASP.NET-8.0-Core-Essentials, Chapter10/README.md, an East US 2 estimate; East US is the
# same list price per the check). B2 $0.034/h and B3 $0.067/h are the checked figures; I
# found no second public source for them ("unchecked" by this change). The other tiers are as recorded
# on PRICES_AS_OF.
APP_SERVICE_HOURLY: Final[Mapping[str, float]] = {
    "B1": 0.017,
    "B2": 0.034,
    "B3": 0.067,
    "S1": 0.095,
    "S2": 0.190,
    "S3": 0.380,
    "P0v3": 0.077,
    "P1v3": 0.155,
    "P2v3": 0.310,
    "P3v3": 0.620,
}
# USD per server-hour, Azure Database for PostgreSQL Flexible Server compute.
POSTGRES_HOURLY: Final[Mapping[str, float]] = {
    "Standard_B1ms": 0.017,
    "Standard_B2s": 0.068,
}
# USD per provisioned GB-month of Premium SSD storage (backup up to the provisioned size is free).
POSTGRES_STORAGE_GB_MONTH: Final = 0.115
# Azure Private DNS: USD per hosted zone-month (first 25 zones) and per million queries (first billion).
# The official page (azure.microsoft.com/pricing/details/dns/) renders its table client-side; the figures
# are from infracost's golden test for azurerm_private_dns_zone (West US, $0.50 a zone-month; infracost/
# infracost internal/providers/terraform/azure/testdata/private_dns_zone_test, read 2026-11-29) and a
# 2025-08-25 Private Link cost guide (gigxp.com: $0.50 a zone, $0.40 a million queries).
PRIVATE_DNS_ZONE_MONTHLY: Final = 0.50
PRIVATE_DNS_QUERIES_PER_MILLION: Final = 0.40
# The web app resolves the server's name when it opens a connection (its pool keeps them open), so a
# million lookups a month is a generous ceiling for one small service; stated in the line item.
ASSUMED_DNS_QUERIES_MILLIONS: Final = 1
# Virtual networks and subnets cost nothing (azure.microsoft.com/pricing/details/virtual-network/: "There
# is no charge for using Azure VNet"); VNet integration is included in Basic and above App Service plans.
NETWORK_FREE_TYPES: Final[Mapping[str, str]] = {
    "azure-native:network:VirtualNetwork": "Virtual network",
    "azure-native:network:Subnet": "Subnet",
    "azure-native:privatedns:VirtualNetworkLink": "Private DNS zone link",
}
# Log Analytics, Analytics Logs plan, pay-as-you-go: USD per GB ingested (Application Insights data in a
# workspace-based resource is billed here too), and the ingestion Microsoft gives away each month. Read
# 2026-11-29 from third-party summaries of azure.microsoft.com/pricing/details/monitor/ (monitoringcost.com
# "Azure Monitor cost 2026"; api-evangelist azure-log-analytics plans): $2.30/GB East US, first 5 GB a
# month free, 31 days of retention included. Microsoft's page itself was not reachable offline: unchecked
# against it. Whether the 5 GB is per workspace or per billing account differs between sources, so the
# plan also prints the worst case with no allowance left.
LOG_ANALYTICS_GB: Final = 2.30
LOG_ANALYTICS_FREE_GB_PER_MONTH: Final = 5.0
LOG_ANALYTICS_INCLUDED_RETENTION_DAYS: Final = 31
DAYS_PER_MONTH: Final = HOURS_PER_MONTH / 24
# Directory objects in Microsoft Entra ID: no Azure charge per app registration, service principal,
# pre-authorization or app role assignment (they count against the tenant's directory object quota; the
# Entra ID editions are priced per user, not per object: azure.microsoft.com/pricing/details/microsoft-entra,
# not re-fetched this session).
ENTRA_TYPES: Final = frozenset(
    {
        "azuread:index/application:Application",
        "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri",
        "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized",
        "azuread:index/servicePrincipal:ServicePrincipal",
        "azuread:index/appRoleAssignment:AppRoleAssignment",
    }
)
# Free (or priced per operation, a few cents a month here): named so the plan can say so.
FREE_TYPES: Final = frozenset(
    {
        "azure-native:resources:ResourceGroup",
        "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:managedidentity:FederatedIdentityCredential",
        "azure-native:authorization:RoleAssignment",
        "azure-native:web:WebApp",  # billed through its plan
        "azure-native:keyvault:Vault",  # $0.03 per 10,000 secret operations
        *NETWORK_FREE_TYPES,
        "azure-native:applicationinsights:Component",  # workspace-based: billed through its workspace
        "azure-native:monitor:DiagnosticSetting",  # what it sends is billed as workspace ingestion
    }
    | ENTRA_TYPES
)


@dataclass(frozen=True)
class LineItem:
    resource: str
    description: str
    monthly_usd: float


@dataclass(frozen=True)
class CostEstimate:
    """Monthly USD estimate, its line items, and anything that could not be priced."""

    items: tuple[LineItem, ...]
    unpriced: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def monthly_usd(self) -> float:
        return round(sum(item.monthly_usd for item in self.items), 2)


def estimate_monthly_cost(resources: Iterable[Declared], location: str | None) -> CostEstimate:
    """Price the plan and the database from the table; everything else declared here is free."""
    items: list[LineItem] = []
    unpriced: list[str] = []
    declared = list(resources)
    extra_notes: list[str] = []
    for resource in declared:
        sku = str((resource.inputs.get("sku") or {}).get("name"))
        if resource.type == "azure-native:web:AppServicePlan":
            count = int((resource.inputs.get("sku") or {}).get("capacity") or 1)
            if sku in APP_SERVICE_HOURLY:
                monthly = APP_SERVICE_HOURLY[sku] * HOURS_PER_MONTH * count
                items.append(
                    LineItem(resource.name, f"App Service plan {sku} (Linux) x {count}", round(monthly, 2))
                )
            else:
                unpriced.append(f"{resource.name}: App Service SKU {sku} is not in the price table")
        elif resource.type == "azure-native:dbforpostgresql:Server":
            storage = int((resource.inputs.get("storage") or {}).get("storageSizeGB") or 32)
            if sku in POSTGRES_HOURLY:
                compute = POSTGRES_HOURLY[sku] * HOURS_PER_MONTH
                items.append(LineItem(resource.name, f"PostgreSQL Flexible Server {sku}", round(compute, 2)))
                items.append(
                    LineItem(
                        resource.name,
                        f"PostgreSQL storage {storage} GB",
                        round(storage * POSTGRES_STORAGE_GB_MONTH, 2),
                    )
                )
            else:
                unpriced.append(f"{resource.name}: PostgreSQL SKU {sku} is not in the price table")
        elif resource.type == "azure-native:privatedns:PrivateZone":
            zone = resource.inputs.get("privateZoneName") or resource.name
            items.append(LineItem(resource.name, f"Private DNS zone {zone}", PRIVATE_DNS_ZONE_MONTHLY))
            items.append(
                LineItem(
                    resource.name,
                    f"Private DNS queries, up to {ASSUMED_DNS_QUERIES_MILLIONS} million "
                    f"(${PRIVATE_DNS_QUERIES_PER_MILLION:.2f} per million)",
                    round(ASSUMED_DNS_QUERIES_MILLIONS * PRIVATE_DNS_QUERIES_PER_MILLION, 2),
                )
            )
        elif resource.type in NETWORK_FREE_TYPES:
            items.append(
                LineItem(resource.name, f"{NETWORK_FREE_TYPES[resource.type]} {resource.name}: free", 0.0)
            )
        elif resource.type == "azure-native:operationalinsights:Workspace":
            item, note = _log_workspace_cost(resource)
            if item is None:
                unpriced.append(note)
            else:
                items.append(item)
                extra_notes.append(note)
    notes = [
        f"estimate: {PRICE_SOURCE}, prices as of {PRICES_AS_OF}; excludes tax and data transfer",
        *extra_notes,
    ]
    entra = sorted({resource.name for resource in declared if resource.type in ENTRA_TYPES})
    if entra:
        notes.append(f"Entra ID objects ({', '.join(entra)}): $0, directory objects carry no Azure charge")
    if location and location.replace(" ", "").lower() != PRICED_REGION:
        notes.append(f"{location} priced at East US rates; the region's own prices may differ")
    return CostEstimate(tuple(items), tuple(unpriced), tuple(notes))


def _log_workspace_cost(resource: Declared) -> tuple[LineItem | None, str]:
    """The workspace's monthly ingestion at its daily cap (the most it can bill), less the free allowance."""
    cap = (resource.inputs.get("workspaceCapping") or {}).get("dailyQuotaGb")
    if not isinstance(cap, int | float) or cap <= 0:
        return None, f"{resource.name}: Log Analytics workspace without a daily cap: its cost is unbounded"
    worst_gb = cap * DAYS_PER_MONTH
    billed_gb = max(0.0, worst_gb - LOG_ANALYTICS_FREE_GB_PER_MONTH)
    item = LineItem(
        resource.name,
        f"Log Analytics ingestion at the {cap:g} GB/day cap ({worst_gb:.2f} GB/month at most, "
        f"{LOG_ANALYTICS_FREE_GB_PER_MONTH:g} GB free)",
        round(billed_gb * LOG_ANALYTICS_GB, 2),
    )
    note = (
        f"{resource.name}: worst case with the monthly free {LOG_ANALYTICS_FREE_GB_PER_MONTH:g} GB already used "
        f"elsewhere: ${worst_gb * LOG_ANALYTICS_GB:.2f}/month ({worst_gb:.2f} GB x ${LOG_ANALYTICS_GB:.2f}/GB); "
        "Application Insights data counts against the same cap"
    )
    retention = resource.inputs.get("retentionInDays")
    if isinstance(retention, int | float) and retention > LOG_ANALYTICS_INCLUDED_RETENTION_DAYS:
        note += (
            f"; retention beyond {LOG_ANALYTICS_INCLUDED_RETENTION_DAYS} days is billed and not priced here"
        )
    return item, note
