"""Monitoring (issue 13): the component under Pulumi's mocks, and what the program does with it."""

from __future__ import annotations

import pytest

from backend_iac.evaluate import Evaluation, run_under_mocks
from stack.components.monitoring import WEB_APP_LOG_CATEGORIES, Monitoring, MonitoringArgs
from stack.config import StackConfigError
from tests.stack.conftest import Evaluate

WORKSPACE = "azure-native:operationalinsights:Workspace"
INSIGHTS = "azure-native:applicationinsights:Component"
DIAGNOSTICS = "azure-native:monitor:DiagnosticSetting"
SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
TAGS = {"project": "backend-iac", "stack": "unit", "managed-by": "pulumi"}


def _monitoring(cap: float = 0.1) -> Evaluation:
    def build() -> None:
        monitoring = Monitoring(
            "watch",
            MonitoringArgs(resource_group_name="rg", location="westeurope", daily_cap_gb=cap, tags=TAGS),
        )
        monitoring.collect_web_app_logs(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/app"
        )

    return run_under_mocks(build, stack="unit", config={})


def _app_settings(evaluation: Evaluation) -> dict[str, str]:
    site = evaluation.of_type("azure-native:web:WebApp")[0]
    return {item["name"]: item["value"] for item in site.inputs["siteConfig"]["appSettings"]}


def test_component_declares_a_capped_workspace_insights_on_it_and_the_web_app_logs() -> None:
    """Workspace: PerGB2018, 30 days, the cap; Application Insights workspace-based; four log categories."""
    evaluation = _monitoring(cap=0.25)
    assert {(r.type, r.name) for r in evaluation.resources} == {
        ("backend-iac:index:Monitoring", "watch"),
        (WORKSPACE, "watch-workspace"),
        (INSIGHTS, "watch-insights"),
        (DIAGNOSTICS, "watch-web-app-logs"),
    }
    workspace = evaluation.of_type(WORKSPACE)[0]
    assert workspace.inputs["sku"] == {"name": "PerGB2018"}
    assert workspace.inputs["retentionInDays"] == 30
    assert workspace.inputs["workspaceCapping"] == {"dailyQuotaGb": 0.25}
    assert workspace.inputs["tags"] == TAGS
    insights = evaluation.of_type(INSIGHTS)[0]
    assert insights.inputs["kind"] == "web"
    assert insights.inputs["applicationType"] == "web"
    assert insights.inputs["ingestionMode"] == "LogAnalytics"
    assert (
        insights.inputs["workspaceResourceId"]
        == "/mock/azure-native:operationalinsights:Workspace/watch-workspace"
    )
    diagnostics = evaluation.of_type(DIAGNOSTICS)[0]
    assert diagnostics.inputs["resourceUri"].endswith("/Microsoft.Web/sites/app")
    assert diagnostics.inputs["workspaceId"] == insights.inputs["workspaceResourceId"]
    assert [log["category"] for log in diagnostics.inputs["logs"]] == list(WEB_APP_LOG_CATEGORIES)
    assert all(log["enabled"] is True for log in diagnostics.inputs["logs"])
    assert set(WEB_APP_LOG_CATEGORIES) == {
        "AppServiceConsoleLogs",
        "AppServiceAppLogs",
        "AppServiceHTTPLogs",
        "AppServicePlatformLogs",
    }


def test_monitoring_is_on_by_default_and_feeds_the_service_its_connection_string(evaluate: Evaluate) -> None:
    """Default config: the three resources, the setting on the web app, the logs of that very site."""
    evaluation = evaluate()
    assert len(evaluation.of_type(WORKSPACE)) == 1
    assert evaluation.of_type(WORKSPACE)[0].inputs["workspaceCapping"] == {"dailyQuotaGb": 0.1}
    assert len(evaluation.of_type(INSIGHTS)) == 1
    settings = _app_settings(evaluation)
    assert settings[SETTING].startswith("InstrumentationKey=")
    assert "IngestionEndpoint=https://" in settings[SETTING]
    diagnostics = evaluation.of_type(DIAGNOSTICS)[0]
    assert diagnostics.inputs["resourceUri"] == "/mock/azure-native:web:WebApp/app-site"
    # The connection string is no stack output (not a secret, but nothing reads it from there either).
    assert not any(
        SETTING.lower() in name.lower() or "instrumentation" in str(value).lower()
        for name, value in evaluation.outputs.items()
    )


def test_monitoring_off_declares_nothing_and_sets_nothing(evaluate: Evaluate) -> None:
    """enableMonitoring: false: no workspace, no Application Insights, no diagnostics, no setting."""
    evaluation = evaluate(enableMonitoring=False)
    assert not evaluation.of_type(WORKSPACE)
    assert not evaluation.of_type(INSIGHTS)
    assert not evaluation.of_type(DIAGNOSTICS)
    assert SETTING not in _app_settings(evaluation)


def test_daily_cap_comes_from_config(evaluate: Evaluate) -> None:
    """monitoringDailyCapGb (a string in Pulumi config) becomes the workspace's daily quota."""
    evaluation = evaluate(monitoringDailyCapGb="0.5")
    assert evaluation.of_type(WORKSPACE)[0].inputs["workspaceCapping"] == {"dailyQuotaGb": 0.5}


@pytest.mark.parametrize("cap", ["0", "-1", "lots", "1000"])
def test_a_missing_or_absurd_cap_is_refused_naming_the_key(evaluate: Evaluate, cap: str) -> None:
    """No cap (0, -1), not a number, or beyond 100 GB/day: refused before anything is declared."""
    with pytest.raises(StackConfigError) as caught:
        evaluate(monitoringDailyCapGb=cap)
    assert "backend-iac:monitoringDailyCapGb" in caught.value.problems
