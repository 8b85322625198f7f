"""The API's own Entra app registration: declared by default, derived settings, none when bringing an issuer."""

from __future__ import annotations

import uuid

import pytest

from backend_iac.evaluate import DeclaredResource, Evaluation, evaluate_stack
from stack.components.api_registration import AZURE_CLI_CLIENT_ID
from tests.stack.conftest import REPO, Evaluate

APPLICATION = "azuread:index/application:Application"
IDENTIFIER_URI = "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
PRE_AUTHORIZED = "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized"
ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
ENTRA_TYPES = {APPLICATION, IDENTIFIER_URI, SERVICE_PRINCIPAL, PRE_AUTHORIZED, ROLE_ASSIGNMENT}
TENANT = "7f0c3c52-1c8f-4b0e-9d4e-3f5b6a7c8d9e"
CLIENT_ID = "0e8f7a6b-5c4d-4e3f-8a1b-2c3d4e5f6a7b"


def one(evaluation: Evaluation, type_token: str) -> DeclaredResource:
    found = evaluation.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def settings(evaluation: Evaluation) -> dict[str, str]:
    site = one(evaluation, "azure-native:web:WebApp")
    return {item["name"]: item["value"] for item in site.inputs["siteConfig"]["appSettings"]}


@pytest.fixture(scope="module")
def dev() -> Evaluation:
    """The committed dev stack, which sets no issuer: the registration is declared."""
    return evaluate_stack(REPO, "dev")


def test_application_is_single_tenant_and_issues_v2_tokens(dev: Evaluation) -> None:
    """One application, AzureADMyOrg, requestedAccessTokenVersion 2, owned by the deploy identity."""
    application = one(dev, APPLICATION)
    assert application.inputs["signInAudience"] == "AzureADMyOrg"
    assert application.inputs["api"]["requestedAccessTokenVersion"] == 2
    assert application.inputs["displayName"] == "backend-iac-dev API"
    assert application.inputs["owners"] == ["principal-id-of-github-deploy"]


def test_delegated_scopes_have_consent_texts(dev: Evaluation) -> None:
    """items.read and items.write as delegated scopes, enabled, with admin and user consent texts."""
    scopes = one(dev, APPLICATION).inputs["api"]["oauth2PermissionScopes"]
    assert sorted(scope["value"] for scope in scopes) == ["items.read", "items.write"]
    for scope in scopes:
        uuid.UUID(scope["id"])
        assert scope["enabled"] is True
        assert scope["type"] == "User"
        for text in ("adminConsentDisplayName", "adminConsentDescription"):
            assert scope[text]
        for text in ("userConsentDisplayName", "userConsentDescription"):
            assert scope[text]


def test_app_roles_are_for_applications(dev: Evaluation) -> None:
    """items.read and items.write as app roles that applications (client credentials) can hold."""
    roles = one(dev, APPLICATION).inputs["appRoles"]
    assert sorted(role["value"] for role in roles) == ["items.read", "items.write"]
    assert all(role["allowedMemberTypes"] == ["Application"] and role["enabled"] for role in roles)
    scope_ids = {scope["id"] for scope in one(dev, APPLICATION).inputs["api"]["oauth2PermissionScopes"]}
    role_ids = {role["id"] for role in roles}
    assert len(scope_ids | role_ids) == 4  # every permission id unique within the application


def test_identifier_uri_is_api_client_id_and_not_fought_over(dev: Evaluation) -> None:
    """api://<client id> by its own resource; the application ignores identifierUris so they never fight."""
    application = one(dev, APPLICATION)
    client_id = dev.outputs["api_client_id"]
    uuid.UUID(client_id)
    assert one(dev, IDENTIFIER_URI).inputs["identifierUri"] == f"api://{client_id}"
    assert dev.outputs["api_identifier_uri"] == f"api://{client_id}"
    assert "identifierUris" not in application.inputs
    assert "api-application" in one(dev, IDENTIFIER_URI).depends_on


def test_service_principal_belongs_to_the_application(dev: Evaluation) -> None:
    """The API's service principal is created from the application's client id."""
    principal = one(dev, SERVICE_PRINCIPAL)
    assert principal.inputs["clientId"] == dev.outputs["api_client_id"]


def test_azure_cli_is_pre_authorized_for_both_delegated_scopes(dev: Evaluation) -> None:
    """The Azure CLI's client id gets both scope ids, so a user's `az account get-access-token` needs no consent."""
    pre = one(dev, PRE_AUTHORIZED)
    assert pre.inputs["authorizedClientId"] == AZURE_CLI_CLIENT_ID == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    scope_ids = {scope["id"] for scope in one(dev, APPLICATION).inputs["api"]["oauth2PermissionScopes"]}
    assert set(pre.inputs["permissionIds"]) == scope_ids
    assert "api-application" in pre.depends_on


def test_deploy_identity_holds_items_read_on_the_api(dev: Evaluation) -> None:
    """The gate's identity gets the items.read app role on the API's service principal, nothing more."""
    assignment = one(dev, ROLE_ASSIGNMENT)
    roles = {role["value"]: role["id"] for role in one(dev, APPLICATION).inputs["appRoles"]}
    assert assignment.inputs["appRoleId"] == roles["items.read"]
    assert assignment.inputs["principalObjectId"] == "principal-id-of-github-deploy"
    assert assignment.inputs["resourceObjectId"] == str(
        uuid.uuid5(uuid.UUID("6d6f636b-0000-4000-8000-00000000cafe"), "object-id:api-service-principal")
    )
    assert "api-service-principal" in assignment.depends_on


def test_service_settings_and_outputs_are_derived_from_the_registration(dev: Evaluation) -> None:
    """AUTH_ISSUER is the tenant's v2.0 issuer and AUTH_AUDIENCE the client id; outputs say the same."""
    app = settings(dev)
    tenant = dev.outputs["tenant_id"]
    assert app["AUTH_ISSUER"] == f"https://login.microsoftonline.com/{tenant}/v2.0"
    assert app["AUTH_AUDIENCE"] == dev.outputs["api_client_id"]
    assert dev.outputs["auth_issuer"] == app["AUTH_ISSUER"]
    assert dev.outputs["auth_audience"] == app["AUTH_AUDIENCE"]


def test_bring_your_own_issuer_declares_no_registration(evaluate: Evaluate) -> None:
    """authIssuer + authAudience: used as given, no Entra resources, no api_* outputs."""
    issuer = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    evaluation = evaluate(authIssuer=issuer, authAudience=CLIENT_ID)
    assert not [r for r in evaluation.resources if r.type in ENTRA_TYPES]
    assert settings(evaluation)["AUTH_ISSUER"] == issuer
    assert settings(evaluation)["AUTH_AUDIENCE"] == CLIENT_ID
    assert evaluation.outputs["auth_issuer"] == issuer
    assert evaluation.outputs["auth_audience"] == CLIENT_ID
    assert "api_client_id" not in evaluation.outputs
    assert "api_identifier_uri" not in evaluation.outputs


def test_the_plan_shows_the_registration_at_no_cost() -> None:
    """`backend-iac plan` lists the Entra resources, priced at $0 with a note, never as unpriced."""
    from backend_iac.plan import build_report

    report = build_report(REPO, "dev")
    types = {resource["type"] for resource in report["resources"]}
    assert types >= ENTRA_TYPES
    assert report["violations"] == []
    assert report["estimate"]["unpriced"] == []
    assert any("Entra ID objects" in note and "$0" in note for note in report["estimate"]["notes"])
