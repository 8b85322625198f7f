"""The price table: every SKU the config accepts has a price, and the estimate says it is one."""

from __future__ import annotations

from backend_iac.evaluate import DeclaredResource
from backend_iac.pricing import (
    APP_SERVICE_HOURLY,
    HOURS_PER_MONTH,
    LOG_ANALYTICS_FREE_GB_PER_MONTH,
    LOG_ANALYTICS_GB,
    POSTGRES_HOURLY,
    estimate_monthly_cost,
)
from stack.components.postgres import SKU_NAME
from stack.config import APP_SERVICE_SKU_TIERS


def test_every_accepted_sku_is_priced() -> None:
    """No SKU passes config validation without a row in the price table."""
    assert set(APP_SERVICE_SKU_TIERS) == set(APP_SERVICE_HOURLY)
    assert SKU_NAME in POSTGRES_HOURLY


def test_other_regions_are_flagged_as_priced_at_east_us() -> None:
    """Outside East US the estimate says whose prices it used."""
    plan = DeclaredResource("azure-native:web:AppServicePlan", "p", {"sku": {"name": "B1", "capacity": 1}})
    assert any("westeurope" in note for note in estimate_monthly_cost([plan], "westeurope").notes)
    assert len(estimate_monthly_cost([plan], "eastus").notes) == 1


def test_unknown_sku_is_listed_as_unpriced() -> None:
    """A SKU missing from the table is reported, not priced at zero silently."""
    plan = DeclaredResource("azure-native:web:AppServicePlan", "p", {"sku": {"name": "I1v2", "capacity": 1}})
    estimate = estimate_monthly_cost([plan], "eastus")
    assert estimate.monthly_usd == 0
    assert estimate.unpriced == ("p: App Service SKU I1v2 is not in the price table",)


def _workspace(**inputs: object) -> DeclaredResource:
    return DeclaredResource(
        "azure-native:operationalinsights:Workspace", "logs", {"retentionInDays": 30, **inputs}
    )


def test_a_capped_workspace_is_priced_at_its_cap_less_the_free_allowance() -> None:
    """0.1 GB/day stays under the 5 GB free a month: $0, with the no-allowance worst case in a note."""
    estimate = estimate_monthly_cost([_workspace(workspaceCapping={"dailyQuotaGb": 0.1})], "eastus")
    (item,) = estimate.items
    assert item.monthly_usd == 0
    assert "0.1 GB/day cap (3.04 GB/month at most" in item.description
    worst = round(0.1 * HOURS_PER_MONTH / 24 * LOG_ANALYTICS_GB, 2)
    assert any(f"${worst:.2f}/month" in note for note in estimate.notes), estimate.notes


def test_a_bigger_cap_bills_what_exceeds_the_allowance() -> None:
    """1 GB/day: about 30.4 GB a month, 25.4 of them billed."""
    estimate = estimate_monthly_cost([_workspace(workspaceCapping={"dailyQuotaGb": 1})], "eastus")
    expected = round((HOURS_PER_MONTH / 24 - LOG_ANALYTICS_FREE_GB_PER_MONTH) * LOG_ANALYTICS_GB, 2)
    assert estimate.monthly_usd == expected


def test_an_uncapped_workspace_is_unpriced_not_free() -> None:
    """Without a cap there is no upper bound to print: it is listed as unpriced."""
    estimate = estimate_monthly_cost([_workspace(workspaceCapping={"dailyQuotaGb": -1})], "eastus")
    assert estimate.items == ()
    assert estimate.unpriced == ("logs: Log Analytics workspace without a daily cap: its cost is unbounded",)
