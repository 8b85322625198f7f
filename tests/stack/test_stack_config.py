"""StackConfig: Pulumi.yaml's defaults apply, and every invalid value is refused naming its key."""

from __future__ import annotations

import pytest

from stack.config import PYTHON_VERSIONS, StackConfigError, parse_stack_config

DEFAULTS = {
    "githubBranches": '["main"]',
    "githubTags": "[]",
    "githubEnvironments": "[]",
    "githubPullRequests": "true",
    "appServiceSku": "B1",
    "instanceCount": "1",
    "pythonVersion": "3.12",
    "enablePostgres": "false",
    "postgresAuth": "managed-identity",
    "postgresDatabaseName": "backend",
    "postgresAdminLogin": "backendadmin",
    "postgresNetwork": "private",
    "vnetAddressSpace": "10.20.0.0/22",
    "appSubnetPrefix": "10.20.0.0/26",
    "postgresSubnetPrefix": "10.20.1.0/27",
    "githubRepository": "Example-Org/backend-iac",
    "authIssuer": "",
    "authAudience": "",
}
TENANT = "7f0c3c52-1c8f-4b0e-9d4e-3f5b6a7c8d9e"
CLIENT_ID = "0e8f7a6b-5c4d-4e3f-8a1b-2c3d4e5f6a7b"
V2_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
V1_ISSUER = f"https://sts.windows.net/{TENANT}/"


def parse(**changes: str | None) -> object:
    values = {**DEFAULTS, **changes}
    return parse_stack_config(
        {key: value for key, value in values.items() if value is not None},
        stack="test",
        location="westeurope",
    )


def problems(**changes: str | None) -> dict[str, str]:
    with pytest.raises(StackConfigError) as caught:
        parse(**changes)
    return caught.value.problems


def test_defaults_give_a_b1_plan_with_one_instance_and_no_database() -> None:
    """The declared defaults: B1, one instance, Python 3.12, no Postgres, main branch and PR previews."""
    config = parse_stack_config(DEFAULTS, stack="dev", location="westeurope")
    assert config.app_service_sku == "B1"
    assert config.instance_count == 1
    assert config.python_version == "3.12"
    assert config.enable_postgres is False
    assert config.github_branches == ("main",)
    assert config.github_pull_requests is True
    assert config.resource_group_name == "rg-backend-iac-dev"
    assert config.tags == {"project": "backend-iac", "stack": "dev", "managed-by": "pulumi"}


def test_config_is_frozen() -> None:
    """StackConfig cannot be changed after it is read."""
    config = parse_stack_config(DEFAULTS, stack="dev", location="westeurope")
    with pytest.raises(AttributeError):
        config.app_service_sku = "P1v3"  # type: ignore[misc]


@pytest.mark.parametrize(
    "repository", ["backend-iac", "org/", "/repo", "org/repo/extra", "-org/repo", "org/re po"]
)
def test_repository_must_be_owner_slash_name(repository: str) -> None:
    """A githubRepository that is not owner/name is refused, naming the key."""
    assert "backend-iac:githubRepository" in problems(githubRepository=repository)


def test_repository_keeps_its_case() -> None:
    """Entra matches subjects case-sensitively, so the repository is kept exactly as written."""
    assert parse(githubRepository="Example-Org/Backend.IaC").github_repository == "Example-Org/Backend.IaC"  # type: ignore[attr-defined]


def test_unknown_sku_is_refused() -> None:
    """An App Service SKU outside the known list (F1 included) is refused, naming the key."""
    assert "unknown SKU 'F1'" in problems(appServiceSku="F1")["backend-iac:appServiceSku"]
    assert "backend-iac:appServiceSku" in problems(appServiceSku="Z9")


@pytest.mark.parametrize("version", ["3.8", "3.9", "3.10", "2.7", "3.15", "latest"])
def test_python_version_app_service_does_not_offer_is_refused(version: str) -> None:
    """A pythonVersion outside App Service's Linux runtimes for this service is refused, naming the key."""
    assert "backend-iac:pythonVersion" in problems(pythonVersion=version)


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_offered_python_versions_are_accepted(version: str) -> None:
    """Every listed Python version parses."""
    assert parse(pythonVersion=version).python_version == version  # type: ignore[attr-defined]


