"""`backend-iac plan`: the stack's resources, the policy verdict and an estimated cost, with no credentials.

Exit codes: 0 the stack passes the policy pack, 1 a policy is violated, 2 the config is unreadable or
invalid (the message names the key), or the checkout has no program or its program fails.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

if TYPE_CHECKING:
    from backend_iac.evaluate import DeclaredResource
    from backend_iac.evaluation_cache import EvaluationCache

# The checkout this tool runs from: its policy pack judges every plan.
_THIS_CHECKOUT: Final = Path(__file__).resolve().parents[1]

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
    "azure-native:operationalinsights:Workspace": (
        "sku.name",
        "retentionInDays",
        "workspaceCapping.dailyQuotaGb",
    ),
    "azure-native:applicationinsights:Component": ("kind", "ingestionMode", "workspaceResourceId"),
    "azure-native:monitor:DiagnosticSetting": ("resourceUri", "workspaceId", "logs"),
    "azuread:index/application:Application": (
        "displayName",
        "signInAudience",
        "api.requestedAccessTokenVersion",
        "api.oauth2PermissionScopes",
        "appRoles",
    ),
    "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri": ("identifierUri",),
    "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized": (
        "authorizedClientId",
        "permissionIds",
    ),
    "azuread:index/appRoleAssignment:AppRoleAssignment": ("appRoleId", "principalObjectId"),
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
    if key == "logs" and isinstance(value, list):  # diagnostic settings: the categories sent
        return ", ".join(str(item.get("category")) for item in value if isinstance(item, Mapping))
    if key.endswith("roleDefinitionId") and isinstance(value, str):
        from stack import azure_roles

        role = value.rsplit("/", 1)[-1]
        return azure_roles.NAMES.get(role, role)
    if key in ("api.oauth2PermissionScopes", "appRoles") and isinstance(value, list):
        return ", ".join(str(item.get("value")) for item in value if isinstance(item, Mapping))
    if key in ("appRoleId", "permissionIds"):
        from stack.api_permissions import PERMISSIONS

        names = {p.role_id: f"{p.value} (app role)" for p in PERMISSIONS} | {
            p.scope_id: f"{p.value} (scope)" for p in PERMISSIONS
        }
        ids = value if isinstance(value, list) else [value]
        return ", ".join(names.get(str(item), str(item)) for item in ids)
    if key == "authorizedClientId" and isinstance(value, str):
        from stack.api_permissions import AZURE_CLI_CLIENT_ID

        return f"{value} (Azure CLI)" if value == AZURE_CLI_CLIENT_ID else value
    return json.dumps(value) if isinstance(value, bool | int | float) else str(value)


def _violation_where(violation: Mapping[str, Any]) -> str:
    """The resource a violation names, as ' <type> <name>:', or '' for one on the stack as a whole."""
    if not violation["resource_name"]:
        return ""
    return f" {violation['resource_type']} {violation['resource_name']}:"


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
            where = _violation_where(violation)
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
            where = _violation_where(violation)
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


def _violations(root: Path, resources: Sequence[DeclaredResource]) -> list[dict[str, str | None]]:
    """The policy pack's verdict on `resources` with root's pack config (PolicyConfigError if invalid)."""
    from policy.rules import check, load_pack_config

    return [
        {
            "policy": v.policy,
            "message": v.message,
            "resource_type": v.resource_type,
            "resource_name": v.resource_name,
        }
        for v in check(resources, load_pack_config(root))
    ]


def _policy_files(root: Path, pattern: str) -> list[Path]:
    """root/policy's files matching `pattern`, sorted: the rules (this tool's) or the pack config (root's)."""
    return sorted((root / "policy").glob(pattern))


def _is_policy_config_error(error: Exception) -> bool:
    # policy.rules starts pulumi_policy, so it is imported only when the verdict is computed; when it was
    # not, the error cannot be its PolicyConfigError.
    rules = sys.modules.get("policy.rules")
    return rules is not None and isinstance(error, rules.PolicyConfigError)


def build_report(root: Path, stack: str, *, cache: EvaluationCache | None = None) -> dict[str, Any]:
    """Evaluate the stack (through `cache` when given) and gather resources (secrets redacted), violations
    and the cost estimate."""
    from backend_iac.evaluate import evaluate_stack
    from backend_iac.pricing import estimate_monthly_cost

    evaluation = cache.evaluate_stack(root, stack) if cache is not None else evaluate_stack(root, stack)
    ordered = sorted(evaluation.resources, key=lambda r: (r.type, r.name))
    if cache is None:
        violations = _violations(root, ordered)
    else:
        from backend_iac.evaluation_cache import source_files

        # The verdict depends on the resources, the pack's rules and its config file, and nothing else.
        resources = [[r.type, r.name, dict(r.inputs)] for r in ordered]
        rules = source_files(*_policy_files(_THIS_CHECKOUT, "*.py"), *_policy_files(root, "*.json"))
        violations = cache.remember("violations", [resources, *rules], lambda: _violations(root, ordered))
    groups = evaluation.of_type("azure-native:resources:ResourceGroup")
    location = str(groups[0].inputs.get("location")) if groups else None
    cost = estimate_monthly_cost(ordered, location)
    return {
        "stack": stack,
        "resources": [
            {"type": r.type, "name": r.name, "inputs": _redact(dict(r.inputs), r.secret_paths)}
            for r in ordered
        ],
        "violations": violations,
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
    from backend_iac.evaluate import ProgramError, StackFileError
    from backend_iac.evaluation_cache import EvaluationCache
    from backend_iac.terminal import is_styled
    from stack.config import StackConfigError

    try:
        report = build_report(root, stack, cache=EvaluationCache.for_user())
    except StackConfigError as error:
        sys.stderr.write(f"backend-iac plan: invalid config for stack {stack!r}:\n")
        for key, message in error.problems.items():
            sys.stderr.write(f"  {key}: {message}\n")
        return 2
    except StackFileError as error:
        sys.stderr.write(f"backend-iac plan: cannot read the config of stack {stack!r}: {error}\n")
        return 2
    except ProgramError as error:
        sys.stderr.write(f"backend-iac plan: cannot evaluate stack {stack!r}: {error}\n")
        return 2
    except ValueError as error:  # PolicyConfigError is a ValueError
        if not _is_policy_config_error(error):
            raise
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


# Inputs whose change Azure carries out by deleting and re-creating the resource. azure-native replaces a
# resource when any property in its ARM resource path changes ("Any property from the path of a resource
# URL must cause replacement on update", pulumi/pulumi-azure-native issue 77): the resource group and the
# resource's own name (and its parents' names) are in that path. A resource's `location` cannot change in
# place either: ARM refuses it with InvalidResourceLocation (pulumi/pulumi-azure-native issue 3053, where
# a preview showed an update and `pulumi up` then failed).
REPLACING_INPUTS: Final = frozenset(
    {
        "location",
        "resourceGroupName",
        "name",
        "serverName",
        "vaultName",
        "resourceName",
        "databaseName",
        "firewallRuleName",
        "configurationName",
        "secretName",
        "roleAssignmentName",
        "scope",
        "objectId",
        "federatedIdentityCredentialResourceName",
    }
)


class RefError(Exception):
    """The base ref does not name a commit of the repository."""


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Dotted path -> leaf value (lists keep their order as [index])."""
    if isinstance(value, Mapping) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_leaves(item, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(value, list) and value:
        found = {}
        for index, item in enumerate(value):
            found.update(_leaves(item, f"{path}[{index}]"))
        return found
    return {path: value}


def extract_ref(root: Path, ref: str, destination: Path) -> str:
    """Write the tree of `ref` (a commit, branch or tag of the repository at `root`) into `destination`
    with `git archive`; return the commit. RefError when git does not know the ref."""
    import subprocess
    import tarfile

    def git(*argv: str) -> bytes:
        result = subprocess.run(  # noqa: S603 - git with fixed arguments; the ref is one argv item
            ["git", "-C", str(root), *argv],  # noqa: S607 - git from PATH, as package.py runs it
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            msg = f"{ref!r} is not a commit of {root} ({detail[-1] if detail else 'git failed'})"
            raise RefError(msg)
        return result.stdout

    if ref.startswith("-"):
        msg = f"{ref!r} is not a commit of {root} (a ref cannot start with '-')"
        raise RefError(msg)
    commit = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").decode().strip()
    archive = git("archive", "--format=tar", commit)
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return commit


def _report_resources(report: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(r["type"], r["name"]): r["inputs"] for r in report["resources"]}


def _costs(report: Mapping[str, Any]) -> dict[str, float]:
    """Monthly cost per resource (logical name): a server's compute and storage lines add up."""
    costs: dict[str, float] = {}
    for item in report["estimate"]["items"]:
        costs[str(item["resource"])] = costs.get(str(item["resource"]), 0.0) + float(item["monthly_usd"])
    return costs


def diff_reports(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """What head changes relative to base: added, removed and changed resources (inputs old -> new, with
    "replace" when a replacing input changed), head's violations, both monthly costs and the delta."""
    old, new = _report_resources(base), _report_resources(head)
    old_cost, new_cost = _costs(base), _costs(head)

    def cost_of(costs: Mapping[str, float], name: str) -> float:
        return round(costs.get(name, 0.0), 2)

    added = [
        {"type": t, "name": n, "monthly_usd": cost_of(new_cost, n)}
        for (t, n) in sorted(new.keys() - old.keys())
    ]
    removed = [
        {"type": t, "name": n, "monthly_usd": -cost_of(old_cost, n)}
        for (t, n) in sorted(old.keys() - new.keys())
    ]
    changed = []
    for key in sorted(old.keys() & new.keys()):
        before, after = _leaves(dict(old[key])), _leaves(dict(new[key]))
        inputs = {
            path: {"old": before.get(path), "new": after.get(path)}
            for path in sorted(before.keys() | after.keys())
            if before.get(path) != after.get(path)
        }
        if inputs:
            replace = any(path.partition(".")[0].partition("[")[0] in REPLACING_INPUTS for path in inputs)
            delta = round(cost_of(new_cost, key[1]) - cost_of(old_cost, key[1]), 2)
            changed.append(
                {"type": key[0], "name": key[1], "replace": replace, "inputs": inputs, "monthly_usd": delta}
            )
    base_total, head_total = float(base["monthly_cost_usd"]), float(head["monthly_cost_usd"])
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "violations": head["violations"],
        "monthly_cost_usd": {
            "base": base_total,
            "head": head_total,
            "delta": round(head_total - base_total, 2),
        },
    }


def build_diff(
    root: Path, stack: str, base: str, *, cache: EvaluationCache | None = None
) -> tuple[dict[str, Any], str]:
    """The plan of `root`'s working tree against the plan of `base` (a ref of `root`'s repository), each
    evaluated with its own program and config file (through `cache` when given: the cache keys on
    content, so a base whose program and config equal the working tree's is not evaluated twice); and
    the commit `base` names."""
    import tempfile

    head_report = build_report(root, stack, cache=cache)
    with tempfile.TemporaryDirectory(prefix="backend-iac-base-") as scratch:
        commit = extract_ref(root, base, Path(scratch))
        base_report = build_report(Path(scratch), stack, cache=cache)
    return {"base": base, "head": "working tree", **diff_reports(base_report, head_report)}, commit


def _money(value: float) -> str:
    return f"{'+' if value > 0 else '-' if value < 0 else ''}${abs(value):.2f}"


def _print_diff(diff: Mapping[str, Any], commit: str, out: TextIO) -> None:
    cost = diff["monthly_cost_usd"]
    out.write(
        f"Plan of the working tree against {diff['base']} ({commit[:12]}), offline under Pulumi mocks\n\n"
    )
    if not (diff["added"] or diff["removed"] or diff["changed"]):
        out.write("No resource changes.\n")
    for item in diff["added"]:
        out.write(f"+ {item['type']}  {item['name']}  ({_money(item['monthly_usd'])}/month)\n")
    for item in diff["removed"]:
        out.write(f"- {item['type']}  {item['name']}  ({_money(item['monthly_usd'])}/month)\n")
    for item in diff["changed"]:
        mark = "+-" if item["replace"] else "~"
        what = "replace" if item["replace"] else "update"
        out.write(f"{mark} {item['type']}  {item['name']}  [{what}]  ({_money(item['monthly_usd'])}/month)\n")
        for path, change in item["inputs"].items():
            out.write(f"    {path}: {_show(path, change['old'])} -> {_show(path, change['new'])}\n")
    violations = diff["violations"]
    out.write("\nPolicy pack (policy/), new side: ")
    out.write("passed, no violations\n" if not violations else f"{len(violations)} violation(s)\n")
    for violation in violations:
        out.write(f"  [{violation['policy']}] {violation['resource_name'] or ''} {violation['message']}\n")
    out.write(
        f"\nEstimated monthly cost: ${cost['base']:.2f} -> ${cost['head']:.2f} USD ({_money(cost['delta'])})\n"
    )


def print_diff(*, root: Path, stack: str, base: str, output_format: Literal["text", "json"]) -> int:
    """`plan --base REF`: the difference, as text or JSON; exit 0, 1 a violation in the new side, 2 bad
    config, an unknown ref, or a side whose program cannot be evaluated."""
    from backend_iac.evaluate import ProgramError, StackFileError
    from backend_iac.evaluation_cache import EvaluationCache
    from stack.config import StackConfigError

    try:
        diff, commit = build_diff(root, stack, base, cache=EvaluationCache.for_user())
    except RefError as error:
        sys.stderr.write(f"backend-iac plan: unknown base: {error}\n")
        return 2
    except StackConfigError as error:
        sys.stderr.write(f"backend-iac plan: invalid config for stack {stack!r}:\n")
        for key, message in error.problems.items():
            sys.stderr.write(f"  {key}: {message}\n")
        return 2
    except (StackFileError, ProgramError) as error:
        sys.stderr.write(f"backend-iac plan: cannot evaluate stack {stack!r}: {error}\n")
        return 2
    if output_format == "json":
        json.dump(diff, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_diff(diff, commit, sys.stdout)
    return 1 if diff["violations"] else 0
