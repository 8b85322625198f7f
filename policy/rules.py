"""The CrossGuard policies for this stack, importable without starting a policy pack.

`policy/__main__.py` wraps POLICIES in a PolicyPack (which starts a gRPC server and blocks); tests and
`backend-iac plan` call `check` instead, which runs the very same validation functions over resources
declared under Pulumi's mocks. Properties are read as the engine passes them: camelCase input names.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

WEB_APP: Final = "azure-native:web:WebApp"
APP_SETTINGS: Final = "azure-native:web:WebAppApplicationSettings"
PLAN: Final = "azure-native:web:AppServicePlan"
FTP_ALLOWED: Final = "azure-native:web:WebAppFtpAllowed"
SCM_ALLOWED: Final = "azure-native:web:WebAppScmAllowed"
PG_SERVER: Final = "azure-native:dbforpostgresql:Server"
PG_FIREWALL_RULE: Final = "azure-native:dbforpostgresql:FirewallRule"
LOG_WORKSPACE: Final = "azure-native:operationalinsights:Workspace"
# Longer than this, retention is a cost (beyond the included 31 days) nobody decided on (issue 13).
MAX_WORKSPACE_RETENTION_DAYS: Final = 90
# Settings whose names look secret but whose values Microsoft documents as not secret. The value checks
# (a password in a URL, AccountKey=...) still apply to them.
# APPLICATIONINSIGHTS_CONNECTION_STRING: "Ikey unique identifiers aren't security tokens or security
# keys, and aren't considered secrets" (learn.microsoft.com/azure/azure-monitor/app/sdk-connection-string).
NOT_SECRET_SETTINGS: Final = frozenset({"APPLICATIONINSIGHTS_CONNECTION_STRING"})

# Cost guard defaults: every App Service SKU the stack config accepts (stack.config.APP_SERVICE_SKU_TIERS;
# a test keeps the two equal), so a valid config never fails the default pack. Narrow or widen the guard in
# PACK_CONFIG_FILE, which `backend-iac plan` reads and `pulumi preview --policy-pack-config` takes.
ALLOWED_PLAN_SKUS: Final = ("B1", "B2", "B3", "S1", "S2", "S3", "P0v3", "P1v3", "P2v3", "P3v3")
ALLOWED_POSTGRES_SKUS: Final = ("Standard_B1ms", "Standard_B2s")
# Azure Database for PostgreSQL majors past (or at) the end of standard support, as of 2026-11.
RETIRED_POSTGRES_VERSIONS: Final = frozenset({"9.5", "9.6", "10", "11", "12", "13"})
# A firewall rule wider than this many addresses is "open to the internet" (a /24 is 256).
MAX_FIREWALL_RULE_ADDRESSES: Final = 256
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCOUNT_?KEY|PRIVATE_?KEY|CONNECTION_?STRING", re.I
)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]+:[^/@\s]+@", re.I)
_KEY_VALUE_SECRET = re.compile(r"(?:^|;)\s*(?:password|pwd|accountkey|sharedaccesskey)\s*=\s*[^;\s]", re.I)
_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("

ReportViolation = Callable[..., None]
# The pack's configuration, in the format of `pulumi preview --policy-pack-config FILE`: policy name ->
# {"enforcementLevel"?, <config properties>} or just an enforcement level string
# (https://www.pulumi.com/docs/iac/packages-and-automation/crossguard/configuration/).
PACK_CONFIG_FILE: Final = "policy/config.json"


def _site_config(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("siteConfig") or {}


def _web_app_https_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == WEB_APP and args.props.get("httpsOnly") is not True:
        report("httpsOnly must be true: plain HTTP would carry bearer tokens in the clear.")


def _web_app_min_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != WEB_APP:
        return
    config = _site_config(args.props)
    for key in ("minTlsVersion", "scmMinTlsVersion"):
        version = config.get(key)
        # minTlsVersion must be stated; the SCM site's may be left to Azure's default (1.2).
        if (key == "minTlsVersion" or version is not None) and str(version) not in ("1.2", "1.3"):
            report(f"siteConfig.{key} must be 1.2 or 1.3 (got {version!r}).")


def _web_app_ftps_off(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == WEB_APP and _site_config(args.props).get("ftpsState") != "Disabled":
        report(f"siteConfig.ftpsState must be Disabled (got {_site_config(args.props).get('ftpsState')!r}).")


def _basic_auth_resource_off(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in (FTP_ALLOWED, SCM_ALLOWED) and args.props.get("allow") is not False:
        report("Basic-auth publishing must be off (allow: false): deploys use OIDC and Entra only.")


def _basic_auth_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    sites = [r for r in args.resources if r.resource_type == WEB_APP]
    for policy_type in (FTP_ALLOWED, SCM_ALLOWED):
        off = [r for r in args.resources if r.resource_type == policy_type and r.props.get("allow") is False]
        if len(off) < len(sites):
            report(
                f"{len(sites)} web app(s) but {len(off)} {policy_type.rsplit(':', 1)[-1]} with allow: false; "
                "basic-auth publishing stays on unless the stack turns it off."
            )


def _web_app_health_check(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == WEB_APP and not _site_config(args.props).get("healthCheckPath"):
        report(
            "siteConfig.healthCheckPath must be set: App Service only replaces unhealthy instances it can probe."
        )


def _firewall_rule_size(start: str, end: str) -> int:
    return int(ipaddress.IPv4Address(end)) - int(ipaddress.IPv4Address(start)) + 1


def _postgres_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != PG_FIREWALL_RULE:
        return
    start, end = str(args.props.get("startIpAddress")), str(args.props.get("endIpAddress"))
    if start == end == "0.0.0.0":  # noqa: S104 - ARM's marker for "Azure services only"
        return
    try:
        size = _firewall_rule_size(start, end)
    except ValueError:
        report(f"Firewall rule {start}-{end} is not a valid IPv4 range.")
        return
    if size > MAX_FIREWALL_RULE_ADDRESSES:
        report(
            f"Firewall rule {start}-{end} admits {size} addresses: PostgreSQL must not be open to the internet."
        )


def _delegated_subnet(props: Mapping[str, Any]) -> str | None:
    """The subnet a server with private access (VNet integration) sits in; None for a public server."""
    subnet = (props.get("network") or {}).get("delegatedSubnetResourceId")
    return str(subnet) if subnet else None


def _vnet_of(subnet_id: object) -> str:
    """`.../virtualNetworks/<name>` of a subnet's ARM id, lower-cased (ARM ids compare case-insensitively)."""
    return str(subnet_id or "").lower().split("/subnets/", 1)[0]


