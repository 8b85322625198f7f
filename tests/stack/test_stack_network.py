"""The database on a private network: config, the PrivateNetwork component, and the order things happen in."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_iac.evaluate import DeclaredResource, Evaluation, evaluate_stack
from stack.components.network import PrivateNetwork, PrivateNetworkArgs, dns_zone_name
from stack.components.postgres import PostgresDatabase, PostgresPrivateAccess
from stack.config import StackConfigError, parse_stack_config
from tests.stack.conftest import BASE_CONFIG, REPO, Evaluate, write_stack
from tests.stack.test_stack_components import TAGS, declare, postgres_args, types_and_names
from tests.stack.test_stack_config import DEFAULTS

SERVER = "azure-native:dbforpostgresql:Server"
FIREWALL = "azure-native:dbforpostgresql:FirewallRule"
WEB_APP = "azure-native:web:WebApp"
SUBNET = "azure-native:network:Subnet"
VNET = "azure-native:network:VirtualNetwork"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"


def network_problems(**changes: str) -> dict[str, str]:
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config({**DEFAULTS, **changes}, stack="test", location="westeurope")
    return caught.value.problems


def by_name(evaluation: Evaluation) -> dict[str, DeclaredResource]:
    return {resource.name: resource for resource in evaluation.resources}


def one(evaluation: Evaluation, type_token: str) -> DeclaredResource:
    found = evaluation.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


# --- config ----------------------------------------------------------------------------------------------


def test_private_is_the_default_with_ranges_that_fit() -> None:
    """Pulumi.yaml's defaults: private, a /22 holding a /26 for App Service and a /27 for PostgreSQL."""
    config = parse_stack_config({**DEFAULTS, "enablePostgres": "true"}, stack="dev", location="westeurope")
    assert config.postgres_network == "private"
    assert config.private_database is True
    assert (config.vnet_address_space, config.app_subnet_prefix, config.postgres_subnet_prefix) == (
        "10.20.0.0/22",
        "10.20.0.0/26",
        "10.20.1.0/27",
    )


def test_public_mode_or_no_database_declares_no_private_database() -> None:
    """public, or Postgres off, means no private database whatever postgresNetwork says."""
    public = parse_stack_config(
        {**DEFAULTS, "enablePostgres": "true", "postgresNetwork": "public"},
        stack="dev",
        location="westeurope",
    )
    assert public.private_database is False
    assert parse_stack_config(DEFAULTS, stack="dev", location="westeurope").private_database is False


def test_unknown_network_mode_is_refused_and_warns_about_replacement() -> None:
    """postgresNetwork other than private/public is named, and the message says a change replaces the server."""
    message = network_problems(postgresNetwork="vnet")["backend-iac:postgresNetwork"]
    assert "private or public" in message
    assert "replaces the server" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("vnetAddressSpace", "10.20.0.0"),
        ("vnetAddressSpace", "10.20.0.1/22"),  # host bits set
        ("appSubnetPrefix", "fd00::/64"),
        ("postgresSubnetPrefix", "not-a-range"),
    ],
)
def test_malformed_ranges_are_refused_naming_the_key(key: str, value: str) -> None:
    """Each range must be an IPv4 CIDR without host bits; the bad key is named."""
    assert "IPv4 range" in network_problems(**{key: value})[f"backend-iac:{key}"]


@pytest.mark.parametrize("key", ["appSubnetPrefix", "postgresSubnetPrefix"])
def test_subnets_smaller_than_a_28_are_refused(key: str) -> None:
    """Both App Service integration and a Flexible Server's delegated subnet need at least a /28."""
    message = network_problems(**{key: "10.20.2.0/29"})[f"backend-iac:{key}"]
    assert "too small" in message
    assert "/28" in message


def test_a_28_is_accepted() -> None:
    """The documented minimum itself passes."""
    config = parse_stack_config(
        {**DEFAULTS, "appSubnetPrefix": "10.20.2.0/28", "postgresSubnetPrefix": "10.20.2.16/28"},
        stack="dev",
        location="westeurope",
    )
    assert config.app_subnet_prefix == "10.20.2.0/28"


def test_overlapping_subnets_are_refused() -> None:
    """Two delegations cannot share addresses: the overlap is reported on postgresSubnetPrefix."""
    message = network_problems(postgresSubnetPrefix="10.20.0.32/27")["backend-iac:postgresSubnetPrefix"]
    assert "overlaps appSubnetPrefix" in message


