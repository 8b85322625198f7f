"""GitHubOidc: the identities GitHub Actions sign in to Azure with, by OIDC token exchange (no secrets).

Azure grants roles to a principal, not to one of its federated credentials, so a read-only
pull-request preview and a deploy need two identities: `deploy` (Contributor on the resource group)
for branch, tag and environment subjects, and `preview` (Reader) for the pull_request subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, managedidentity

from stack import azure_roles
from stack.github_subjects import GITHUB_ISSUER, TOKEN_EXCHANGE_AUDIENCE, Purpose, Subject

ROLE_FOR: Mapping[Purpose, str] = {"deploy": azure_roles.CONTRIBUTOR, "preview": azure_roles.READER}


@dataclass
class GitHubOidcArgs:
    """The subjects to trust and the resource group the identities get their roles on."""

    resource_group_name: pulumi.Input[str]
    resource_group_id: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    subjects: Sequence[Subject]
    tags: Mapping[str, str] = field(default_factory=dict)


class GitHubOidc(pulumi.ComponentResource):
    """One user-assigned identity per purpose, a federated credential per subject, a role per identity."""

    deploy_client_id: pulumi.Output[str]
    deploy_principal_id: pulumi.Output[str]
    preview_client_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: GitHubOidcArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("backend-iac:index:GitHubOidc", name, None, opts)
        client_ids: dict[Purpose, pulumi.Output[str]] = {}
        principal_ids: dict[Purpose, pulumi.Output[str]] = {}
        # deploy always exists (the deploy workflow needs it); preview only when a subject asks for it.
        purposes: list[Purpose] = ["deploy"]
        if any(subject.purpose == "preview" for subject in args.subjects):
            purposes.append("preview")

        for purpose in purposes:
            identity = managedidentity.UserAssignedIdentity(
                f"{name}-{purpose}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            client_ids[purpose] = identity.client_id
            principal_ids[purpose] = identity.principal_id
            # Entra refuses concurrent writes of federated credentials on one identity: chain them.
            previous: list[pulumi.Resource] = []
            for subject in (s for s in args.subjects if s.purpose == purpose):
                credential = managedidentity.FederatedIdentityCredential(
                    f"{name}-{purpose}-{subject.credential_name}",
                    resource_group_name=args.resource_group_name,
                    resource_name_=identity.name,
                    federated_identity_credential_resource_name=subject.credential_name,
                    issuer=GITHUB_ISSUER,
                    audiences=[TOKEN_EXCHANGE_AUDIENCE],
                    subject=subject.subject,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
                )
                previous = [credential]
            role = ROLE_FOR[purpose]
            authorization.RoleAssignment(
                f"{name}-{purpose}-{azure_roles.NAMES[role].lower()}",
                principal_id=identity.principal_id,
                # ServicePrincipal skips the Entra lookup that fails while a brand-new identity replicates.
                principal_type="ServicePrincipal",
                role_definition_id=azure_roles.role_definition_id(args.subscription_id, role),
                scope=args.resource_group_id,
                description=f"GitHub Actions ({purpose}) on this stack's resource group.",
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.deploy_client_id = client_ids["deploy"]
        self.deploy_principal_id = principal_ids["deploy"]
        self.preview_client_id = client_ids.get("preview")
        outputs: dict[str, pulumi.Output[str]] = {"deploy_client_id": self.deploy_client_id}
        if self.preview_client_id is not None:
            outputs["preview_client_id"] = self.preview_client_id
        self.register_outputs(outputs)
