"""Settings: parsed once, and every bad one named before the service starts."""

from __future__ import annotations

import pytest

from service.config import DEVELOPMENT_ISSUER, AppEnv, ConfigurationError, load_settings


def test_development_defaults_need_nothing() -> None:
    """Locally, no variable is required: SQLite under var/, development tokens."""
    settings = load_settings(app_env="development")
    assert settings.app_env is AppEnv.DEVELOPMENT
    assert not settings.uses_postgres
    assert str(settings.sqlite_path).startswith("var")
    assert settings.development_auth


def test_production_lists_every_missing_setting_by_name() -> None:
    """Production without issuer and audience: one error naming both."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(app_env="production", auth_issuer=None, auth_audience=None)
    message = str(caught.value)
    assert "AUTH_ISSUER" in message
    assert "AUTH_AUDIENCE" in message


def test_field_errors_and_missing_settings_are_reported_together() -> None:
    """A malformed value does not hide a missing one: both are in the same message."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(app_env="production", database_pool_size="many", auth_issuer=None, auth_audience=None)
    message = str(caught.value)
    for name in ("DATABASE_POOL_SIZE", "AUTH_ISSUER", "AUTH_AUDIENCE"):
        assert name in message, message


def test_production_refuses_the_development_issuer_and_plain_http() -> None:
    """The development issuer and non-loopback http:// URLs are refused in production."""
    with pytest.raises(ConfigurationError, match="AUTH_ISSUER: the development issuer"):
        load_settings(app_env="production", auth_issuer=DEVELOPMENT_ISSUER, auth_audience="api://x")
    with pytest.raises(ConfigurationError, match="AUTH_JWKS_URL: must be an https"):
        load_settings(
            app_env="production",
            auth_issuer="https://login.microsoftonline.com/t/v2.0",
            auth_audience="api://x",
            auth_jwks_url="http://keys.example.com/jwks",
        )


def test_production_sqlite_default_lives_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """In production the embedded database sits under $HOME (/home on App Service, which persists)."""
    monkeypatch.setenv("HOME", "/home")
    settings = load_settings(
        app_env="production", auth_issuer="https://idp.example/", auth_audience="api://x"
    )
    assert str(settings.sqlite_path) == "/home/data/backend-iac.sqlite3"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"database_url": "mysql://x/y"}, "DATABASE_URL"),
        ({"database_pool_size": "many"}, "DATABASE_POOL_SIZE"),
        ({"app_env": "staging"}, "APP_ENV"),
        ({"database_auth": "managed-identity", "database_url": "sqlite:///x.db"}, "DATABASE_AUTH"),
    ],
)
def test_bad_values_are_named(overrides: dict[str, object], named: str) -> None:
    """An invalid value is reported under its environment variable's name."""
    with pytest.raises(ConfigurationError, match=named):
        load_settings(**overrides)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment variables of the same names."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/app?sslmode=require")
    monkeypatch.setenv("DATABASE_AUTH", "managed-identity")
    settings = load_settings()
    assert settings.uses_postgres
    assert settings.database_auth.value == "managed-identity"


@pytest.mark.parametrize("marker", ["WEBSITE_SITE_NAME", "WEBSITE_INSTANCE_ID"])
def test_app_service_without_app_env_is_production(monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    """APP_ENV unset on App Service (detected by its own variables) means production, so its settings are
    required, never development with local keys."""
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv(marker, "backend-iac-dev")
    with pytest.raises(ConfigurationError, match="AUTH_ISSUER: required when APP_ENV=production"):
        load_settings()
    settings = load_settings(auth_issuer="https://login.example/tenant/v2.0", auth_audience="api://x")
    assert settings.app_env is AppEnv.PRODUCTION
    assert not settings.development_auth


def test_app_service_refuses_development(monkeypatch: pytest.MonkeyPatch) -> None:
    """APP_ENV=development on App Service is a start-up error naming APP_ENV (fail closed)."""
    monkeypatch.setenv("WEBSITE_SITE_NAME", "backend-iac-dev")
    with pytest.raises(ConfigurationError, match="APP_ENV: development is refused on App Service"):
        load_settings(app_env="development")
