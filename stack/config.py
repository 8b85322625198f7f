"""The stack's settings: read once from Pulumi config into a frozen, validated StackConfig.

Pulumi.yaml declares every key with its type, description and default; the Pulumi CLI (and
`backend-iac plan`, which mimics it) fills the defaults in, so this module holds no second copy of them.
Values arrive as Pulumi passes them to a program: strings, with arrays as JSON and booleans as
"true"/"false". `parse_stack_config` is pure, so tests and the offline tools validate without Pulumi.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from stack.github_subjects import subject_prefix_for

# The config key namespace: the project's own keys are `backend-iac:<name>` (Pulumi.yaml's `name`).
PROJECT: Final = "backend-iac"
LOCATION_KEY: Final = "azure-native:location"

# Linux App Service plan SKUs this stack knows the tier (and price) of. F1/D1 are left out on purpose:
# they cannot run alwaysOn, and a health-checked API that sleeps is not what this repo deploys.
APP_SERVICE_SKU_TIERS: Final[Mapping[str, str]] = {
    "B1": "Basic",
    "B2": "Basic",
    "B3": "Basic",
    "S1": "Standard",
    "S2": "Standard",
    "S3": "Standard",
    "P0v3": "PremiumV3",
    "P1v3": "PremiumV3",
    "P2v3": "PremiumV3",
    "P3v3": "PremiumV3",
}

# Python versions of App Service's Linux runtime (`az webapp list-runtimes --os linux`) that this
# service supports (pyproject: requires-python >= 3.11). Checked against Microsoft's runtime support
# page as of 2026-11; App Service retires a version at its community end of life.
PYTHON_VERSIONS: Final = ("3.11", "3.12", "3.13", "3.14")

MAX_INSTANCES: Final = 10
# App Service's own scale-out limits per tier (Basic plans stop at 3 instances).
TIER_MAX_INSTANCES: Final[Mapping[str, int]] = {"Basic": 3, "Standard": 10, "PremiumV3": 30}
# Entra accepts at most 20 federated identity credentials on one user-assigned identity.
MAX_FEDERATED_CREDENTIALS: Final = 20

# Past this a day the cap stops being a guard (100 GB/day is where commitment tiers start).
MAX_MONITORING_DAILY_CAP_GB: Final = 100.0
DEFAULT_MONITORING_DAILY_CAP_GB: Final = 0.1  # Pulumi.yaml's default, for callers that pass no value

PostgresAuth = Literal["managed-identity", "password"]
POSTGRES_AUTH_MODES: Final[tuple[PostgresAuth, ...]] = ("managed-identity", "password")

PostgresNetwork = Literal["private", "public"]
POSTGRES_NETWORKS: Final[tuple[PostgresNetwork, ...]] = ("private", "public")
# The smallest subnets Azure accepts, as a prefix length (a /28 is 16 addresses, 11 usable after Azure's
# five reserved ones). App Service VNet integration: "The subnet must be allocated an IPv4 /28 block (16
# addresses). We recommend ... /26" (MicrosoftDocs/azure-docs articles/app-service/configure-vnet-integration-
# enable.md). PostgreSQL Flexible Server delegated subnet: "The smallest CIDR range you can specify for the
# subnet is /28" (MicrosoftDocs/azure-docs articles/postgresql/flexible-server/concepts-networking-private.md).
MIN_APP_SUBNET_PREFIX: Final = 28
MIN_POSTGRES_SUBNET_PREFIX: Final = 28
NETWORK_KEYS: Final = ("vnetAddressSpace", "appSubnetPrefix", "postgresSubnetPrefix")

# owner: letters, digits, single hyphens; name: letters, digits, '.', '_', '-' (GitHub's own rules).
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/[A-Za-z0-9._-]{1,100}$")
# Characters a branch, tag or environment name may hold in a federated subject: Entra matches the
# subject literally (no wildcards), and ':' would make the subject ambiguous.
_REF_NAME = re.compile(r"^[A-Za-z0-9._/+-]{1,200}$")
# GitHub's immutable subject format (`repo:owner@123/name@456`) is copied from the repository's OIDC
# settings, not derived here; checked only for what would make the subject ambiguous or unmatchable.
_SUBJECT_PREFIX = re.compile(r"^repo:[^/:\s*?]+/[^/:\s*?]+$")
GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
ENTRA_LOGIN_PREFIX: Final = "https://login.microsoftonline.com/"
ENTRA_V1_PREFIX: Final = "https://sts.windows.net/"
ENTRA_V2_ISSUER: Final = re.compile(r"^https://login\.microsoftonline\.com/(?P<tenant>[^/]+)/v2\.0$")
ENTRA_V1_ISSUER: Final = re.compile(
    r"^https://sts\.windows\.net/[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}/$"
)
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ADMIN_LOGIN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Logins Azure Database for PostgreSQL refuses for the administrator.
_RESERVED_LOGINS: Final = frozenset(
    {"azure_superuser", "azure_pg_admin", "admin", "administrator", "root", "guest", "public", "postgres"}
)


class StackConfigError(Exception):
    """The stack config is invalid; `problems` maps each bad key (fully qualified) to what is wrong."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems.items()))


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Everything the program needs, validated. Built once, by `load_stack_config` or `parse_stack_config`."""

    project: str
    stack: str
    location: str
    github_repository: str
    github_branches: tuple[str, ...]
    github_tags: tuple[str, ...]
    github_environments: tuple[str, ...]
    github_pull_requests: bool
    app_service_sku: str
    instance_count: int
    python_version: str
    # Both empty (the default): the program declares the API's Entra app registration and derives the
    # issuer and audience from it. Both set: bring your own issuer, no registration is declared.
    auth_issuer: str
    auth_audience: str
    enable_postgres: bool
    postgres_auth: PostgresAuth
    postgres_database_name: str
    postgres_admin_login: str
    # Application Insights and a Log Analytics workspace capped at monitoring_daily_cap_gb a day.
    enable_monitoring: bool = True
    monitoring_daily_cap_gb: float = 0.1
    # `repo:<owner>/<name>` as GitHub renders it in the token (with immutable ids for new repositories);
    # empty means `repo:<github_repository>`.
    github_subject_prefix: str = ""
    # private: the server lives in a delegated subnet of the stack's own VNet, with no public endpoint.
    # Azure fixes a server's networking at creation, so changing this replaces the server (and its data).
    postgres_network: PostgresNetwork = "private"
    vnet_address_space: str = "10.20.0.0/22"
    app_subnet_prefix: str = "10.20.0.0/26"
    postgres_subnet_prefix: str = "10.20.1.0/27"

    @property
    def private_database(self) -> bool:
        """True when the stack declares a server reachable only from its own virtual network."""
        return self.enable_postgres and self.postgres_network == "private"

    @property
    def subject_prefix(self) -> str:
        """What every federated subject starts with, up to the `:` before the ref, environment or event."""
        return subject_prefix_for(self.github_repository, self.github_subject_prefix)

    @property
    def declares_api_registration(self) -> bool:
        """True when the stack declares the API's app registration (no issuer of the user's own)."""
        return not self.auth_issuer

    @property
    def resource_group_name(self) -> str:
        return f"rg-{self.project}-{self.stack}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags every taggable resource carries."""
        return {"project": self.project, "stack": self.stack, "managed-by": "pulumi"}


