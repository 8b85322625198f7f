"""Builds the store the settings ask for."""

from __future__ import annotations

from service.config import DatabaseAuth, Settings
from service.db.store import Store


def open_store(settings: Settings) -> Store:
    if settings.uses_postgres:
        from service.db.postgres import PostgresStore

        password = None
        if settings.database_auth is DatabaseAuth.MANAGED_IDENTITY:
            from service.db.tokens import ExpiringPassword, ManagedIdentitySource

            password = ExpiringPassword(
                ManagedIdentitySource(settings.azure_client_id), settings.database_token_scope
            )
        assert settings.database_url is not None  # noqa: S101 - uses_postgres implies it
        return PostgresStore(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pool_timeout=settings.database_pool_timeout,
            connect_timeout=settings.database_connect_timeout,
            statement_timeout=settings.database_statement_timeout,
            password=password,
        )
    from service.db.sqlite import SqliteStore
    from service.db.storage import storage_mode

    return SqliteStore(
        settings.sqlite_path,
        busy_timeout=settings.database_pool_timeout,
        mode=storage_mode(settings.sqlite_path, settings.sqlite_storage),
    )
