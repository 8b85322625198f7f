"""Monitoring: a capped Log Analytics workspace, workspace-based Application Insights, and the web app's logs.

What it costs is bounded by the workspace's daily cap: ingestion stops for the day once the cap is reached
(Application Insights data lands in the same workspace and counts against it). See docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights

# Pay-as-you-go per GB; the only SKU new workspaces get (the others are legacy).
WORKSPACE_SKU: Final = "PerGB2018"
# Days the workspace keeps data; the first 31 days of retention are included in the ingestion price
# (learn.microsoft.com/azure/azure-monitor/logs/cost-logs), so 30 costs nothing extra.
RETENTION_DAYS: Final = 30
# The App Service log categories a Linux web app offers to diagnostic settings (Microsoft.Web/sites;
# learn.microsoft.com/azure/app-service/troubleshoot-diagnostic-logs#supported-log-types and
# learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-web-sites-logs): console is
# the service's stdout/stderr (its JSON lines), HTTP the front end's access log, platform the container's
# lifecycle. Application logs are what App Service's own logging captures; for a Python app most of
# them arrive as console logs instead.
WEB_APP_LOG_CATEGORIES: Final = (
    "AppServiceConsoleLogs",
    "AppServiceAppLogs",
    "AppServiceHTTPLogs",
    "AppServicePlatformLogs",
)


@dataclass
class MonitoringArgs:
    """Where the monitoring lives and how much it may ingest a day."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    daily_cap_gb: float
    tags: Mapping[str, str] = field(default_factory=dict)


class Monitoring(pulumi.ComponentResource):
    """Log Analytics workspace (30 days, capped) and Application Insights on it; then the web app's logs."""

    workspace_id: pulumi.Output[str]
    # Not a secret: Microsoft's words, "Ikey unique identifiers aren't security tokens or security keys,
    # and aren't considered secrets" (learn.microsoft.com/azure/azure-monitor/app/sdk-connection-string).
    # It only lets a holder send telemetry; reading it needs Azure RBAC on the resource.
    connection_string: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("backend-iac:index:Monitoring", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)

        workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name=WORKSPACE_SKU),
            retention_in_days=RETENTION_DAYS,
            workspace_capping=operationalinsights.WorkspaceCappingArgs(daily_quota_gb=args.daily_cap_gb),
            tags=dict(args.tags),
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type=applicationinsights.ApplicationType.WEB,
            # Workspace-based: the data lands in (and is billed and capped by) the workspace above.
            workspace_resource_id=workspace.id,
            ingestion_mode=applicationinsights.IngestionMode.LOG_ANALYTICS,
            tags=dict(args.tags),
            opts=child,
        )
        self.workspace_id = workspace.id
        self.connection_string = insights.connection_string
        self.register_outputs({"workspace_id": self.workspace_id})

    def collect_web_app_logs(self, web_app_id: pulumi.Input[str]) -> monitor.DiagnosticSetting:
        """Send the web app's console, application, HTTP and platform logs to the workspace.

        A method, not an argument: the web app needs this component's connection string first, so it is
        created between the two.
        """
        return monitor.DiagnosticSetting(
            f"{self._name}-web-app-logs",
            resource_uri=web_app_id,
            workspace_id=self.workspace_id,
            logs=[
                monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True)
                for category in WEB_APP_LOG_CATEGORIES
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