def test_subnet_outside_the_vnet_is_refused() -> None:
    """A subnet must lie inside vnetAddressSpace."""
    message = network_problems(appSubnetPrefix="10.30.0.0/26")["backend-iac:appSubnetPrefix"]
    assert "outside vnetAddressSpace" in message


def test_dns_zone_name_is_one_label_before_the_private_suffix() -> None:
    """Stack names with dots or capitals still give one valid label under .private.postgres.database.azure.com."""
    assert (
        dns_zone_name("backend-iac", "Prod.EU_1")
        == "backend-iac-prod-eu-1.private.postgres.database.azure.com"
    )


# --- the component ---------------------------------------------------------------------------------------


def network_args() -> PrivateNetworkArgs:
    return PrivateNetworkArgs(
        resource_group_name="rg",
        location="westeurope",
        address_space="10.20.0.0/22",
        app_subnet_prefix="10.20.0.0/26",
        postgres_subnet_prefix="10.20.1.0/27",
        dns_zone_name="unit.private.postgres.database.azure.com",
        tags=TAGS,
    )


def test_network_component_declares_vnet_delegated_subnets_and_linked_zone() -> None:
    """PrivateNetwork: its own type, a VNet, two delegated subnets, a zone and the zone's VNet link."""
    evaluation = declare(lambda: PrivateNetwork("net", network_args()))
    assert types_and_names(evaluation) == {
        ("backend-iac:index:PrivateNetwork", "net"),
        (VNET, "net-vnet"),
        (SUBNET, "net-app-subnet"),
        (SUBNET, "net-postgres-subnet"),
        (ZONE, "net-postgres-dns"),
        (LINK, "net-postgres-dns-link"),
    }
    resources = by_name(evaluation)
    assert resources["net-vnet"].inputs["addressSpace"] == {"addressPrefixes": ["10.20.0.0/22"]}
    app, database = resources["net-app-subnet"].inputs, resources["net-postgres-subnet"].inputs
    assert app["addressPrefix"] == "10.20.0.0/26"
    assert [d["serviceName"] for d in app["delegations"]] == ["Microsoft.Web/serverFarms"]
    assert database["addressPrefix"] == "10.20.1.0/27"
    assert [d["serviceName"] for d in database["delegations"]] == [
        "Microsoft.DBforPostgreSQL/flexibleServers"
    ]
    assert database["serviceEndpoints"] == [{"service": "Microsoft.Storage"}]
    zone, link = resources["net-postgres-dns"].inputs, resources["net-postgres-dns-link"].inputs
    assert zone["privateZoneName"] == "unit.private.postgres.database.azure.com"
    assert zone["location"] == link["location"] == "Global"
    assert link["privateZoneName"] == "unit.private.postgres.database.azure.com"
    assert link["virtualNetwork"]["id"].endswith("/virtualNetworks/net-vnet")
    assert link["registrationEnabled"] is False


def test_network_component_orders_its_own_writes() -> None:
    """Subnets and the link wait for the VNet; the second subnet waits for the first; the link for the zone."""
    resources = by_name(declare(lambda: PrivateNetwork("net", network_args())))
    assert "net-vnet" in resources["net-app-subnet"].depends_on
    assert "net-app-subnet" in resources["net-postgres-subnet"].depends_on
    assert {"net-vnet", "net-postgres-dns"} <= set(resources["net-postgres-dns-link"].depends_on)


def test_postgres_component_with_private_access_has_no_firewall_and_no_public_access() -> None:
    """PostgresDatabase with private access: the subnet and zone on the server, public access off, no rule."""
    args = postgres_args("managed-identity")
    args.private_access = PostgresPrivateAccess(
        delegated_subnet_id="/subnets/db", private_dns_zone_id="/privateDnsZones/zone"
    )
    evaluation = declare(lambda: PostgresDatabase("data", args))
    assert evaluation.of_type(FIREWALL) == []
    assert one(evaluation, SERVER).inputs["network"] == {
        "delegatedSubnetResourceId": "/subnets/db",
        "privateDnsZoneArmResourceId": "/privateDnsZones/zone",
        "publicNetworkAccess": "Disabled",
    }
    resources = by_name(evaluation)
    assert "data-require-tls" in resources["data-database"].depends_on


