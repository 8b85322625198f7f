"""The price table: every SKU the config accepts has a price, and the estimate says it is one."""

from __future__ import annotations

from backend_iac.evaluate import DeclaredResource
from backend_iac.pricing import APP_SERVICE_HOURLY, POSTGRES_HOURLY, estimate_monthly_cost
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
