"""Azure built-in role definitions the stack assigns (ids are the same in every tenant)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # `backend-iac plan` reads NAMES without starting Pulumi (about 0.1 s of imports)
    import pulumi

# Read everything in the scope, change nothing: pull-request previews.
READER: Final = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
# Manage every resource in the scope, but not role assignments: deploys (`pulumi up` on the group).
CONTRIBUTOR: Final = "b24988ac-6180-42a0-ab88-20f7382dd24c"
# Read secret values, nothing else: the web app resolving its Key Vault reference.
KEY_VAULT_SECRETS_USER: Final = "4633458b-17de-408a-b874-0445c86b69e6"

NAMES: Final = {
    READER: "Reader",
    CONTRIBUTOR: "Contributor",
    KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
}


def role_definition_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    """The subscription-scoped id ARM expects in a role assignment."""
    import pulumi

    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
    )