def _postgres_private_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != PG_SERVER or _delegated_subnet(args.props) is None:
        return
    access = (args.props.get("network") or {}).get("publicNetworkAccess")
    if access != "Disabled":
        report(
            f"A server in a delegated subnet must declare network.publicNetworkAccess: Disabled (got {access!r}): "
            "private mode means no public endpoint."
        )


def _private_servers(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type == PG_SERVER and _delegated_subnet(r.props) is not None]


def _postgres_private_no_firewall(args: StackValidationArgs, report: ReportViolation) -> None:
    private = _private_servers(args.resources)
    names = {str(r.props.get("serverName") or r.name) for r in private}
    for rule in args.resources:
        if rule.resource_type != PG_FIREWALL_RULE or not private:
            continue
        target = rule.props.get("serverName")
        if target is None or str(target) in names:
            report(
                f"Firewall rule {rule.name} targets a server with private access: in private mode the VNet is "
                "the only way in, and no firewall rule may be declared."
            )


def _routes_all_traffic(props: Mapping[str, Any]) -> bool:
    routing = props.get("outboundVnetRouting") or {}
    return (
        _site_config(props).get("vnetRouteAllEnabled") is True
        or routing.get("applicationTraffic") is True
        or routing.get("allTraffic") is True
    )


def _web_app_in_database_network(args: StackValidationArgs, report: ReportViolation) -> None:
    """The stack's web apps use its database: with the database private, each must be routed into its VNet."""
    networks = {_vnet_of(_delegated_subnet(server.props)) for server in _private_servers(args.resources)}
    if not networks:
        return
    for site in (r for r in args.resources if r.resource_type == WEB_APP):
        subnet = site.props.get("virtualNetworkSubnetId")
        if not subnet:
            report(
                f"Web app {site.name} is not integrated with a virtual network, but its database has private "
                "access only: set virtualNetworkSubnetId to a subnet of the database's VNet."
            )
        elif _vnet_of(subnet) not in networks:
            report(
                f"Web app {site.name} is integrated with {_vnet_of(subnet)}, not the database's network "
                f"({', '.join(sorted(networks))})."
            )
        elif not _routes_all_traffic(site.props):
            report(
                f"Web app {site.name} does not route all outbound traffic into the VNet "
                "(siteConfig.vnetRouteAllEnabled or outboundVnetRouting.applicationTraffic)."
            )


def _postgres_supported_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == PG_SERVER and str(args.props.get("version")) in RETIRED_POSTGRES_VERSIONS:
        report(f"PostgreSQL {args.props.get('version')} is retired on Azure; use 16 or newer.")


def _setting_problem(name: str, value: object) -> str | None:
    text = "" if value is None else str(value)
    if not text or text.startswith(_KEY_VAULT_REFERENCE):
        return None
    if _URL_WITH_PASSWORD.match(text) or _KEY_VALUE_SECRET.search(text):
        return f"{name} holds a credential in plain text; use a Key Vault reference or managed identity."
    if _SECRET_NAME.search(name) and name not in NOT_SECRET_SETTINGS:
        return f"{name} looks like a secret set in plain text; use a Key Vault reference (@Microsoft.KeyVault(...))."
    return None


