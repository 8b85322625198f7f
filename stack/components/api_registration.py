"""ApiRegistration: the API's own Entra app registration, the issuer and audience its tokens carry.

Declared when the stack config names no issuer (`authIssuer`): a single-tenant application that issues
v2.0 access tokens (`requested_access_token_version=2`), so a token's `iss` is
`https://login.microsoftonline.com/<tenant>/v2.0` and its `aud` the application's client id, which
is exactly what the service is then configured with (Entra's access token claims reference:
https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference, `aud` and `iss`).

- delegated scopes `items.read` / `items.write`, for people calling through a client (`scp` claim);
- app roles `items.read` / `items.write` for applications (client credentials: `roles` claim);
- identifier URI `api://<client id>`, set by a second resource because it needs the client id the
  application gets when created (pulumi-azuread `ApplicationIdentifierUri`; its docs say to ignore
  `identifierUris` on the application when both are used);
- the Azure CLI pre-authorized for the delegated scopes, so a signed-in user of the tenant gets a token
  with `az account get-access-token --scope api://<client id>/items.read` and no consent prompt;
- the deploy identity holds the `items.read` app role, so the deploy workflow's runtime gate can make an
  authenticated call with an app-only token.

Resource and argument names: the installed pulumi_azuread SDK (6.x): Application, ApplicationApiArgs,
ApplicationApiOauth2PermissionScopeArgs, ApplicationAppRoleArgs, ApplicationIdentifierUri,
ServicePrincipal, ApplicationPreAuthorized, AppRoleAssignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_azuread as azuread

from stack.api_permissions import AZURE_CLI_CLIENT_ID, GATE_ROLE, PERMISSIONS, ROLE_IDS

ENTRA_LOGIN: Final = "https://login.microsoftonline.com"
# Single tenant: only this tenant's users and applications get tokens for the API.
SIGN_IN_AUDIENCE: Final = "AzureADMyOrg"
ACCESS_TOKEN_VERSION: Final = 2


def v2_issuer(tenant_id: str) -> str:
    """The `iss` of this tenant's v2.0 access tokens."""
    return f"{ENTRA_LOGIN}/{tenant_id}/v2.0"


@dataclass
class ApiRegistrationArgs:
    display_name: str
    tenant_id: pulumi.Input[str]
    # The object id of the deploy identity's service principal (a managed identity's principal id).
    deploy_principal_id: pulumi.Input[str]


class ApiRegistration(pulumi.ComponentResource):
    """The API's application, its service principal, identifier URI, CLI pre-authorization, gate role."""

    client_id: pulumi.Output[str]
    identifier_uri: pulumi.Output[str]
    issuer: pulumi.Output[str]
    audience: pulumi.Output[str]

    def __init__(
        self, name: str, args: ApiRegistrationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("backend-iac:index:ApiRegistration", name, None, opts)
        application = azuread.Application(
            f"{name}-application",
            display_name=args.display_name,
            sign_in_audience=SIGN_IN_AUDIENCE,
            # The deploy identity owns the registration, so CI can change it with the narrow
            # Application.ReadWrite.OwnedBy Graph permission (docs/stack.md).
            owners=[args.deploy_principal_id],
            api=azuread.ApplicationApiArgs(
                requested_access_token_version=ACCESS_TOKEN_VERSION,
                oauth2_permission_scopes=[
                    azuread.ApplicationApiOauth2PermissionScopeArgs(
                        id=permission.scope_id,
                        value=permission.value,
                        type="User",
                        enabled=True,
                        admin_consent_display_name=permission.title,
                        admin_consent_description=f"{permission.description} on behalf of the signed-in user.",
                        user_consent_display_name=permission.title,
                        user_consent_description=f"{permission.description} as you.",
                    )
                    for permission in PERMISSIONS
                ],
            ),
            app_roles=[
                azuread.ApplicationAppRoleArgs(
                    id=permission.role_id,
                    value=permission.value,
                    allowed_member_types=["Application"],
                    display_name=permission.title,
                    description=f"{permission.description} as an application (no user).",
                    enabled=True,
                )
                for permission in PERMISSIONS
            ],
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["identifierUris"]),
        )
        identifier = azuread.ApplicationIdentifierUri(
            f"{name}-identifier-uri",
            application_id=application.id,
            identifier_uri=application.client_id.apply(lambda client_id: f"api://{client_id}"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        principal = azuread.ServicePrincipal(
            f"{name}-service-principal",
            client_id=application.client_id,
            owners=[args.deploy_principal_id],
            opts=pulumi.ResourceOptions(parent=self),
        )
        azuread.ApplicationPreAuthorized(
            f"{name}-azure-cli",
            application_id=application.id,
            authorized_client_id=AZURE_CLI_CLIENT_ID,
            permission_ids=[permission.scope_id for permission in PERMISSIONS],
            opts=pulumi.ResourceOptions(parent=self),
        )
        azuread.AppRoleAssignment(
            f"{name}-deploy-{GATE_ROLE.replace('.', '-')}",
            app_role_id=ROLE_IDS[GATE_ROLE],
            principal_object_id=args.deploy_principal_id,
            resource_object_id=principal.object_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.client_id = application.client_id
        self.identifier_uri = identifier.identifier_uri
        self.issuer = pulumi.Output.from_input(args.tenant_id).apply(v2_issuer)
        self.audience = application.client_id
        self.register_outputs(
            {
                "client_id": self.client_id,
                "identifier_uri": self.identifier_uri,
                "issuer": self.issuer,
                "audience": self.audience,
            }
        )