@pytest.mark.parametrize("count", ["0", "11", "two"])
def test_instance_count_out_of_range_is_refused(count: str) -> None:
    """instanceCount must be an integer from 1 to 10."""
    assert "backend-iac:instanceCount" in problems(instanceCount=count)


def test_basic_plans_stop_at_three_instances() -> None:
    """App Service's Basic tier scales to 3 instances; Standard goes further."""
    assert "B1" in problems(instanceCount="4")["backend-iac:instanceCount"]
    assert parse(appServiceSku="S1", instanceCount="4").instance_count == 4  # type: ignore[attr-defined]


def test_password_auth_without_postgres_contradicts() -> None:
    """postgresAuth: password with enablePostgres false is a contradiction, named by key."""
    assert "enablePostgres" in problems(postgresAuth="password")["backend-iac:postgresAuth"]


def test_unknown_postgres_auth_is_refused() -> None:
    """postgresAuth accepts only managed-identity or password."""
    assert "backend-iac:postgresAuth" in problems(enablePostgres="true", postgresAuth="aad")


@pytest.mark.parametrize("login", ["admin", "postgres", "azure_superuser", "Admin-1"])
def test_password_mode_refuses_logins_azure_rejects(login: str) -> None:
    """In password mode a reserved or malformed administrator login is refused, naming the key."""
    assert "backend-iac:postgresAdminLogin" in problems(
        enablePostgres="true", postgresAuth="password", postgresAdminLogin=login
    )


def test_wildcard_branch_is_refused() -> None:
    """Entra matches subjects literally: a wildcard branch would never match, so it is refused."""
    assert "backend-iac:githubBranches" in problems(githubBranches='["release/*"]')


def test_branches_whose_credential_names_collide_are_refused() -> None:
    """release/1 and release-1 would share a credential name in Azure, so the pair is refused."""
    assert "backend-iac:githubBranches" in problems(githubBranches='["release/1", "release-1"]')


def test_non_list_environments_are_refused() -> None:
    """githubEnvironments must be a list of names."""
    assert "backend-iac:githubEnvironments" in problems(githubEnvironments='"production"')


def test_http_issuer_is_refused() -> None:
    """authIssuer must be https (the service refuses anything else in production)."""
    assert "backend-iac:authIssuer" in problems(authIssuer="http://issuer.example", authAudience="x")


def test_missing_required_keys_are_each_named() -> None:
    """Every missing required key is named in one error, not one at a time."""
    found = problems(githubRepository=None, pythonVersion="2.7")
    assert {"backend-iac:githubRepository", "backend-iac:pythonVersion"} <= set(found)


def test_no_issuer_means_the_stack_declares_the_registration() -> None:
    """authIssuer and authAudience unset (the default): no bring-your-own pair, a declared registration."""
    config = parse(authIssuer=None, authAudience=None)
    assert config.declares_api_registration is True  # type: ignore[attr-defined]
    assert parse().declares_api_registration is True  # type: ignore[attr-defined]


def test_bring_your_own_issuer_is_kept_and_declares_nothing() -> None:
    """A v2.0 Entra issuer with the API's client id (a GUID) is the override: no registration."""
    config = parse(authIssuer=V2_ISSUER, authAudience=CLIENT_ID)
    assert config.declares_api_registration is False  # type: ignore[attr-defined]
    assert (config.auth_issuer, config.auth_audience) == (V2_ISSUER, CLIENT_ID)  # type: ignore[attr-defined]
    other = parse(authIssuer="https://idp.example/realms/api", authAudience="backend")
    assert other.auth_audience == "backend"  # type: ignore[attr-defined]


@pytest.mark.parametrize("audience", ["api://backend-iac", f"api://{CLIENT_ID}", "backend"])
def test_v2_issuer_with_a_non_guid_audience_is_refused_naming_both_keys(audience: str) -> None:
    """The old documented example (v2.0 issuer + api:// audience) can never validate a v2.0 token."""
    found = problems(authIssuer=V2_ISSUER, authAudience=audience)
    message = found["backend-iac:authAudience"]
    assert "client id" in message
    assert "backend-iac:authIssuer" in message
    assert "GUID" in message


