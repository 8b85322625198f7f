"""The policy pack: each policy reports a violating resource and passes a compliant one."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend_iac.evaluate import Evaluation, evaluate_stack
from policy.rules import ALLOWED_PLAN_SKUS, POLICIES, PolicyConfigError, check, load_pack_config
from stack.config import APP_SERVICE_SKU_TIERS

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)


SITE = {
    "httpsOnly": True,
    "siteConfig": {
        "minTlsVersion": "1.2",
        "scmMinTlsVersion": "1.2",
        "ftpsState": "Disabled",
        "healthCheckPath": "/healthz",
        "appSettings": [
            {"name": "APP_ENV", "value": "production"},
            {"name": "DATABASE_URL", "value": "postgresql://app-identity@db:5432/backend?sslmode=require"},
        ],
    },
}


def site(**changes: Any) -> Resource:
    inputs = copy.deepcopy(SITE)
    for path, value in changes.items():
        target = inputs
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return Resource("azure-native:web:WebApp", "site", inputs)


ANY = "0.0.0.0"  # noqa: S104 - a firewall rule's address, not a bind address
BASIC_AUTH_OFF = (
    Resource("azure-native:web:WebAppFtpAllowed", "ftp", {"allow": False}),
    Resource("azure-native:web:WebAppScmAllowed", "scm", {"allow": False}),
)


def policies_hit(*resources: Resource) -> set[str]:
    return {violation.policy for violation in check(resources)}


def test_every_policy_has_a_unique_name() -> None:
    """Policy names are unique within the pack (the engine requires it)."""
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names))


def test_compliant_web_app_passes_every_resource_policy() -> None:
    """A hardened site with passwordless settings and basic auth off violates nothing."""
    assert policies_hit(site(), *BASIC_AUTH_OFF) == set()


@pytest.mark.parametrize(
    ("change", "policy"),
    [
        ({"httpsOnly": False}, "web-app-https-only"),
        ({"siteConfig__minTlsVersion": "1.0"}, "web-app-min-tls-1-2"),
        ({"siteConfig__scmMinTlsVersion": "1.1"}, "web-app-min-tls-1-2"),
        ({"siteConfig__ftpsState": "FtpsOnly"}, "web-app-ftps-disabled"),
        ({"siteConfig__healthCheckPath": ""}, "web-app-health-check"),
    ],
)
def test_web_app_violations_are_reported(change: dict[str, Any], policy: str) -> None:
    """Each weakened web app setting is reported by its policy."""
    assert policy in policies_hit(site(**change))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://admin:hunter2@db.example:5432/app"),
        ("STORAGE", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc123=="),
        ("API_TOKEN", "abc"),
        ("CLIENT_SECRET", "xyz"),
    ],
)
def test_plaintext_secret_in_app_settings_is_reported(name: str, value: str) -> None:
    """A credential in a plain app setting (URL password, key=value secret, secret-named) is reported."""
    weak = site(siteConfig__appSettings=[{"name": name, "value": value}])
    assert "no-plaintext-secrets-in-app-settings" in policies_hit(weak)


def test_plaintext_secret_in_connection_strings_is_reported() -> None:
    """Connection strings are checked too."""
    weak = site(siteConfig__connectionStrings=[{"name": "db", "connectionString": "Server=x;Password=p"}])
    assert "no-plaintext-secrets-in-app-settings" in policies_hit(weak)


def test_key_vault_reference_is_not_a_plaintext_secret() -> None:
    """A Key Vault reference is how a secret-named setting should look: compliant."""
    ok = site(
        siteConfig__appSettings=[
            {
                "name": "DATABASE_PASSWORD",
                "value": "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/p)",
            }
        ]
    )
    assert policies_hit(ok, *BASIC_AUTH_OFF) == set()


@pytest.mark.parametrize(
    "policy_type", ["azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"]
)
def test_basic_auth_publishing_left_on_is_reported(policy_type: str) -> None:
    """FTP or SCM basic-auth publishing allowed is reported; disallowed is not."""
    assert "basic-publishing-auth-disabled" in policies_hit(Resource(policy_type, "p", {"allow": True}))
    assert "basic-publishing-auth-disabled" not in policies_hit(Resource(policy_type, "p", {"allow": False}))


def test_web_app_without_basic_auth_resources_is_reported() -> None:
    """A web app whose stack never turns basic-auth publishing off fails the stack policy."""
    assert "basic-publishing-auth-declared" in policies_hit(site())
    assert "basic-publishing-auth-declared" not in policies_hit(site(), *BASIC_AUTH_OFF)


@pytest.mark.parametrize(
    ("start", "end", "violates"),
    [
        (ANY, "255.255.255.255", True),
        ("10.0.0.0", "10.255.255.255", True),
        (ANY, ANY, False),
        ("203.0.113.7", "203.0.113.7", False),
    ],
)
def test_postgres_open_to_the_internet_is_reported(start: str, end: str, violates: bool) -> None:
    """A wide firewall range is reported; the Azure-services marker and a single address are not."""
    rule = Resource(
        "azure-native:dbforpostgresql:FirewallRule", "r", {"startIpAddress": start, "endIpAddress": end}
    )
    assert ("postgres-not-public" in policies_hit(rule)) is violates


@pytest.mark.parametrize(("version", "violates"), [("12", True), ("13", True), ("16", False), ("17", False)])
def test_retired_postgres_version_is_reported(version: str, violates: bool) -> None:
    """A retired PostgreSQL major is reported; a supported one is not."""
    server = Resource(
        "azure-native:dbforpostgresql:Server", "s", {"version": version, "sku": {"name": "Standard_B1ms"}}
    )
    assert ("postgres-supported-version" in policies_hit(server)) is violates


@pytest.mark.parametrize(
    ("resource", "violates"),
    [
        (Resource("azure-native:web:AppServicePlan", "p", {"sku": {"name": "B1"}}), False),
        (Resource("azure-native:web:AppServicePlan", "p", {"sku": {"name": "I1v2"}}), True),
        (
            Resource(
                "azure-native:dbforpostgresql:Server",
                "s",
                {"version": "16", "sku": {"name": "Standard_B1ms"}},
            ),
            False,
        ),
        (
            Resource(
                "azure-native:dbforpostgresql:Server",
                "s",
                {"version": "16", "sku": {"name": "Standard_D16s_v3"}},
            ),
            True,
        ),
    ],
)
def test_sku_outside_the_allowed_list_is_reported(resource: Resource, violates: bool) -> None:
    """The cost guard reports SKUs outside the allowed list and passes those inside it."""
    assert ("sku-allowed" in policies_hit(resource)) is violates


def test_sku_allowed_list_is_configurable() -> None:
    """Per-policy config widens the cost guard, as `pulumi config` for the pack would."""
    plan = Resource("azure-native:web:AppServicePlan", "p", {"sku": {"name": "I1v2"}})
    assert check([plan], {"sku-allowed": {"allowedPlanSkus": ["I1v2"]}}) == []


def evaluate(tmp_path: Path, **config: Any) -> Evaluation:
    (tmp_path / "Pulumi.yaml").write_text(
        (REPO / "Pulumi.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    base = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text(encoding="utf-8"))["config"]
    base.update({f"backend-iac:{key}": value for key, value in config.items()})
    (tmp_path / "Pulumi.check.yaml").write_text(yaml.safe_dump({"config": base}), encoding="utf-8")
    return evaluate_stack(tmp_path, "check", program=REPO)


def test_dev_stack_passes_the_pack() -> None:
    """The committed dev stack violates no policy."""
    assert check(evaluate_stack(REPO, "dev").resources) == []


@pytest.mark.parametrize("auth", ["managed-identity", "password"])
def test_stack_with_postgres_passes_the_pack(tmp_path: Path, auth: str) -> None:
    """With Postgres on, in either auth mode, the stack still violates no policy."""
    assert check(evaluate(tmp_path, enablePostgres=True, postgresAuth=auth).resources) == []


def test_the_default_pack_allows_every_sku_the_stack_config_accepts() -> None:
    """One source of truth: the cost guard's defaults and policy/config.json admit exactly the config's SKUs."""
    assert tuple(APP_SERVICE_SKU_TIERS) == ALLOWED_PLAN_SKUS
    assert load_pack_config(REPO)["sku-allowed"]["allowedPlanSkus"] == list(APP_SERVICE_SKU_TIERS)
    for sku in APP_SERVICE_SKU_TIERS:
        plan = Resource("azure-native:web:AppServicePlan", "p", {"sku": {"name": sku}})
        assert check([plan], load_pack_config(REPO)) == [], sku


def test_stack_with_a_sku_the_pack_config_narrows_away_fails_the_cost_guard(tmp_path: Path) -> None:
    """A valid SKU that policy/config.json no longer allows is declared fine and then stopped by the guard."""
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "config.json").write_text(
        json.dumps({"sku-allowed": {"allowedPlanSkus": ["B1"]}}), encoding="utf-8"
    )
    violations = check(evaluate(tmp_path, appServiceSku="P3v3").resources, load_pack_config(tmp_path))
    assert [v.policy for v in violations] == ["sku-allowed"]
    assert "policy/config.json" in violations[0].message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"no-such-policy": {}}', "not a policy of this pack"),
        ('{"sku-allowed": {"allowedPlanSkus": "B1"}}', "list of SKU names"),
        ('{"sku-allowed": 3}', "object or an enforcement level"),
    ],
)
def test_a_malformed_pack_config_is_refused_with_the_reason(
    tmp_path: Path, text: str, complaint: str
) -> None:
    """The pack config file is type-checked before use; the error names the file and what is wrong."""
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "config.json").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyConfigError, match=complaint) as raised:
        load_pack_config(tmp_path)
    assert "policy/config.json" in str(raised.value)


def test_only_the_entry_file_constructs_the_pack() -> None:
    """PolicyPack (which starts a server and blocks) is built in policy/__main__.py and nowhere else."""
    builders = [
        p.name for p in (REPO / "policy").glob("*.py") if "PolicyPack(" in p.read_text(encoding="utf-8")
    ]
    assert builders == ["__main__.py"]
