"""The Entra (AADSTS) errors a GitHub OIDC sign-in to Azure can end in: meaning, causes, what to check.

Meanings follow Microsoft's error reference (learn.microsoft.com/entra/identity-platform/reference-error-codes,
and login.microsoftonline.com/error?code=N) and the messages seen in azure/login issues. The checks name
this stack's own facts (subjects, identities, outputs) when the program can be evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from stack.github_subjects import GITHUB_ISSUER, TOKEN_EXCHANGE_AUDIENCE, subject_prefix_for


@dataclass(frozen=True)
class EntraError:
    code: str  # digits only, e.g. "700213"
    title: str  # the gist of Entra's own message
    meaning: str
    causes: tuple[str, ...]
    checks: tuple[str, ...]  # may use {repository}, {prefix}, {subjects}, {issuer}, {audience}


_SUBJECT_CHECKS: Final = (
    "The subjects this stack declares (exact, case-sensitive):\n{subjects}",
    "The exact subject each job presents, and who must trust it (allow exactly these, in Entra and in "
    "Pulumi Cloud's OIDC issuer policy, and nothing broader: no wildcard, no `pull_request` on anything "
    "that can write; `pulumi up` runs in `environment: production`, so its subject is the environment's, "
    "not the branch's):\n{jobs}",
    "Run `backend-iac doctor`: it derives the subject of every job that signs in and names the job "
    "whose subject has no credential.",
    "Compare the `subject claim` azure/login prints in the failed run with the list above, character "
    "for character; if it is missing, add the branch, tag or environment to githubBranches, githubTags "
    "or githubEnvironments and run `pulumi up`.",
    # GitHub's docs, "Immutable subject claims" (github/docs pull request 45221): "The immutable ID is
    # appended to each name with an `@` delimiter", e.g. repo:octocat@123456/my-repo@456789. The 2026-04-23
    # changelog's `-` form and June date were superseded; 2026-07-15 is the
    # date in issue 9 and in public repositories that hit the cutover (GitHub's own text with it unchecked).
    "If the printed subject carries numeric ids after the owner and the name, each after an `@` "
    "(`repo:owner@123/name@456:...`), the repository uses GitHub's immutable subject format (the default "
    "for repositories created after 2026-07-15 and for renames and transfers after that date, and for "
    "those opted in): copy everything before `:ref:`, `:environment:` or "
    "`:pull_request` (or the prefix the repository's OIDC settings preview) into githubSubjectPrefix, "
    "e.g. `pulumi config set githubSubjectPrefix 'repo:owner@123/name@456'`, and run `pulumi up` "
    "(this stack's subjects start with `{prefix}`).",
)

ERRORS: Final[Mapping[str, EntraError]] = {
    error.code: error
    for error in (
        EntraError(
            "700016",
            "Application with identifier '<client id>' was not found in the directory '<tenant>'",
            "Entra has no application or managed identity with that client id in the tenant the sign-in "
            "asked. The federated credential is never looked at: the client id or the tenant is wrong.",
            (
                "The client-id variable holds an old id: `pulumi destroy` followed by `pulumi up` creates "
                "new identities with new client ids.",
                "The tenant-id variable names another tenant than the subscription's.",
                "The preview and deploy client ids are swapped, or a variable is unset in this "
                "repository (a fork has none of the parent's variables).",
            ),
            (
                "AZURE_CLIENT_ID equals `pulumi stack output ci_identity_client_id`.",
                "AZURE_PREVIEW_CLIENT_ID equals `pulumi stack output ci_preview_identity_client_id`.",
                "AZURE_TENANT_ID equals `pulumi stack output tenant_id`, AZURE_SUBSCRIPTION_ID equals "
                "`pulumi stack output subscription_id` (Settings > Secrets and variables > Actions > "
                "Variables).",
            ),
        ),
        EntraError(
            "70021",
            "No matching federated identity record found for presented assertion",
            "The older, combined form of 700211/700212/700213: no federated credential on the identity "
            "matches the token's issuer, subject and audience together. The message lists all three.",
            (
                "The subject does not match (most often: a branch, environment or pull request the "
                "stack declares no credential for).",
                "The issuer or audience on the credential differs from what GitHub sends.",
            ),
            (
                "Issuer must be exactly {issuer}; audience exactly {audience}.",
                *_SUBJECT_CHECKS,
            ),
        ),
        EntraError(
            "700211",
            "No matching federated identity record found for presented assertion issuer",
            "No credential on the identity trusts the token's issuer.",
            (
                "A credential with a different issuer (a trailing slash, or an enterprise-specific "
                "issuer `https://token.actions.githubusercontent.com/<enterprise>` when the enterprise "
                "customised it).",
                "The client id belongs to another identity, one without GitHub credentials.",
            ),
            (
                "Every credential this stack declares uses issuer {issuer} (stack/github_subjects.py).",
                "The client id is this stack's identity (see 700016).",
            ),
        ),
        EntraError(
            "700212",
            "No matching federated identity record found for presented assertion audience",
            "The token's audience is not the one the credential accepts.",
            (
                "The workflow asks GitHub for a token with another audience (azure/login's `audience` "
                "input, or a custom token request).",
            ),
            (
                "The credential's audience is {audience}; leave azure/login's `audience` input unset "
                "(its default is the same value).",
            ),
        ),
        EntraError(
            "700213",
            "No matching federated identity record found for presented assertion subject '<subject>'",
            "Issuer and audience match, but no credential on this identity has the token's exact "
            "subject. The subject comes from the job: `environment:` wins, then the event "
            "(pull_request), then the ref (branch or tag).",
            (
                "The job runs on a branch, tag or environment the stack declares no credential for "
                "(a workflow_dispatch from a feature branch, a new environment, a release tag).",
                "The job gained or lost an `environment:`: with one, the subject is "
                "`{prefix}:environment:<name>`, never the branch.",
                "The pull_request subject lives on the preview identity: signing in with the deploy "
                "client id from a pull request (or the other way round) finds no credential.",
                "The repository was renamed, transferred or forked: githubRepository still names the "
                "old owner/name.",
                "The repository presents GitHub's immutable subject format, with owner and repository "
                "ids, and githubSubjectPrefix is unset or stale, so the "
                "credentials carry the name-only form.",
            ),
            _SUBJECT_CHECKS,
        ),
        EntraError(
            "7002138",
            "No matching federated identity record found for presented assertion subject: the subject "
            "matches with case-insensitive comparison, but not with case-sensitive comparison",
            "Entra compares subjects case-sensitively. The credential differs from the token only in "
            "letter case: usually the owner, repository or environment name.",
            (
                "githubRepository spelled in another case than GitHub shows it (`Example-Org` vs "
                "`example-org`).",
                "An environment named `Production` in GitHub and `production` in githubEnvironments.",
            ),
            (
                "githubRepository is `{repository}`; it must be spelled exactly as the repository's URL "
                "on GitHub (`backend-iac doctor` compares it with the `origin` remote).",
                *_SUBJECT_CHECKS,
            ),
        ),
        EntraError(
            "700024",
            "Client assertion is not within its valid time range",
            "The GitHub OIDC token presented to Entra has expired (GitHub's ID tokens are short-lived). "
            "It happens when a tool keeps the assertion from the sign-in and presents it again later, "
            "for example the Azure CLI refreshing its access token deep into a long job.",
            (
                "azure/login ran early and the Azure step that fails ran much later (a long `pulumi up`, "
                "a slow build between them).",
                "The runner's clock is far off (self-hosted runners).",
            ),
            (
                "Sign in just before the step that needs Azure; sign in again after a long step "
                "(deploy.yml and destroy.yml do both).",
                "For Pulumi, ARM_USE_OIDC=true lets the provider request a fresh GitHub token whenever it "
                "needs one instead of reusing an old assertion.",
            ),
        ),
        EntraError(
            "70025",
            "The client has no configured federated identity credentials",
            "The identity exists but has no federated credential at all.",
            (
                "The credentials were never created (the first `pulumi up` stopped half-way) or were "
                "deleted by hand.",
                "The client id names the web app's own identity (app-identity), not a CI identity.",
                "The credentials were created moments ago: Entra takes a minute or two to propagate new "
                "federated credentials, so a run started right after `pulumi up` can fail once.",
            ),
            (
                "`pulumi up` completed for this stack; the credentials this stack declares:\n{subjects}",
                "The client id is a CI identity's (see 700016).",
            ),
        ),
        EntraError(
            "7000215",
            "Invalid client secret provided",
            "The sign-in used a client secret, not OIDC: this stack's identities have no secrets.",
            (
                "azure/login given `creds:` (a service-principal JSON) instead of client-id, tenant-id "
                "and subscription-id.",
                "An expired secret left over from a setup before OIDC.",
            ),
            (
                "The login step passes client-id, tenant-id and subscription-id from variables, and the "
                "job has `permissions: id-token: write`; remove `creds:` and AZURE_CREDENTIALS.",
            ),
        ),
        EntraError(
            "90002",
            "Tenant '<tenant>' not found",
            "The tenant id the sign-in names does not exist (or is not a tenant id at all).",
            ("AZURE_TENANT_ID unset, mistyped, or holding the subscription id.",),
            ("AZURE_TENANT_ID equals `pulumi stack output tenant_id`.",),
        ),
    )
}


def normalise(code: str) -> str:
    """'AADSTS700016', 'aadsts700016' and '700016' all mean 700016."""
    return code.strip().upper().removeprefix("AADSTS")


def explain(
    code: str,
    *,
    repository: str | None,
    subjects: Sequence[str],
    prefix: str | None = None,
    jobs: Sequence[str] = (),
) -> str | None:
    """The explanation for one code, with this stack's facts filled in; None for a code not known here."""
    error = ERRORS.get(normalise(code))
    if error is None:
        return None
    listed = (
        "\n".join(f"      {subject}" for subject in subjects) or "      (the stack could not be evaluated)"
    )
    facts = {
        "jobs": "\n".join(f"      {job}" for job in jobs) or "      (no workflow job signs in)",
        "repository": repository or "<githubRepository>",
        "prefix": subject_prefix_for(repository or "<githubRepository>", prefix or ""),
        "subjects": listed,
        "issuer": GITHUB_ISSUER,
        "audience": TOKEN_EXCHANGE_AUDIENCE,
    }
    lines = [f"AADSTS{error.code}: {error.title}", "", error.meaning.format(**facts), "", "Usual causes:"]
    lines += [f"  - {cause.format(**facts)}" for cause in error.causes]
    lines += ["", "What to check on this stack:"]
    lines += [f"  - {check.format(**facts)}" for check in error.checks]
    return "\n".join(lines) + "\n"


def known_codes() -> list[str]:
    return [f"AADSTS{code}" for code in ERRORS]