# --- the whole program -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    """The program with enablePostgres alone (so private by default), evaluated once for the tests below."""
    root: Path = tmp_path_factory.mktemp("private")
    write_stack(root, "test", {**BASE_CONFIG, "backend-iac:enablePostgres": True})
    return evaluate_stack(root, "test", program=REPO)


def test_private_mode_declares_the_network_and_a_server_without_public_access(
    private_stack: Evaluation,
) -> None:
    """enablePostgres alone: the network, a server in its subnet with private DNS, no firewall rule."""
    evaluation = private_stack
    resources = by_name(evaluation)
    assert evaluation.of_type(FIREWALL) == []
    network = one(evaluation, SERVER).inputs["network"]
    assert network["publicNetworkAccess"] == "Disabled"
    assert network["delegatedSubnetResourceId"].endswith(
        "/virtualNetworks/network-vnet/subnets/network-postgres-subnet"
    )
    zone = resources["network-postgres-dns"].inputs["privateZoneName"]
    assert zone == "backend-iac-test.private.postgres.database.azure.com"
    assert network["privateDnsZoneArmResourceId"].endswith(f"/privateDnsZones/{zone}")


def test_private_mode_routes_all_the_web_apps_traffic_through_its_subnet(private_stack: Evaluation) -> None:
    """The web app joins the App Service subnet and sends all outbound traffic into the VNet."""
    site = one(private_stack, WEB_APP).inputs
    assert site["virtualNetworkSubnetId"].endswith("/virtualNetworks/network-vnet/subnets/network-app-subnet")
    assert site["siteConfig"]["vnetRouteAllEnabled"] is True
    assert site["outboundVnetRouting"] == {"applicationTraffic": True}


def test_dns_zone_link_exists_before_the_server(private_stack: Evaluation) -> None:
    """The server waits for the zone's VNet link and its delegated subnet (and is destroyed before them)."""
    server = by_name(private_stack)["db-server"]
    assert {"network-postgres-dns-link", "network-postgres-subnet", "network-postgres-dns"} <= set(
        server.depends_on
    )


@pytest.mark.parametrize("network", ["private", "public"])
def test_moving_the_server_between_networks_replaces_it(evaluate: Evaluate, network: str) -> None:
    """Azure fixes a server's networking at creation: a new delegated subnet (or none) means a new server."""
    server = one(evaluate(enablePostgres=True, postgresNetwork=network), SERVER)
    assert server.replace_on_changes == ("network.delegatedSubnetResourceId",)


def test_subnet_delegation_exists_before_the_web_apps_integration(private_stack: Evaluation) -> None:
    """The site and its plan wait for the delegated App Service subnet, so destroy removes them first."""
    resources = by_name(private_stack)
    assert "network-app-subnet" in resources["app-site"].depends_on
    assert "network-app-subnet" in resources["app-plan"].depends_on


def test_public_mode_keeps_the_azure_services_rule_and_declares_no_network(evaluate: Evaluate) -> None:
    """postgresNetwork: public is today's server: public endpoint, Azure-services rule, no VNet, no integration."""
    evaluation = evaluate(enablePostgres=True, postgresNetwork="public")
    assert one(evaluation, SERVER).inputs["network"] == {"publicNetworkAccess": "Enabled"}
    assert len(evaluation.of_type(FIREWALL)) == 1
    assert evaluation.of_type(VNET) == evaluation.of_type(SUBNET) == evaluation.of_type(ZONE) == []
    assert "virtualNetworkSubnetId" not in one(evaluation, WEB_APP).inputs


def test_no_database_declares_no_network(evaluate: Evaluate) -> None:
    """Postgres off: no network at all, even though postgresNetwork defaults to private."""
    evaluation = evaluate()
    assert evaluation.of_type(VNET) == []
    assert "virtualNetworkSubnetId" not in one(evaluation, WEB_APP).inputs


def test_invalid_range_stops_the_program_naming_the_key(evaluate: Evaluate) -> None:
    """An overlapping subnet in the stack file is refused before anything is declared."""
    with pytest.raises(StackConfigError) as caught:
        evaluate(enablePostgres=True, postgresSubnetPrefix="10.20.0.0/27")
    assert "backend-iac:postgresSubnetPrefix" in caught.value.problems