def _no_plaintext_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pairs: list[tuple[str, object]] = []
    if args.resource_type == WEB_APP:
        config = _site_config(args.props)
        pairs += [(str(s.get("name")), s.get("value")) for s in config.get("appSettings") or []]
        pairs += [
            (str(c.get("name")), c.get("connectionString")) for c in config.get("connectionStrings") or []
        ]
    elif args.resource_type == APP_SETTINGS:
        pairs += list((args.props.get("properties") or {}).items())
    for name, value in pairs:
        problem = _setting_problem(name, value)
        if problem:
            report(problem)


def _workspace_capped(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LOG_WORKSPACE:
        return
    quota = (args.props.get("workspaceCapping") or {}).get("dailyQuotaGb")
    # ARM's -1 (and no value at all) means no cap: ingestion, and the bill, are then unbounded.
    if not isinstance(quota, int | float) or quota <= 0:
        report(
            f"workspaceCapping.dailyQuotaGb must be a positive daily cap in GB (got {quota!r}): "
            "an uncapped workspace bills whatever it ingests."
        )


def _workspace_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LOG_WORKSPACE:
        return
    days = args.props.get("retentionInDays")
    if isinstance(days, int | float) and days > MAX_WORKSPACE_RETENTION_DAYS:
        report(f"retentionInDays must be at most {MAX_WORKSPACE_RETENTION_DAYS} (got {days}).")


def _sku_allowed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    config = args.get_config()
    if args.resource_type == PLAN:
        allowed = config.get("allowedPlanSkus") or ALLOWED_PLAN_SKUS
        sku = (args.props.get("sku") or {}).get("name")
    elif args.resource_type == PG_SERVER:
        allowed = config.get("allowedPostgresSkus") or ALLOWED_POSTGRES_SKUS
        sku = (args.props.get("sku") or {}).get("name")
    else:
        return
    if sku not in allowed:
        report(
            f"SKU {sku!r} is outside the allowed list ({', '.join(allowed)}): a cost guard; widen it in "
            f"{PACK_CONFIG_FILE} (read by `backend-iac plan` and by `pulumi preview --policy-pack policy "
            f"--policy-pack-config {PACK_CONFIG_FILE}`)."
        )


_SKU_CONFIG = PolicyConfigSchema(
    properties={
        "allowedPlanSkus": {"type": "array", "items": {"type": "string"}, "default": list(ALLOWED_PLAN_SKUS)},
        "allowedPostgresSkus": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(ALLOWED_POSTGRES_SKUS),
        },
    }
)
_MANDATORY = EnforcementLevel.MANDATORY

RESOURCE_POLICIES: Final[tuple[ResourceValidationPolicy, ...]] = (
    ResourceValidationPolicy(
        "web-app-https-only", "Web apps accept HTTPS only.", _web_app_https_only, _MANDATORY
    ),
    ResourceValidationPolicy(
        "web-app-min-tls-1-2", "Web apps require TLS 1.2 or newer.", _web_app_min_tls, _MANDATORY
    ),
    ResourceValidationPolicy("web-app-ftps-disabled", "FTP and FTPS are off.", _web_app_ftps_off, _MANDATORY),
    ResourceValidationPolicy(
        "basic-publishing-auth-disabled",
        "FTP and SCM basic-auth publishing credentials are disabled.",
        _basic_auth_resource_off,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "web-app-health-check", "Web apps declare a health-check path.", _web_app_health_check, _MANDATORY
    ),
    ResourceValidationPolicy(
        "postgres-not-public",
        "PostgreSQL firewall rules admit Azure services or narrow ranges, never the internet.",
        _postgres_not_public,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "postgres-private-no-public-access",
        "A PostgreSQL server with private access declares public network access Disabled.",
        _postgres_private_not_public,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "postgres-supported-version",
        "PostgreSQL runs a major version Azure still supports.",
        _postgres_supported_version,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "no-plaintext-secrets-in-app-settings",
        "App settings and connection strings hold no credential in plain text.",
        _no_plaintext_secrets,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "log-workspace-daily-cap",
        "Log Analytics workspaces have a daily ingestion cap (cost guard).",
        _workspace_capped,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "log-workspace-retention",
        f"Log Analytics workspaces keep data at most {MAX_WORKSPACE_RETENTION_DAYS} days.",
        _workspace_retention,
        _MANDATORY,
    ),
    ResourceValidationPolicy(
        "sku-allowed",
        "App Service plan and PostgreSQL SKUs stay within the allowed list (cost guard).",
        _sku_allowed,
        _MANDATORY,
        _SKU_CONFIG,
    ),
)
STACK_POLICIES: Final[tuple[StackValidationPolicy, ...]] = (
    StackValidationPolicy(
        "basic-publishing-auth-declared",
        "Every web app has FTP and SCM basic-auth publishing turned off by the stack.",
        _basic_auth_declared,
        _MANDATORY,
    ),
    StackValidationPolicy(
        "postgres-private-no-firewall",
        "No firewall rule is declared for a PostgreSQL server with private access.",
        _postgres_private_no_firewall,
        _MANDATORY,
    ),
    StackValidationPolicy(
        "web-app-in-database-network",
        "With the database private, every web app is integrated with its VNet and routes all traffic there.",
        _web_app_in_database_network,
        _MANDATORY,
    ),
)
POLICIES: Final = (*RESOURCE_POLICIES, *STACK_POLICIES)
# What the engine would pass each policy without per-stack policy config: the schema defaults.
DEFAULT_CONFIG: Final[Mapping[str, Mapping[str, Any]]] = {
    "sku-allowed": {
        "allowedPlanSkus": list(ALLOWED_PLAN_SKUS),
        "allowedPostgresSkus": list(ALLOWED_POSTGRES_SKUS),
    }
}


