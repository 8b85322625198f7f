"""The destroy workflow also removes what private mode bills: the private DNS zone."""

from __future__ import annotations

import json

from tests.backend_iac.delivery.test_workflows import jobs


def test_destroy_targets_and_checks_the_private_dns_zone() -> None:
    """The zone ($0.50 a month) is among the billable types destroyed, and the proof looks for it."""
    (job,) = jobs("destroy.yml").values()
    destroy = next(step for step in job["steps"] if "pulumi destroy" in str(step.get("run", "")))
    assert "azure-native:privatedns:PrivateZone" in json.loads(destroy["env"]["BILLABLE"])
    proof = next(step for step in job["steps"] if "az resource list" in str(step.get("run", "")))
    assert "type=='Microsoft.Network/privateDnsZones'" in proof["run"]
