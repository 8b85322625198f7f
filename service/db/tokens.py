"""Access tokens as Postgres passwords (passwordless Azure Database for PostgreSQL).

With DATABASE_AUTH=managed-identity each new pool connection asks the token source for a password.
The source hands out a cached token only while it is comfortably inside its lifetime, so a connection
never logs in with an expired token; azure-identity is imported only when this mode is on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Final, Protocol

# Refresh this long before expiry: a login must not race the token's last seconds.
REFRESH_MARGIN_SECONDS: Final = 300.0


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_on: float  # POSIX seconds, as azure.core.credentials.AccessToken


class TokenSource(Protocol):
    def get_token(self, scope: str) -> AccessToken: ...


class ExpiringPassword:
    """A password callable over a token source: cached, refreshed before expiry, thread-safe."""

    def __init__(
        self, source: TokenSource, scope: str, *, margin_seconds: float = REFRESH_MARGIN_SECONDS
    ) -> None:
        self._source = source
        self._scope = scope
        self._margin = margin_seconds
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_on - self._margin <= time.time():
                fresh = self._source.get_token(self._scope)
                self._token = AccessToken(token=fresh.token, expires_on=float(fresh.expires_on))
            return self._token.token


class ManagedIdentitySource:
    """The web app's managed identity, through azure-identity (only exercised on Azure)."""

    def __init__(self, client_id: str | None = None) -> None:
        from azure.identity import ManagedIdentityCredential

        self._credential = ManagedIdentityCredential(client_id=client_id)

    def get_token(self, scope: str) -> AccessToken:
        token = self._credential.get_token(scope)
        return AccessToken(token=token.token, expires_on=float(token.expires_on))
