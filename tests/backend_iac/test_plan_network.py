"""`backend-iac plan` with the database on a private network: the network, the integration and its cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_iac.evaluate import DeclaredResource
from backend_iac.pricing import (
    PRIVATE_DNS_QUERIES_PER_MILLION,
    PRIVATE_DNS_ZONE_MONTHLY,
    estimate_monthly_cost,
)
from tests.backend_iac.test_plan import plan, stack_root

ZONE = "backend-iac-check.private.postgres.database.azure.com"


def test_private_plan_shows_network_delegations_zone_server_and_integration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """enablePostgres alone: the VNet, both delegations, the linked zone, a private server, a routed site."""
    code, out, _ = plan(capsys, "--stack", "check", "--root", str(stack_root(tmp_path, enablePostgres=True)))
    assert code == 0, out
    assert (
        "azure-native:network:VirtualNetwork  network-vnet\n    addressSpace.addressPrefixes: 10.20.0.0/22"
        in out
    )
    assert "addressPrefix: 10.20.0.0/26\n    delegations: Microsoft.Web/serverFarms" in out
    assert "addressPrefix: 10.20.1.0/27\n    delegations: Microsoft.DBforPostgreSQL/flexibleServers" in out
    assert f"azure-native:privatedns:PrivateZone  network-postgres-dns\n    privateZoneName: {ZONE}" in out
    assert "virtualNetwork.id: /subscriptions/" in out
    assert "/virtualNetworks/network-vnet\n    registrationEnabled: false" in out
    assert "network.publicNetworkAccess: Disabled" in out
    assert "network.delegatedSubnetResourceId: /subscriptions/" in out
    assert "azure-native:dbforpostgresql:FirewallRule" not in out
    assert "virtualNetworkSubnetId: /subscriptions/" in out
    assert "siteConfig.vnetRouteAllEnabled: true" in out
    assert f"${PRIVATE_DNS_ZONE_MONTHLY:>8.2f}  Private DNS zone {ZONE}" in out
    assert "Private DNS queries, up to 1 million ($0.40 per million)" in out
    assert "Virtual network network-vnet: free" in out
    assert "passed, no violations" in out


def test_public_plan_shows_the_firewall_rule_and_no_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """postgresNetwork: public prints today's server: the Azure-services rule and no network resources."""
    root = stack_root(tmp_path, enablePostgres=True, postgresNetwork="public")
    code, out, _ = plan(capsys, "--stack", "check", "--root", str(root))
    assert code == 0, out
    assert "azure-native:dbforpostgresql:FirewallRule" in out
    assert "network.publicNetworkAccess: Enabled" in out
    assert "azure-native:network:" not in out
    assert "Private DNS" not in out


def test_private_dns_zone_is_priced_with_its_queries() -> None:
    """A zone costs its monthly fee plus the assumed queries; VNet, subnets and the link cost nothing."""
    resources = [
        DeclaredResource("azure-native:privatedns:PrivateZone", "z", {"privateZoneName": ZONE}),
        DeclaredResource("azure-native:network:VirtualNetwork", "v", {}),
        DeclaredResource("azure-native:network:Subnet", "s", {}),
        DeclaredResource("azure-native:privatedns:VirtualNetworkLink", "l", {}),
    ]
    estimate = estimate_monthly_cost(resources, "eastus")
    assert estimate.monthly_usd == round(PRIVATE_DNS_ZONE_MONTHLY + PRIVATE_DNS_QUERIES_PER_MILLION, 2)
    assert estimate.unpriced == ()
    assert {item.resource for item in estimate.items if item.monthly_usd == 0} == {"v", "s", "l"}
