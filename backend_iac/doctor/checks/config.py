"""Config: the stack's settings as the program validates them, and options that contradict each other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from backend_iac.doctor.findings import Finding, Severity
from backend_iac.doctor.repository import POSTGRES_SERVER, Repository
from stack.config import config_key, short_key

# The program's own validation (stack/config.py) names the bad key; the doctor gives each a stable code.
_CODE_FOR_KEY: Final = {
    config_key("githubRepository"): "config-repository-malformed",
    config_key("appServiceSku"): "config-sku-unknown",
    config_key("pythonVersion"): "config-python-version",
    config_key("postgresAuth"): "config-options-contradictory",
    config_key("githubBranches"): "config-subjects-invalid",
    config_key("githubTags"): "config-subjects-invalid",
    config_key("githubEnvironments"): "config-subjects-invalid",
    config_key("githubSubjectPrefix"): "config-subjects-invalid",
    config_key("authIssuer"): "config-auth-issuer",
    config_key("authAudience"): "config-auth-audience",
}
# The bring-your-own-issuer pair: what to do instead of "fix the key".
_AUTH_FIX: Final = (
    "delete backend-iac:authIssuer and backend-iac:authAudience from {file}: the stack then declares the "
    "API's Entra app registration (v2.0 tokens) and derives AUTH_ISSUER and AUTH_AUDIENCE itself. To keep "
    "your own Entra registration: authIssuer https://login.microsoftonline.com/<tenant id>/v2.0 with "
    "authAudience = its application (client) id, and requestedAccessTokenVersion 2 on it"
)
_PASSWORD_IN_URL = re.compile(r"^postgres(?:ql)?://[^/@:]+:[^/@]+@")


def _finding(code: str, severity: Severity, file: str, line: int | None, message: str, fix: str) -> Finding:
    return Finding(code, severity, "config", file, line, message, fix)


def _evaluation_problems(repository: Repository) -> Iterator[Finding]:
    for key, problem in repository.evaluation_problems.items():
        if not key:
            yield _finding(
                "stack-evaluation-failed",
                "error",
                repository.stack_file_name,
                None,
                f"{problem}; identity and runtime checks were skipped",
                "run `backend-iac plan --stack "
                f"{repository.stack}` for the program's own message and fix what it names",
            )
            continue
        file, line = repository.config_location(key)
        if "secure value cannot be read offline" in problem:
            yield _finding(
                "stack-not-evaluated",
                "warning",
                file,
                line,
                f"{key}: a `secure:` value cannot be decrypted offline, so the program was not evaluated; "
                "identity and runtime checks were skipped",
                "keep secrets out of stack config (the stack generates the ones it needs), or run the "
                "doctor on a stack without secure values",
            )
            continue
        code = _CODE_FOR_KEY.get(key, "config-invalid")
        if key == config_key("postgresAuth") and "needs" not in problem:
            code = "config-invalid"
        fix = f"fix {short_key(key)} in {file}; `pulumi up` refuses the same value"
        if code in ("config-auth-issuer", "config-auth-audience"):
            fix = _AUTH_FIX.format(file=file)
        yield _finding(
            code,
            "error",
            file,
            line,
            f"{key}: {problem} (the program refuses it, so identity and runtime checks were skipped)",
            fix,
        )


def _issuer(repository: Repository) -> Iterator[Finding]:
    """A valid Entra v1.0 issuer: allowed, but only v1.0 tokens pass, which is rarely what was meant."""
    from stack.config import entra_v1_note

    if repository.config is None:
        return
    note = entra_v1_note(repository.config.auth_issuer)
    if note is None:
        return
    file, line = repository.config_location("authIssuer")
    yield _finding(
        "config-auth-issuer-v1",
        "warning",
        file,
        line,
        note,
        _AUTH_FIX.format(file=file) + "; or keep v1.0 and leave the registration's token version at 1",
    )


def _postgres(repository: Repository) -> Iterator[Finding]:
    settings = repository.app_settings
    file, line = repository.config_location("postgresAuth")
    for server in repository.resources(POSTGRES_SERVER):
        auth = server.inputs.get("authConfig") or {}
        password_on = auth.get("passwordAuth") == "Enabled"
        if password_on and "administratorLoginPassword" not in server.secret_paths:
            yield _finding(
                "postgres-password-not-secret",
                "error",
                file,
                line,
                f"PostgreSQL server {server.name} uses password authentication, but its administrator "
                "password is not a Pulumi secret: it is stored in plain text in the state",
                "generate the password (pulumi-random) and wrap it with pulumi.Output.secret",
            )
        database_auth = settings.get("DATABASE_AUTH", "")
        if not password_on and database_auth != "managed-identity":
            yield _finding(
                "config-options-contradictory",
                "error",
                file,
                line,
                f"PostgreSQL server {server.name} has password authentication off, but the web app's "
                f"DATABASE_AUTH is {database_auth or 'unset'!r}: the service would sign in with a password "
                "the server refuses",
                "set DATABASE_AUTH=managed-identity with password authentication off, or postgresAuth: password",
            )
    url = settings.get("DATABASE_URL", "")
    if _PASSWORD_IN_URL.match(url):
        yield _finding(
            "postgres-password-in-setting",
            "error",
            file,
            line,
            "the web app's DATABASE_URL app setting carries a password in plain text: anyone who can read "
            "the app's configuration can read it",
            "keep the URL in Key Vault and set DATABASE_URL to @Microsoft.KeyVault(SecretUri=...), or use "
            "postgresAuth: managed-identity",
        )
    if settings.get("DATABASE_AUTH") == "managed-identity" and not url.startswith(
        ("postgresql://", "postgres://")
    ):
        yield _finding(
            "config-options-contradictory",
            "error",
            file,
            line,
            "the web app's DATABASE_AUTH is managed-identity but DATABASE_URL is not a postgresql:// URL: the "
            "service refuses to start",
            "set DATABASE_URL to the server's postgresql:// URL, or drop DATABASE_AUTH",
        )


def check(repository: Repository) -> list[Finding]:
    return [*_evaluation_problems(repository), *_issuer(repository), *_postgres(repository)]
