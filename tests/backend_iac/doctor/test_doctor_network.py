"""Runtime: a web app whose database is private must be routed into the database's network."""

from __future__ import annotations

from tests.backend_iac.doctor.conftest import Tree, of, only

INTEGRATION = "integration_subnet=private_network.app_subnet if private_network is not None else None,"


def unroute_web_app(tree: Tree) -> None:
    """The tree's own program declares its web app without VNet integration: the one thing these tests break."""
    tree.replace("stack/program.py", INTEGRATION, "integration_subnet=None,")


def test_private_database_with_an_unrouted_web_app(tree: Tree) -> None:
    """Postgres private (the default) and a web app outside the network: an error at postgresNetwork."""
    unroute_web_app(tree)
    tree.set_config(enablePostgres=True)
    finding = only(of(tree.findings(), "private-database-not-routed"))
    assert (finding.layer, finding.severity) == ("runtime", "error")
    assert "not integrated with any virtual network" in finding.message
    assert finding.file == "Pulumi.yaml"
    declared = tree.read("Pulumi.yaml").splitlines().index("  postgresNetwork:") + 1
    assert finding.line == declared


def test_private_database_with_the_real_web_app_is_fine(tree: Tree) -> None:
    """The real program routes the web app into the network: no network finding."""
    tree.set_config(enablePostgres=True, postgresNetwork="private")
    assert of(tree.findings(), "private-database-not-routed") == []


def test_public_database_needs_no_routing(tree: Tree) -> None:
    """With postgresNetwork: public there is no network for the web app to be in."""
    unroute_web_app(tree)
    tree.set_config(enablePostgres=True, postgresNetwork="public")
    assert of(tree.findings(), "private-database-not-routed") == []
