"""Runtime: a web app whose database is private must be routed into the database's network."""

from __future__ import annotations

import dataclasses

import pulumi
import pytest

from stack.components.web_app import WebApp, WebAppArgs
from tests.backend_iac.doctor.conftest import Tree, of, only


class UnroutedWebApp(WebApp):
    """The real WebApp, declared without its VNet integration: the one thing these tests break."""

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, dataclasses.replace(args, integration_subnet=None), opts)


def test_private_database_with_an_unrouted_web_app(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """Postgres private (the default) and a web app outside the network: an error at postgresNetwork."""
    monkeypatch.setattr("stack.program.WebApp", UnroutedWebApp)
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


def test_public_database_needs_no_routing(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """With postgresNetwork: public there is no network for the web app to be in."""
    monkeypatch.setattr("stack.program.WebApp", UnroutedWebApp)
    tree.set_config(enablePostgres=True, postgresNetwork="public")
    assert of(tree.findings(), "private-database-not-routed") == []
