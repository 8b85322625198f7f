"""The policy pack in private mode: no firewall, no public access, the web app in the database's network."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend_iac.evaluate import DeclaredResource
from tests.policy.test_policy_rules import BASIC_AUTH_OFF, Resource, evaluate, policies_hit, site

VNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/net"
OTHER_VNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/elsewhere"
SERVER = "azure-native:dbforpostgresql:Server"
FIREWALL = "azure-native:dbforpostgresql:FirewallRule"
ANY = "0.0.0.0"  # noqa: S104 - a firewall rule's address, not a bind address


def server(*, private: bool = True, access: str = "Disabled") -> Resource:
    network: dict[str, Any] = {"publicNetworkAccess": access}
    if private:
        network["delegatedSubnetResourceId"] = f"{VNET}/subnets/db"
        network["privateDnsZoneArmResourceId"] = "/privateDnsZones/x.private.postgres.database.azure.com"
    return Resource(
        SERVER, "db-server", {"version": "16", "sku": {"name": "Standard_B1ms"}, "network": network}
    )


def routed_site(subnet: str | None = f"{VNET}/subnets/app", **routing: Any) -> Resource:
    resource = site(**routing)
    if subnet is not None:
        resource.inputs["virtualNetworkSubnetId"] = subnet
    return resource


def firewall(server_name: str = "db-server") -> Resource:
    return Resource(FIREWALL, "rule", {"serverName": server_name, "startIpAddress": ANY, "endIpAddress": ANY})


ROUTE_ALL = {"siteConfig__vnetRouteAllEnabled": True}


def test_private_server_with_public_access_is_refused() -> None:
    """A server in a delegated subnet that leaves public network access on is reported."""
    assert "postgres-private-no-public-access" in policies_hit(server(access="Enabled"))
    assert "postgres-private-no-public-access" not in policies_hit(server())


def test_public_server_may_keep_public_access() -> None:
    """The rule is about private mode: a public server with public access is not reported by it."""
    assert "postgres-private-no-public-access" not in policies_hit(server(private=False, access="Enabled"))


def test_firewall_rule_on_a_private_server_is_refused() -> None:
    """In private mode no firewall rule may be declared for the server, not even Azure services."""
    hit = policies_hit(server(), firewall(), routed_site(**ROUTE_ALL), *BASIC_AUTH_OFF)
    assert hit == {"postgres-private-no-firewall"}


def test_firewall_rule_on_a_public_server_is_allowed() -> None:
    """With a public server the Azure-services rule is today's behaviour and passes."""
    assert policies_hit(server(private=False, access="Enabled"), firewall(), site(), *BASIC_AUTH_OFF) == set()


def test_web_app_outside_any_network_is_refused_when_the_database_is_private() -> None:
    """A web app with no VNet integration cannot reach a private database."""
    assert "web-app-in-database-network" in policies_hit(server(), routed_site(None), *BASIC_AUTH_OFF)


def test_web_app_in_another_network_is_refused() -> None:
    """Integration with some other VNet does not reach the database's."""
    hit = policies_hit(server(), routed_site(f"{OTHER_VNET}/subnets/app", **ROUTE_ALL), *BASIC_AUTH_OFF)
    assert "web-app-in-database-network" in hit


def test_web_app_that_does_not_route_all_traffic_is_refused() -> None:
    """Integrated with the right VNet but routing only part of its traffic there is reported."""
    assert "web-app-in-database-network" in policies_hit(server(), routed_site(), *BASIC_AUTH_OFF)


@pytest.mark.parametrize(
    "routing",
    [
        ROUTE_ALL,
        {"outboundVnetRouting": {"applicationTraffic": True}},
        {"outboundVnetRouting": {"allTraffic": True}},
    ],
)
def test_web_app_in_the_database_network_routing_all_traffic_passes(routing: dict[str, Any]) -> None:
    """Either way of routing all traffic, in the database's VNet (ids compared case-insensitively), passes."""
    resource = routed_site(f"{VNET.upper()}/subnets/app")
    for key, value in routing.items():
        if key.startswith("siteConfig__"):
            resource.inputs["siteConfig"][key.removeprefix("siteConfig__")] = value
        else:
            resource.inputs[key] = value
    assert policies_hit(server(), resource, *BASIC_AUTH_OFF) == set()


def test_no_private_database_means_no_network_requirement() -> None:
    """Without a private server a web app needs no integration."""
    assert policies_hit(server(private=False, access="Enabled"), site(), *BASIC_AUTH_OFF) == set()


def test_real_private_stack_refuses_its_public_variants(tmp_path: Path) -> None:
    """The real program in private mode passes; adding a firewall rule, public access or an unrouted site fails."""
    from policy.rules import check

    resources = list(evaluate(tmp_path, enablePostgres=True).resources)
    assert check(resources) == []
    server_index = next(i for i, r in enumerate(resources) if r.type == SERVER)
    site_index = next(i for i, r in enumerate(resources) if r.type == "azure-native:web:WebApp")
    real_server = resources[server_index]

    rule = DeclaredResource(
        FIREWALL,
        "db-anywhere",
        {"serverName": real_server.name, "startIpAddress": ANY, "endIpAddress": ANY},
    )
    assert {v.policy for v in check([*resources, rule])} == {"postgres-private-no-firewall"}

    public = copy.deepcopy(dict(real_server.inputs))
    public["network"]["publicNetworkAccess"] = "Enabled"
    opened = [*resources]
    opened[server_index] = replace(real_server, inputs=public)
    assert {v.policy for v in check(opened)} == {"postgres-private-no-public-access"}

    unrouted_inputs = copy.deepcopy(dict(resources[site_index].inputs))
    del unrouted_inputs["virtualNetworkSubnetId"]
    unrouted = [*resources]
    unrouted[site_index] = replace(resources[site_index], inputs=unrouted_inputs)
    assert {v.policy for v in check(unrouted)} == {"web-app-in-database-network"}
