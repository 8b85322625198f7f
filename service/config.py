"""Settings: read from the environment once, validated, every bad field named at start-up."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.redaction import redact, url_password
from service.urls import is_loopback_host

# The issuer `make token` signs for; only ever trusted when APP_ENV=development.
DEVELOPMENT_ISSUER: Final = "http://127.0.0.1/backend-iac-dev"
DEVELOPMENT_AUDIENCE: Final = "api://backend-iac-dev"

# Settings a production deployment must set (the stack sets every one of them; the doctor checks).
PRODUCTION_REQUIRED_SETTINGS: Final = ("APP_ENV", "AUTH_ISSUER", "AUTH_AUDIENCE")

# Request bodies over 1 MiB are refused with 413.
MAX_BODY_BYTES: Final = 1024 * 1024
# Request headers beyond these are refused with 431: real requests (a few-KiB bearer token among them)
# stay far below, and an unbounded header block is a cheap way to make a worker hold memory.
MAX_HEADER_BYTES: Final = 32 * 1024
MAX_HEADER_FIELDS: Final = 100


# Set by App Service in every app's environment, read-only: "WEBSITE_SITE_NAME: Read-only. App name."
# (https://learn.microsoft.com/en-us/azure/app-service/reference-app-settings, "App environment"), and
# WEBSITE_INSTANCE_ID, the instance's id (https://github.com/projectkudu/kudu/wiki/Azure-runtime-environment).
# Either one present means the service runs on App Service: production unless told otherwise, never
# development.
APP_SERVICE_MARKERS: Final = ("WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID")


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DatabaseAuth(StrEnum):
    PASSWORD = "password"  # noqa: S105 - a mode name, not a password
    MANAGED_IDENTITY = "managed-identity"


class SqliteStorage(StrEnum):
    """SQLITE_STORAGE: how the SQLite store treats its file's filesystem (service.db.storage)."""

    AUTO = "auto"  # detect it from /proc/self/mountinfo
    LOCAL = "local"  # WAL, any number of worker processes
    NETWORK = "network"  # rollback journal, exclusive lock, one worker process


class ConfigurationError(Exception):
    """Start-up refused: the message lists every bad setting by name."""


