"""Policies for the monitoring resources (issue 13): a daily cap, bounded retention, and the one
connection string Microsoft documents as not secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from policy.rules import check

WORKSPACE = "azure-native:operationalinsights:Workspace"


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)


def workspace(**inputs: Any) -> Resource:
    return Resource(WORKSPACE, "logs", {"sku": {"name": "PerGB2018"}, **inputs})


def site_with(name: str, value: str) -> Resource:
    return Resource(
        "azure-native:web:WebApp",
        "site",
        {
            "httpsOnly": True,
            "siteConfig": {
                "minTlsVersion": "1.2",
                "ftpsState": "Disabled",
                "healthCheckPath": "/healthz",
                "appSettings": [{"name": name, "value": value}],
            },
        },
    )


def policies(resources: list[Resource]) -> list[str]:
    return [v.policy for v in check(resources) if v.policy != "basic-publishing-auth-declared"]


def test_a_capped_workspace_with_30_days_passes() -> None:
    """The stack's own workspace shape is compliant."""
    assert policies([workspace(retentionInDays=30, workspaceCapping={"dailyQuotaGb": 0.1})]) == []


@pytest.mark.parametrize("capping", [None, {}, {"dailyQuotaGb": -1}, {"dailyQuotaGb": 0}])
def test_a_workspace_without_a_daily_cap_is_refused(capping: dict[str, Any] | None) -> None:
    """No capping, no quota, ARM's -1 (unlimited) or 0: violation."""
    inputs: dict[str, Any] = {"retentionInDays": 30}
    if capping is not None:
        inputs["workspaceCapping"] = capping
    assert policies([workspace(**inputs)]) == ["log-workspace-daily-cap"]


@pytest.mark.parametrize(("days", "refused"), [(90, False), (91, True), (730, True)])
def test_retention_over_90_days_is_refused(days: int, refused: bool) -> None:
    """90 days is the most a workspace may keep."""
    found = policies([workspace(retentionInDays=days, workspaceCapping={"dailyQuotaGb": 0.1})])
    assert found == (["log-workspace-retention"] if refused else [])


def test_the_application_insights_connection_string_is_not_a_secret() -> None:
    """Microsoft: the ikey is not a secret; the setting passes, other *_CONNECTION_STRING names do not."""
    value = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x.in.applicationinsights.azure.com/"
    assert policies([site_with("APPLICATIONINSIGHTS_CONNECTION_STRING", value)]) == []
    assert policies([site_with("STORAGE_CONNECTION_STRING", "x")]) == ["no-plaintext-secrets-in-app-settings"]


def test_a_real_key_under_the_exempt_name_is_still_refused() -> None:
    """The exemption is for the name only: an AccountKey in its value is still a credential."""
    value = "InstrumentationKey=00000000-0000-0000-0000-000000000000;AccountKey=abc123"
    assert policies([site_with("APPLICATIONINSIGHTS_CONNECTION_STRING", value)]) == [
        "no-plaintext-secrets-in-app-settings"
    ]
