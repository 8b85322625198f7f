"""The policy pack's entry point: `pulumi preview --policy-pack policy/` runs this.

Constructing PolicyPack starts the analyzer's gRPC server and blocks, so it happens here only; the
rules themselves live in policy.rules, importable by tests and `backend-iac plan`.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import POLICIES

PolicyPack(
    name="backend-iac",
    description="HTTPS, TLS, no basic auth, health checks, private and current PostgreSQL, no plaintext secrets, SKU guard.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