class PolicyConfigError(ValueError):
    """The pack's configuration file is unreadable or not of the documented shape."""


def load_pack_config(root: Path) -> dict[str, Mapping[str, Any]]:
    """The per-policy config `root/policy/config.json` gives, over the schema defaults (a missing file = defaults).

    A policy's entry may be an enforcement level string (Pulumi's shorthand); it then carries no properties.
    """
    config: dict[str, Mapping[str, Any]] = {name: dict(values) for name, values in DEFAULT_CONFIG.items()}
    path = root / PACK_CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return config
    except OSError as error:
        msg = f"{PACK_CONFIG_FILE}: cannot read it ({error.strerror})"
        raise PolicyConfigError(msg) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        msg = f"{PACK_CONFIG_FILE}: not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        raise PolicyConfigError(msg) from None
    if not isinstance(document, dict):
        msg = f"{PACK_CONFIG_FILE}: must be a JSON object of policy name -> settings"
        raise PolicyConfigError(msg)
    known = {policy.name for policy in POLICIES} | {"all"}
    for name, settings in document.items():
        if name not in known:
            msg = f"{PACK_CONFIG_FILE}: {name!r} is not a policy of this pack (one of {', '.join(sorted(known))})"
            raise PolicyConfigError(msg)
        if isinstance(settings, str):
            continue
        if not isinstance(settings, dict):
            msg = f"{PACK_CONFIG_FILE}: {name!r} must be an object or an enforcement level"
            raise PolicyConfigError(msg)
        for key in ("allowedPlanSkus", "allowedPostgresSkus"):
            value = settings.get(key)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(item, str) for item in value)
            ):
                msg = f"{PACK_CONFIG_FILE}: {name}.{key} must be a list of SKU names"
                raise PolicyConfigError(msg)
        config[name] = {**config.get(name, {}), **settings}
    return config


class Declared(Protocol):
    """A declared resource: its type token, logical name and inputs (backend_iac.evaluate.DeclaredResource fits)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Violation:
    """A policy's complaint about one resource (or the whole stack when resource_name is None)."""

    policy: str
    message: str
    resource_type: str | None = None
    resource_name: str | None = None


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def check(
    resources: Iterable[Declared], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Violation]:
    """Run every policy over `resources` exactly as the pack would; return the violations found."""
    config = DEFAULT_CONFIG if config is None else config
    declared: Sequence[Declared] = list(resources)
    violations: list[Violation] = []
    for policy in RESOURCE_POLICIES:
        for resource in declared:

            def report(
                message: str, urn: str | None = None, *, _r: Declared = resource, _p: str = policy.name
            ) -> None:
                violations.append(Violation(_p, message, _r.type, _r.name))

            args = ResourceValidationArgs(
                resource.type,
                # The engine hands policies this proxy (unknown values raise), so the rules see it here too.
                unknown_checking_proxy(dict(resource.inputs)),
                f"urn:pulumi:offline::backend-iac::{resource.type}::{resource.name}",
                resource.name,
                _options(),
                None,
                config.get(policy.name, {}),
            )
            policy.validate(args, report)
    stack_resources = [
        PolicyResource(r.type, r.inputs, f"urn:{r.type}::{r.name}", r.name, _options(), None, None, [], {})
        for r in declared
    ]
    for stack_policy in STACK_POLICIES:

        def report_stack(message: str, urn: str | None = None, *, _p: str = stack_policy.name) -> None:
            violations.append(Violation(_p, message))

        stack_policy.validate(
            StackValidationArgs(stack_resources, config.get(stack_policy.name, {})), report_stack
        )
    return violations
