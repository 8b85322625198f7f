"""The API's permissions and the Azure CLI's client id: constants only, so that `backend-iac plan` can
name the ids it prints without importing Pulumi or pulumi-azuread (stack/components/api_registration.py
declares the registration from them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

# The Azure CLI's public client id (Azure/azure-cli, src/azure-cli-core/azure/cli/core/auth/constants.py:
# AZURE_CLI_CLIENT_ID).
AZURE_CLI_CLIENT_ID: Final = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


@dataclass(frozen=True)
class Permission:
    """One permission the API defines, both as a delegated scope and as an app role (same value)."""

    value: str
    scope_id: str  # a fixed UUID: Entra identifies the permission by it, so it must never change
    role_id: str
    title: str
    description: str


# The values are the scopes the service checks (service/routes/items.py).
PERMISSIONS: Final = (
    Permission(
        value="items.read",
        scope_id="3781523c-e552-4904-be43-b71df518fdf1",
        role_id="d4ae21e8-103e-43bb-8871-34e2c5b3eda8",
        title="Read items",
        description="Read the items of the backend-iac API.",
    ),
    Permission(
        value="items.write",
        scope_id="cb7b1c5f-2994-4e9d-9646-0bf93f45043f",
        role_id="11c9582e-2816-4466-b6e6-c55791df6345",
        title="Create, change and delete items",
        description="Create, change and delete the items of the backend-iac API.",
    ),
)
ROLE_IDS: Final[Mapping[str, str]] = {permission.value: permission.role_id for permission in PERMISSIONS}
# The app role the deploy identity holds: the runtime gate only reads.
GATE_ROLE: Final = "items.read"
