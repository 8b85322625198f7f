"""`backend-iac plan`: the stack's resources, the policy verdict and an estimated cost, with no credentials.

Exit codes: 0 the stack passes the policy pack, 1 a policy is violated, 2 the config is unreadable or
invalid (the message names the key).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TextIO

SECRET: Final = "[secret]"  # noqa: S105 - the placeholder shown instead of a secret

# The settings that matter, per type, for the text form (the JSON form carries every input).
_HIGHLIGHTS: Final[Mapping[str, tuple[str, ...]]] = {
    "azure-native:resources:ResourceGroup": ("resourceGroupName", "location"),
    "azure-native:web:AppServicePlan": ("kind", "reserved", "sku.name", "sku.capacity"),
    "azure-native:web:WebApp": (
        "httpsOnly",
        "siteConfig.linuxFxVersion",
        "siteConfig.appCommandLine",
        "siteConfig.minTlsVersion",
        "siteConfig.ftpsState",
        "siteConfig.http20Enabled",
        "siteConfig.alwaysOn",
        "siteConfig.healthCheckPath",
        "siteConfig.appSettings",
        "virtualNetworkSubnetId",
        "siteConfig.vnetRouteAllEnabled",
        "outboundVnetRouting.applicationTraffic",
    ),
    "azure-native:web:WebAppFtpAllowed": ("allow",),
    "azure-native:web:WebAppScmAllowed": ("allow",),
    "azure-native:dbforpostgresql:Server": (
        "version",
        "sku.name",
        "storage.storageSizeGB",
        "authConfig.activeDirectoryAuth",
        "authConfig.passwordAuth",
        "administratorLoginPassword",
        "network.publicNetworkAccess",
        "network.delegatedSubnetResourceId",
        "network.privateDnsZoneArmResourceId",
    ),
    "azure-native:network:VirtualNetwork": ("addressSpace.addressPrefixes",),
    "azure-native:network:Subnet": ("addressPrefix", "delegations", "virtualNetworkName"),
    "azure-native:privatedns:PrivateZone": ("privateZoneName", "location"),
    "azure-native:privatedns:VirtualNetworkLink": (
        "privateZoneName",
        "virtualNetwork.id",
        "registrationEnabled",
    ),
    "azure-native:dbforpostgresql:FirewallRule": ("startIpAddress", "endIpAddress"),
    "azure-native:dbforpostgresql:Configuration": ("configurationName", "value"),
    "azure-native:dbforpostgresql:Database": ("databaseName",),
    "azure-native:dbforpostgresql:Administrator": ("principalName", "principalType"),
    "azure-native:managedidentity:FederatedIdentityCredential": ("subject",),
    "azure-native:authorization:RoleAssignment": ("roleDefinitionId", "scope"),
    "azure-native:keyvault:Vault": (
        "properties.enableRbacAuthorization",
        "properties.softDeleteRetentionInDays",
    ),
    "azure-native:keyvault:Secret": ("secretName", "properties.value"),
}


def _redact(value: Any, secret_paths: frozenset[str], path: str = "") -> Any:
    """Replace every secret input with SECRET, so no plan output ever shows one."""
    if path in secret_paths:
        return SECRET
    if isinstance(value, Mapping):
        return {
            key: _redact(item, secret_paths, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, secret_paths, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _lookup(inputs: Mapping[str, Any], dotted: str) -> Any:
    value: Any = inputs
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _show(key: str, value: Any) -> str:
    if key.endswith("appSettings") and isinstance(value, list):
        return ", ".join(f"{item.get('name')}={item.get('value')}" for item in value)
    if key == "delegations" and isinstance(value, list):
        return ", ".join(str(item.get("serviceName")) for item in value if isinstance(item, Mapping))
    if key.endswith("addressPrefixes") and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if key.endswith("roleDefinitionId") and isinstance(value, str):
        from stack import azure_roles

        role = value.rsplit("/", 1)[-1]
        return azure_roles.NAMES.get(role, role)
    return json.dumps(value) if isinstance(value, bool | int | float) else str(value)


def _print_text(report: Mapping[str, Any], out: TextIO) -> None:
    resources = report["resources"]
    out.write(
        f"Stack {report['stack']}: {len(resources)} resources (evaluated offline under Pulumi mocks)\n\n"
    )
    for resource in resources:
        out.write(f"{resource['type']}  {resource['name']}\n")
        for key in _HIGHLIGHTS.get(resource["type"], ()):
            value = _lookup(resource["inputs"], key)
            if value is not None:
                out.write(f"    {key}: {_show(key, value)}\n")
    violations = report["violations"]
    out.write("\nPolicy pack (policy/): ")
    if not violations:
        out.write("passed, no violations\n")
    else:
        out.write(f"{len(violations)} violation(s)\n")
        for violation in violations:
            where = (
                f" {violation['resource_type']} {violation['resource_name']}:"
                if violation["resource_name"]
                else ""
            )
            out.write(f"  [{violation['policy']}]{where} {violation['message']}\n")
    cost = report["estimate"]
    out.write(f"\nMonthly cost estimate: ${report['monthly_cost_usd']:.2f} USD\n")
    for item in cost["items"]:
        out.write(f"    ${item['monthly_usd']:>8.2f}  {item['description']}\n")
    for line in cost["unpriced"] + cost["notes"]:
        out.write(f"    note: {line}\n")


def _print_table(report: Mapping[str, Any], out: TextIO) -> None:
    """The same report as _print_text, as tables with colour, for a person at a terminal."""
    from rich.markup import escape
    from rich.table import Table

    from backend_iac.terminal import console_for

    console = console_for(out)
    resources = report["resources"]
    table = Table(
        title=f"Stack {escape(report['stack'])}: {len(resources)} resources (offline, under Pulumi mocks)",
        title_justify="left",
    )
    table.add_column("type", style="cyan", no_wrap=True)
    table.add_column("name", style="bold")
    table.add_column("settings")
    for resource in resources:
        settings = [
            f"{key}: {_show(key, value)}"
            for key in _HIGHLIGHTS.get(resource["type"], ())
            if (value := _lookup(resource["inputs"], key)) is not None
        ]
        table.add_row(escape(resource["type"]), escape(resource["name"]), escape("\n".join(settings)))
    console.print(table)
    violations = report["violations"]
    if not violations:
        console.print("Policy pack (policy/): [green]passed, no violations[/green]")
    else:
        console.print(f"Policy pack (policy/): [bold red]{len(violations)} violation(s)[/bold red]")
        for violation in violations:
            where = (
                f" {violation['resource_type']} {violation['resource_name']}:"
                if violation["resource_name"]
                else ""
            )
            console.print(
                f"  [red]\\[{escape(violation['policy'])}][/red]{escape(where)} {escape(violation['message'])}"
            )
    cost = report["estimate"]
    costs = Table(title=f"Monthly cost estimate: ${report['monthly_cost_usd']:.2f} USD", title_justify="left")
    costs.add_column("USD / month", justify="right")
    costs.add_column("item")
    for item in cost["items"]:
        costs.add_row(f"{item['monthly_usd']:.2f}", escape(item["description"]))
    console.print(costs)
    for line in cost["unpriced"] + cost["notes"]:
        console.print(f"[dim]note: {escape(line)}[/dim]")


def build_report(root: Path, stack: str) -> dict[str, Any]:
    """Evaluate the stack and gather resources (secrets redacted), violations and the cost estimate."""
    from backend_iac.evaluate import evaluate_stack
    from backend_iac.pricing import estimate_monthly_cost
    from policy.rules import check, load_pack_config

    evaluation = evaluate_stack(root, stack)
    ordered = sorted(evaluation.resources, key=lambda r: (r.type, r.name))
    groups = evaluation.of_type("azure-native:resources:ResourceGroup")
    location = str(groups[0].inputs.get("location")) if groups else None
    cost = estimate_monthly_cost(ordered, location)
    return {
        "stack": stack,
        "resources": [
            {"type": r.type, "name": r.name, "inputs": _redact(dict(r.inputs), r.secret_paths)}
            for r in ordered
        ],
        "violations": [
            {
                "policy": v.policy,
                "message": v.message,
                "resource_type": v.resource_type,
                "resource_name": v.resource_name,
            }
            for v in check(ordered, load_pack_config(root))
        ],
        "monthly_cost_usd": cost.monthly_usd,
        "estimate": {
            "items": [
                {"resource": i.resource, "description": i.description, "monthly_usd": i.monthly_usd}
                for i in cost.items
            ],
            "unpriced": list(cost.unpriced),
            "notes": list(cost.notes),
        },
    }


def print_plan(*, root: Path, stack: str, output_format: Literal["text", "json"]) -> int:
    """The `plan` command: print the report as text or JSON; exit 0 pass, 1 policy violated, 2 bad config."""
    from backend_iac.evaluate import StackFileError
    from backend_iac.terminal import is_styled
    from policy.rules import PolicyConfigError
    from stack.config import StackConfigError

    try:
        report = build_report(root, stack)
    except StackConfigError as error:
        sys.stderr.write(f"backend-iac plan: invalid config for stack {stack!r}:\n")
        for key, message in error.problems.items():
            sys.stderr.write(f"  {key}: {message}\n")
        return 2
    except StackFileError as error:
        sys.stderr.write(f"backend-iac plan: cannot read the config of stack {stack!r}: {error}\n")
        return 2
    except PolicyConfigError as error:
        sys.stderr.write(f"backend-iac plan: the policy pack's configuration is invalid: {error}\n")
        return 2
    if output_format == "json":
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif is_styled(sys.stdout):
        _print_table(report, sys.stdout)
    else:
        _print_text(report, sys.stdout)
    return 1 if report["violations"] else 0