def _postgres_url_problems(url: str) -> list[str]:
    """libpq's own parse of the URL (what psycopg will do on every connect), its complaint redacted: a
    URL it refuses would otherwise fail every reconnect, each failure logged with the part it quotes."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parameters = conninfo_to_dict(url)
    except psycopg.Error as error:
        reason = redact(str(error).strip(), [password] if (password := url_password(url)) else [])
        return [f"DATABASE_URL: not a valid PostgreSQL URL ({reason})"]
    ports = str(parameters.get("port") or "5432").split(",")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports):
        return ["DATABASE_URL: the port must be a number from 1 to 65535"]
    return []


def _on_app_service(data: dict[str, object]) -> bool:
    return any(data.get(name.lower()) for name in APP_SERVICE_MARKERS)


def _default_sqlite_path(app_env: AppEnv) -> Path:
    if app_env is AppEnv.PRODUCTION:
        # App Service persists /home (HOME) across restarts and instances; the app directory may not be.
        return Path(os.environ.get("HOME", "/home")) / "data" / "backend-iac.sqlite3"
    return Path("var") / "backend-iac.sqlite3"


# The samplers the Azure Monitor OpenTelemetry distro accepts in OTEL_TRACES_SAMPLER (its
# SUPPORTED_OTEL_SAMPLERS, azure-monitor-opentelemetry 1.8.11 `_constants.py`); the ratio ones take a
# fraction in OTEL_TRACES_SAMPLER_ARG, microsoft.rate_limited takes traces per second.
TRACE_SAMPLERS: Final = (
    "microsoft.rate_limited",
    "microsoft.fixed_percentage",
    "always_on",
    "always_off",
    "trace_id_ratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_trace_id_ratio",
)
_RATIO_SAMPLERS: Final = ("microsoft.fixed_percentage", "trace_id_ratio", "parentbased_trace_id_ratio")
_INSTRUMENTATION_KEY = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def telemetry_problems(
    connection_string: str | None, sampler: str | None, sampler_arg: float | None
) -> list[str]:
    """What is wrong with the Application Insights settings, each problem naming its setting."""
    problems: list[str] = []
    if connection_string is not None and connection_string.strip():
        # `Key=Value;Key=Value`, keys case-insensitive (learn.microsoft.com/azure/azure-monitor/app/connection-strings).
        fields = {
            key.strip().lower(): value.strip()
            for key, _, value in (
                part.partition("=") for part in connection_string.split(";") if part.strip()
            )
        }
        name = "APPLICATIONINSIGHTS_CONNECTION_STRING"
        if not _INSTRUMENTATION_KEY.fullmatch(fields.get("instrumentationkey", "")):
            problems.append(
                f"{name}: needs InstrumentationKey=<guid> (copy it from the Application Insights resource)"
            )
        endpoint = fields.get("ingestionendpoint")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
                problems.append(
                    f"{name}: IngestionEndpoint must be an https:// URL (got {parts.scheme or endpoint!r})"
                )
    if sampler is not None and sampler not in TRACE_SAMPLERS:
        problems.append(f"OTEL_TRACES_SAMPLER: one of {', '.join(TRACE_SAMPLERS)} (got {sampler!r})")
    if sampler_arg is not None:
        if sampler in _RATIO_SAMPLERS and not 0.0 <= sampler_arg <= 1.0:
            problems.append(
                f"OTEL_TRACES_SAMPLER_ARG: a fraction between 0 and 1 for {sampler} (got {sampler_arg})"
            )
        elif sampler_arg < 0:
            problems.append(f"OTEL_TRACES_SAMPLER_ARG: must not be negative (got {sampler_arg})")
    return problems


class Settings(BaseSettings):
    """Every setting the service reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Default: development locally; production on App Service (see _default_app_env).
    app_env: AppEnv = AppEnv.DEVELOPMENT
    # App Service's own read-only variables (APP_SERVICE_MARKERS), read only to tell where we run.
    website_site_name: str | None = None
    website_instance_id: str | None = None
    # repr=False: the URL may carry a password, and a Settings repr must never show it.
    database_url: str | None = Field(default=None, repr=False)
    database_auth: DatabaseAuth = DatabaseAuth.PASSWORD
    # auto: detect a network share under the SQLite file (App Service's /home is one); local or network
    # override the detection (network is how the tests run the network-share mode on a local disk).
    sqlite_storage: SqliteStorage = SqliteStorage.AUTO
    database_connect_timeout: float = Field(default=3.0, gt=0, le=30)
    database_statement_timeout: float = Field(default=5.0, gt=0, le=120)
    database_pool_size: int = Field(default=5, ge=1, le=50)
    database_pool_timeout: float = Field(default=3.0, gt=0, le=30)
    # The Entra resource whose token a managed identity presents to Azure Database for PostgreSQL.
    database_token_scope: str = "https://ossrdbms-aad.database.windows.net/.default"  # noqa: S105 - a scope
    # Which user-assigned identity fetches the database token (App Service sets AZURE_CLIENT_ID for it).
    azure_client_id: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_url: str | None = None
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    auth_jwks_refresh_interval: float = Field(default=60.0, ge=1, le=3600)
    auth_http_timeout: float = Field(default=3.0, gt=0, le=30)
    app_commit_sha: str | None = None
    build_info_path: Path | None = None  # default: build_info.json beside the service package
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    # A request body still arriving after this long gets 408: a slow upload would otherwise hold its
    # connection open for as long as the client likes (the server has no read timeout of its own).
    request_body_timeout: float = Field(default=30.0, gt=0, le=600)
    # How log lines print (service.logging reads it before settings exist; validated here so a typo is
    # named at start-up): JSON, or text for a person; auto = text in development on a terminal.
    log_format: Literal["auto", "json", "text"] = "auto"
    # Gunicorn's own settings (service.gunicorn_conf reads them from here, so a bad value is named with
    # every other bad setting at start-up instead of a traceback from int()).
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=32)
    # Seconds requests in flight get after SIGTERM; no longer than the worker timeout (120 s).
    graceful_timeout: int = Field(default=25, ge=0, le=120)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    # A request head (request line and headers) not complete this long after its connection opened, or
    # after its first byte on a kept-alive connection, gets 408 and the connection is closed (service.worker):
    # a half-sent or silent connection would otherwise hold a descriptor for ever.
    request_header_timeout: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="before")
    @classmethod
    def _default_app_env(cls, data: object) -> object:
        """APP_ENV left unset on App Service means production: failing open into development (local keys,
        relaxed checks) is the one mistake a deployment must never make quietly."""
        if isinstance(data, dict) and data.get("app_env") in (None, "") and _on_app_service(data):
            return {**data, "app_env": AppEnv.PRODUCTION}
        return data

    # Application Insights (service.telemetry, docs/observability.md): off unless the connection string
    # is set. The sampler settings are the OpenTelemetry names the Azure Monitor distro reads; they are
    # declared here so a bad value refuses start-up instead of being logged and replaced by a default.
    applicationinsights_connection_string: str | None = None
    otel_traces_sampler: str | None = None
    otel_traces_sampler_arg: float | None = None

    @model_validator(mode="after")
    def _check_coherent(self) -> Settings:
        problems: list[str] = []
        if self.app_env is AppEnv.DEVELOPMENT and _on_app_service(
            {"website_site_name": self.website_site_name, "website_instance_id": self.website_instance_id}
        ):
            problems.append(
                "APP_ENV: development is refused on App Service (WEBSITE_SITE_NAME or WEBSITE_INSTANCE_ID is set)"
            )
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://", "sqlite:///")
        ):
            problems.append("DATABASE_URL: must start with postgresql:// or sqlite:/// (got another scheme)")
        if self.uses_postgres and self.database_url is not None:
            problems.extend(_postgres_url_problems(self.database_url))
        if self.database_auth is DatabaseAuth.MANAGED_IDENTITY and not self.uses_postgres:
            problems.append("DATABASE_AUTH: managed-identity needs a postgresql:// DATABASE_URL")
        if self.app_env is AppEnv.PRODUCTION:
            problems.extend(self._production_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_telemetry(self) -> Settings:
        problems = telemetry_problems(
            self.applicationinsights_connection_string, self.otel_traces_sampler, self.otel_traces_sampler_arg
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _production_problems(self) -> list[str]:
        problems: list[str] = []
        for name, value in (("AUTH_ISSUER", self.auth_issuer), ("AUTH_AUDIENCE", self.auth_audience)):
            if not value:
                problems.append(f"{name}: required when APP_ENV=production")
        if self.auth_issuer == DEVELOPMENT_ISSUER:
            problems.append("AUTH_ISSUER: the development issuer is refused when APP_ENV=production")
        for name, url in (("AUTH_ISSUER", self.auth_issuer), ("AUTH_JWKS_URL", self.auth_jwks_url)):
            if url:
                parts = urlsplit(url)
                if parts.scheme != "https" and not (
                    parts.scheme == "http" and is_loopback_host(parts.hostname)
                ):
                    problems.append(f"{name}: must be an https:// URL in production (got {parts.scheme}://)")
        return problems

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None and self.database_url.startswith(
            ("postgresql://", "postgres://")
        )

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file: from DATABASE_URL, else the embedded default."""
        if self.database_url and self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return _default_sqlite_path(self.app_env)

    @property
    def development_auth(self) -> bool:
        """Development without an identity provider: trust the local key `make token` signs with."""
        return self.app_env is AppEnv.DEVELOPMENT and self.auth_issuer in (None, DEVELOPMENT_ISSUER)

    @property
    def issuer(self) -> str:
        return self.auth_issuer or DEVELOPMENT_ISSUER

    @property
    def audience(self) -> str:
        return self.auth_audience or DEVELOPMENT_AUDIENCE


def _describe(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        lines.extend(message.split("; ") if not field else [f"{field}: {message}"])
    return lines


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus overrides), or raise ConfigurationError naming every bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = _describe(error)
        # Field errors stop pydantic before the cross-field checks: run those too, with the bad fields
        # at their defaults, so one message names every bad setting at once.
        bad = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
        if bad:
            defaults = {
                name: Settings.model_fields[name].default for name in bad if name in Settings.model_fields
            }
            try:
                Settings(**{**overrides, **defaults})
            except ValidationError as second:
                problems.extend(line for line in _describe(second) if line not in problems)
        msg = f"invalid configuration: {'; '.join(problems)}"
        raise ConfigurationError(msg) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed once. Tests build their own with load_settings()."""
    return load_settings()