def config_key(name: str) -> str:
    """The fully qualified key of one of the project's settings: `backend-iac:<name>`."""
    return f"{PROJECT}:{name}"


def short_key(key: str) -> str:
    """The name of a project key as written in Pulumi.yaml (`backend-iac:` dropped); others unchanged."""
    return key.removeprefix(f"{PROJECT}:")


class _Reader:
    """Reads raw Pulumi config strings, collecting every problem instead of stopping at the first."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self.problems: dict[str, str] = {}

    def _raw(self, name: str) -> str | None:
        return self._values.get(name)

    def string(self, name: str) -> str:
        value = self._raw(name)
        if value is None or not value.strip():
            self.problems[config_key(name)] = "required (set it with `pulumi config set`)"
            return ""
        return value.strip()

    def boolean(self, name: str) -> bool:
        value = self._raw(name)
        if value is None or value.strip().lower() not in ("true", "false"):
            self.problems[config_key(name)] = f"must be true or false (got {value!r})"
            return False
        return value.strip().lower() == "true"

    def integer(self, name: str) -> int:
        value = self._raw(name)
        try:
            return int(value or "")
        except ValueError:
            self.problems[config_key(name)] = f"must be an integer (got {value!r})"
            return 0

    def optional_string(self, name: str) -> str:
        """An optional key: unset and "" both mean empty; kept exactly as written (no stripping)."""
        return self._raw(name) or ""

    def names(self, name: str) -> tuple[str, ...]:
        value = self._raw(name)
        try:
            items = json.loads(value) if value is not None else None
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.problems[config_key(name)] = f"must be a list of names (got {value!r})"
            return ()
        bad = [item for item in items if not _REF_NAME.fullmatch(item)]
        if bad:
            self.problems[config_key(name)] = (
                f"{bad[0]!r} cannot appear in a federated credential subject "
                "(letters, digits and . _ / + - only; Entra matches subjects literally, no wildcards)"
            )
        if len(set(items)) != len(items):
            self.problems[config_key(name)] = "lists a name twice"
        return tuple(items)


def parse_stack_config(values: Mapping[str, str], *, stack: str, location: str | None) -> StackConfig:
    """Validate raw config strings (keys without the project prefix); raise StackConfigError naming keys."""
    read = _Reader(values)
    repository = read.string("githubRepository")
    if repository and not _REPOSITORY.fullmatch(repository):
        read.problems[config_key("githubRepository")] = (
            f"must be owner/name as GitHub spells it (got {repository!r})"
        )
    subject_prefix = read.optional_string("githubSubjectPrefix")
    if subject_prefix and not _SUBJECT_PREFIX.fullmatch(subject_prefix):
        read.problems[config_key("githubSubjectPrefix")] = _subject_prefix_problem(subject_prefix)
    branches = read.names("githubBranches")
    tags = read.names("githubTags")
    environments = read.names("githubEnvironments")
    pull_requests = read.boolean("githubPullRequests")
    names = (
        [f"branch-{b}" for b in branches] + [f"tag-{t}" for t in tags] + [f"env-{e}" for e in environments]
    )
    if len({re.sub(r"[^A-Za-z0-9_-]", "-", name) for name in names}) != len(names):
        read.problems[config_key("githubBranches")] = (
            "two branches, tags or environments differ only by '/' or '.' versus '-', "
            "which gives their federated credentials the same name"
        )
    if len(branches) + len(tags) + len(environments) > MAX_FEDERATED_CREDENTIALS:
        read.problems[config_key("githubBranches")] = (
            f"branches, tags and environments together exceed Entra's {MAX_FEDERATED_CREDENTIALS} "
            "federated credentials per identity"
        )

    sku = read.string("appServiceSku")
    if sku and sku not in APP_SERVICE_SKU_TIERS:
        read.problems[config_key("appServiceSku")] = (
            f"unknown SKU {sku!r}; one of {', '.join(APP_SERVICE_SKU_TIERS)}"
        )
    instances = read.integer("instanceCount")
    tier = APP_SERVICE_SKU_TIERS.get(sku)
    most = min(MAX_INSTANCES, TIER_MAX_INSTANCES[tier]) if tier else MAX_INSTANCES
    if config_key("instanceCount") not in read.problems and not 1 <= instances <= most:
        read.problems[config_key("instanceCount")] = (
            f"must be between 1 and {most} for {sku or 'this SKU'} (got {instances})"
        )
    python_version = read.string("pythonVersion")
    if python_version and python_version not in PYTHON_VERSIONS:
        read.problems[config_key("pythonVersion")] = (
            f"App Service's Linux runtime does not offer Python {python_version} for this service; "
            f"one of {', '.join(PYTHON_VERSIONS)}"
        )

    issuer = read.optional_string("authIssuer").strip()
    audience = read.optional_string("authAudience").strip()
    read.problems.update(auth_problems(issuer, audience))

    enable_postgres = read.boolean("enablePostgres")
    auth = read.string("postgresAuth")
    postgres_auth: PostgresAuth = "managed-identity"
    if auth == "password":
        postgres_auth = "password"
    elif auth and auth != "managed-identity":
        read.problems[config_key("postgresAuth")] = f"must be managed-identity or password (got {auth!r})"
    if postgres_auth == "password" and not enable_postgres:
        read.problems[config_key("postgresAuth")] = (
            "password needs enablePostgres: true (there is no server to sign in to)"
        )
    database = read.string("postgresDatabaseName")
    if database and not _DATABASE_NAME.fullmatch(database):
        read.problems[config_key("postgresDatabaseName")] = (
            f"must be a lower-case PostgreSQL identifier (got {database!r})"
        )
    login = read.string("postgresAdminLogin")
    if (
        postgres_auth == "password"
        and login
        and (not _ADMIN_LOGIN.fullmatch(login) or login in _RESERVED_LOGINS)
    ):
        read.problems[config_key("postgresAdminLogin")] = (
            f"{login!r} is not a login Azure accepts for the administrator "
            "(lower-case letters, digits, '_'; not a reserved name such as admin or postgres)"
        )

    network = read.string("postgresNetwork")
    postgres_network: PostgresNetwork = "private"
    if network == "public":
        postgres_network = "public"
    elif network and network != "private":
        read.problems[config_key("postgresNetwork")] = (
            f"must be private or public (got {network!r}); changing it on an existing server replaces the "
            "server and its data (see docs/stack.md, 'Moving a database between networks')"
        )
    ranges = _network_ranges(read)
    # Both default as Pulumi.yaml says when absent (callers that predate them pass no value).
    enable_monitoring = read.boolean("enableMonitoring") if "enableMonitoring" in values else True
    daily_cap = _daily_cap(read)

    if not location:
        read.problems[LOCATION_KEY] = (
            "required: the Azure region, e.g. `pulumi config set azure-native:location westeurope`"
        )

    if read.problems:
        raise StackConfigError(read.problems)
    return StackConfig(
        project=PROJECT,
        stack=stack,
        location=location or "",
        github_repository=repository,
        github_branches=branches,
        github_tags=tags,
        github_environments=environments,
        github_pull_requests=pull_requests,
        app_service_sku=sku,
        instance_count=instances,
        python_version=python_version,
        auth_issuer=issuer,
        auth_audience=audience,
        enable_postgres=enable_postgres,
        postgres_auth=postgres_auth,
        postgres_database_name=database,
        postgres_admin_login=login,
        github_subject_prefix=subject_prefix,
        postgres_network=postgres_network,
        vnet_address_space=ranges[0],
        app_subnet_prefix=ranges[1],
        postgres_subnet_prefix=ranges[2],
        enable_monitoring=enable_monitoring,
        monitoring_daily_cap_gb=daily_cap,
    )


def _network_ranges(read: _Reader) -> tuple[str, str, str]:
    """The VNet's address space and its two subnets, each an IPv4 CIDR; problems named by key.

    Refused: malformed or host-bit ranges, subnets outside the VNet, subnets that overlap, subnets smaller
    than Azure accepts. Checked whatever postgresNetwork says, so a typo never waits for the day it matters.
    """
    texts = tuple(read.string(name) for name in NETWORK_KEYS)
    parsed: dict[str, ipaddress.IPv4Network] = {}
    for name, text in zip(NETWORK_KEYS, texts, strict=True):
        if not text:
            continue
        if "/" not in text:
            read.problems[config_key(name)] = (
                f"must be an IPv4 range in CIDR form such as 10.20.0.0/22 (got {text!r})"
            )
            continue
        try:
            parsed[name] = ipaddress.IPv4Network(text, strict=True)
        except ValueError as error:
            read.problems[config_key(name)] = (
                f"must be an IPv4 range in CIDR form such as 10.20.0.0/22 ({error})"
            )
    space = parsed.get("vnetAddressSpace")
    smallest = {"appSubnetPrefix": MIN_APP_SUBNET_PREFIX, "postgresSubnetPrefix": MIN_POSTGRES_SUBNET_PREFIX}
    for name, most in smallest.items():
        subnet = parsed.get(name)
        if subnet is None:
            continue
        if subnet.prefixlen > most:
            read.problems[config_key(name)] = (
                f"{subnet} is too small: Azure needs at least a /{most} ({2 ** (32 - most)} addresses) here"
            )
        elif space is not None and not subnet.subnet_of(space):
            read.problems[config_key(name)] = f"{subnet} lies outside vnetAddressSpace {space}"
    app, database = parsed.get("appSubnetPrefix"), parsed.get("postgresSubnetPrefix")
    if app is not None and database is not None and app.overlaps(database):
        read.problems[config_key("postgresSubnetPrefix")] = (
            f"{database} overlaps appSubnetPrefix {app}: each subnet is delegated to one service"
        )
    return texts[0], texts[1], texts[2]


def _daily_cap(read: _Reader) -> float:
    """monitoringDailyCapGb: a string in Pulumi.yaml (project config has no number type), a positive float."""
    name = "monitoringDailyCapGb"
    value = read.optional_string(name) or str(DEFAULT_MONITORING_DAILY_CAP_GB)
    try:
        cap = float(value)
    except ValueError:
        read.problems[config_key(name)] = f"must be a number of GB per day, e.g. 0.1 (got {value!r})"
        return 0.0
    if not 0 < cap <= MAX_MONITORING_DAILY_CAP_GB:
        read.problems[config_key(name)] = (
            f"must be more than 0 and at most {MAX_MONITORING_DAILY_CAP_GB:g} GB a day (got {value}); "
            "an uncapped workspace is refused, turn monitoring off with enableMonitoring: false instead"
        )
    return cap


def auth_problems(issuer: str, audience: str) -> dict[str, str]:
    """What is wrong with the bring-your-own-issuer pair (both empty: the stack declares the registration).

    Entra's access token claims reference (learn.microsoft.com/entra/identity-platform/
    access-token-claims-reference): a v2.0 token's `iss` ends in `/v2.0` and its `aud` is always the
    API's client id (a GUID); only a v1.0 token, whose `iss` is `https://sts.windows.net/<tenant>/`, can
    carry the identifier URI (`api://...`) as `aud`.
    """
    issuer_key, audience_key = config_key("authIssuer"), config_key("authAudience")
    if not issuer and not audience:
        return {}
    if not issuer or not audience:
        missing, given = (issuer_key, audience_key) if not issuer else (audience_key, issuer_key)
        return {
            missing: (
                f"required when {given} is set: {issuer_key} and {audience_key} go together (bring your "
                "own issuer); leave both unset and the stack declares the API's Entra app registration "
                "and derives them"
            )
        }
    if not issuer.startswith("https://"):
        return {issuer_key: f"must be an https:// URL (got {issuer!r})"}
    v2 = ENTRA_V2_ISSUER.fullmatch(issuer)
    if v2 is not None:
        if not GUID.fullmatch(v2.group("tenant")):
            return {
                issuer_key: (
                    f"the tenant in an Entra issuer must be the tenant id (a GUID), as tokens carry it in "
                    f"`iss` (got {v2.group('tenant')!r}; `common`, `organizations` and domain names never "
                    "appear there)"
                )
            }
        if not GUID.fullmatch(audience):
            return {
                audience_key: (
                    f"{audience!r} can never match an Entra v2.0 token: with {issuer_key} "
                    f"{issuer} the token's `aud` is the API's client id (a GUID). Set {audience_key} to "
                    f"the application (client) id, or leave {issuer_key} and {audience_key} unset so the "
                    "stack declares the registration and derives both"
                )
            }
        return {}
    if issuer.startswith(ENTRA_LOGIN_PREFIX):
        return {
            issuer_key: (
                f"{issuer!r} is not the issuer of any Entra access token: v2.0 tokens carry "
                "https://login.microsoftonline.com/<tenant id>/v2.0 and v1.0 tokens "
                "https://sts.windows.net/<tenant id>/ (set requestedAccessTokenVersion to 2 on the app "
                f"registration and use the first), or leave {issuer_key} and {audience_key} unset"
            )
        }
    if issuer.startswith(ENTRA_V1_PREFIX) and not ENTRA_V1_ISSUER.fullmatch(issuer):
        return {
            issuer_key: (
                f"{issuer!r} is not an Entra v1.0 issuer: those are exactly "
                "https://sts.windows.net/<tenant id>/ (trailing slash included; the service compares "
                "`iss` exactly). Better: use v2.0 tokens (requestedAccessTokenVersion 2) and "
                f"https://login.microsoftonline.com/<tenant id>/v2.0, or leave {issuer_key} and "
                f"{audience_key} unset"
            )
        }
    return {}


def entra_v1_note(issuer: str) -> str | None:
    """Why a (valid) sts.windows.net issuer is a choice to think twice about, or None for other issuers."""
    if not ENTRA_V1_ISSUER.fullmatch(issuer):
        return None
    return (
        f"{config_key('authIssuer')} {issuer} is Entra's v1.0 issuer: the service then accepts only v1.0 "
        "tokens, which an app registration issues while its requestedAccessTokenVersion is unset or 1, "
        f"with `aud` being whatever resource the client asked for (set {config_key('authAudience')} to exactly "
        "that: the identifier URI or the client id). A v2.0 token (requestedAccessTokenVersion 2) is then "
        "refused as coming from the wrong issuer. Leave both keys unset to have the stack declare a v2.0 "
        "registration"
    )


def _subject_prefix_problem(prefix: str) -> str:
    """Why a githubSubjectPrefix cannot start a federated subject, most basic reason first."""
    where = (
        "copy it from the subject preview in the repository's OIDC settings on GitHub, "
        "or from the `subject claim` azure/login prints"
    )
    if not prefix.startswith("repo:"):
        return f"must start with `repo:` (got {prefix!r}); {where}"
    rest = prefix.removeprefix("repo:")
    if ":" in rest:
        return (
            f"must stop before the ':' that follows the repository (got {prefix!r}): the stack adds "
            "`:ref:refs/heads/<branch>`, `:environment:<name>` and `:pull_request` itself"
        )
    if any(character.isspace() for character in prefix):
        return f"must not contain whitespace (got {prefix!r}); {where}"
    if "*" in prefix or "?" in prefix:
        return f"must not contain wildcards (got {prefix!r}): Entra matches subjects literally"
    return f"must be `repo:<owner>/<name>` as GitHub renders it (got {prefix!r}); {where}"


CONFIG_KEYS: Final = (
    "githubRepository",
    "githubBranches",
    "githubTags",
    "githubEnvironments",
    "githubPullRequests",
    "githubSubjectPrefix",
    "appServiceSku",
    "instanceCount",
    "pythonVersion",
    "authIssuer",
    "authAudience",
    "enablePostgres",
    "postgresAuth",
    "postgresDatabaseName",
    "postgresAdminLogin",
    "postgresNetwork",
    *NETWORK_KEYS,
    "enableMonitoring",
    "monitoringDailyCapGb",
)


def load_stack_config() -> StackConfig:
    """Read the running stack's Pulumi config once; raise StackConfigError naming every bad key."""
    import pulumi

    config = pulumi.Config(PROJECT)
    values = {name: value for name in CONFIG_KEYS if (value := config.get(name)) is not None}
    return parse_stack_config(
        values, stack=pulumi.get_stack(), location=pulumi.Config("azure-native").get("location")
    )