def test_v2_issuer_needs_the_tenant_id_not_a_name() -> None:
    """`common` or a domain never appears in a token's iss: refused on authIssuer."""
    found = problems(authIssuer="https://login.microsoftonline.com/common/v2.0", authAudience=CLIENT_ID)
    assert "tenant id" in found["backend-iac:authIssuer"]


def test_v1_issuer_is_accepted_exactly_and_explained() -> None:
    """sts.windows.net/<tenant>/ is Entra's v1.0 issuer: accepted as written, with a note on v1.0 tokens."""
    from stack.config import entra_v1_note

    config = parse(authIssuer=V1_ISSUER, authAudience="api://backend-iac")
    assert config.auth_issuer == V1_ISSUER  # type: ignore[attr-defined]
    note = entra_v1_note(V1_ISSUER)
    assert note is not None
    assert "v1.0" in note
    assert "requestedAccessTokenVersion" in note
    assert "backend-iac:authAudience" in note
    assert entra_v1_note(V2_ISSUER) is None
    # Without the trailing slash it is no issuer Entra writes into a token.
    assert (
        "trailing slash"
        in problems(authIssuer=V1_ISSUER.rstrip("/"), authAudience="api://x")["backend-iac:authIssuer"]
    )


def test_login_issuer_without_v2_is_refused() -> None:
    """https://login.microsoftonline.com/<tenant>/ is neither token version's iss."""
    found = problems(authIssuer=f"https://login.microsoftonline.com/{TENANT}/", authAudience=CLIENT_ID)
    assert "sts.windows.net" in found["backend-iac:authIssuer"]


@pytest.mark.parametrize(
    ("issuer", "audience", "missing"),
    [(V2_ISSUER, None, "backend-iac:authAudience"), (None, CLIENT_ID, "backend-iac:authIssuer")],
)
def test_issuer_and_audience_go_together(issuer: str | None, audience: str | None, missing: str) -> None:
    """One of the pair without the other is refused, naming the missing key and the other."""
    found = problems(authIssuer=issuer, authAudience=audience)
    assert set(found) == {missing}
    assert "go together" in found[missing]


def test_missing_location_names_the_provider_key() -> None:
    """Without azure-native:location the error names that key."""
    with pytest.raises(StackConfigError, match="azure-native:location"):
        parse_stack_config(DEFAULTS, stack="dev", location=None)


def test_subject_prefix_defaults_to_the_repository() -> None:
    """Unset or empty githubSubjectPrefix means `repo:<githubRepository>`."""
    assert parse().subject_prefix == "repo:Example-Org/backend-iac"  # type: ignore[attr-defined]
    config = parse(githubSubjectPrefix="")
    assert config.github_subject_prefix == ""  # type: ignore[attr-defined]
    assert config.subject_prefix == "repo:Example-Org/backend-iac"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "prefix", ["repo:octocat@123456/my-repo@456789", "repo:octocat-123456/my-repo-456789"]
)
def test_subject_prefix_is_kept_exactly(prefix: str) -> None:
    """A prefix copied from GitHub is kept as written and replaces the repository in subjects."""
    config = parse(githubSubjectPrefix=prefix)
    assert config.github_subject_prefix == prefix  # type: ignore[attr-defined]
    assert config.subject_prefix == prefix  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("prefix", "says"),
    [
        ("octocat@123456/my-repo@456789", "must start with `repo:`"),
        ("repo:octocat/my-repo:ref:refs/heads/main", "':'"),
        ("repo:octocat/my-repo:", "':'"),
        ("repo:octocat/my repo", "whitespace"),
        ("repo:octocat/my-repo ", "whitespace"),
        ("repo:octocat/*", "wildcards"),
        ("repo:octocat/my-rep?", "wildcards"),
        ("repo:", "repo:<owner>/<name>"),
        ("repo:octocat", "repo:<owner>/<name>"),
        ("repo:octocat/my-repo/extra", "repo:<owner>/<name>"),
    ],
)
def test_malformed_subject_prefix_is_refused(prefix: str, says: str) -> None:
    """A githubSubjectPrefix that cannot start a literal subject is refused, naming the key and why."""
    assert says in problems(githubSubjectPrefix=prefix)["backend-iac:githubSubjectPrefix"]
