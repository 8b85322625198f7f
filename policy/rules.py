"""The CrossGuard policies for this stack, importable without starting a policy pack.

`policy/__main__.py` wraps POLICIES in a PolicyPack (which starts a gRPC server and blocks); tests and
`backend-iac plan` call `check` instead, which runs the very same validation functions over resources
declared under Pulumi's mocks. Properties are read as the engine passes them: camelCase input names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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

# Cost guard defaults (per-policy config can widen them): the SKUs this repo is sized and priced for.
ALLOWED_PLAN_SKUS: Final = ("B1", "B2", "B3", "P0v3")
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
            f"SKU {sku!r} is outside the allowed list ({', '.join(allowed)}): a cost guard; widen it in policy config."
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
)
POLICIES: Final = (*RESOURCE_POLICIES, *STACK_POLICIES)
# What the engine would pass each policy without per-stack policy config: the schema defaults.
DEFAULT_CONFIG: Final[Mapping[str, Mapping[str, Any]]] = {
    "sku-allowed": {
        "allowedPlanSkus": list(ALLOWED_PLAN_SKUS),
        "allowedPostgresSkus": list(ALLOWED_POSTGRES_SKUS),
    }
}


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
