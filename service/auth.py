"""Bearer-token verification: JWKS cache, signature and claims checks, scopes.

Asymmetric algorithms only (RS256, ES256): `alg=none` and HMAC tokens are refused before any key is
looked at, so a token "signed" with the public key as an HMAC secret can never verify.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx
import jwt
from cachetools import TLRUCache

logger = logging.getLogger("backend_iac.auth")

ALLOWED_ALGORITHMS: Final = frozenset({"RS256", "ES256"})
# A JWT beyond this size is refused unread: real access tokens are a few KiB.
MAX_TOKEN_BYTES: Final = 16 * 1024
# Cached keys are refetched in the background of a request after this long, even without an unknown kid.
JWKS_MAX_AGE_SECONDS: Final = 3600.0


class AuthError(Exception):
    """A refused request: 401 (no or bad token) or 403 (valid token, missing scope)."""

    def __init__(self, status: int, code: str, detail: str, *, scope: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.scope = scope

    @property
    def challenge(self) -> str:
        """The RFC 6750 WWW-Authenticate value."""
        if self.code == "missing_token":
            return 'Bearer realm="backend-iac"'
        value = f'Bearer realm="backend-iac", error="{self.code}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


def invalid_token(detail: str) -> AuthError:
    return AuthError(401, "invalid_token", detail)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: who (oid, else sub) and what they may do."""

    subject: str
    scopes: frozenset[str]
    expires_at: float

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise AuthError(403, "insufficient_scope", f"this operation needs the {scope} scope", scope=scope)


class KeySource(Protocol):
    async def key_for(self, kid: str) -> jwt.PyJWK | None: ...


class StaticKeys:
    """A fixed key set (development keys)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(dict(jwks)).keys if key.key_id}

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


@dataclass
class JwksCache:
    """The issuer's signing keys, fetched over HTTP and cached.

    An unknown kid triggers at most one refetch per `min_refresh_interval` (a flood of made-up kids
    cannot amplify into a flood of requests to the identity provider); one refetch runs at a time; when
    the JWKS endpoint is unreachable the keys already held keep working.
    """

    issuer: str
    jwks_url: str | None
    http_timeout: float
    min_refresh_interval: float
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float = 0.0
    _attempted_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fetch_count: int = 0

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        stale = time.monotonic() - self._fetched_at > JWKS_MAX_AGE_SECONDS
        if key is not None and not stale:
            return key
        await self.refresh()
        return self._keys.get(kid, key)

    async def refresh(self, *, force: bool = False) -> None:
        """Refetch the key set unless one was attempted within the minimum interval."""
        async with self._lock:
            if not force and time.monotonic() - self._attempted_at < self.min_refresh_interval:
                return
            self._attempted_at = time.monotonic()
            self.fetch_count += 1
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
                logger.warning(
                    "JWKS refresh failed; keeping %d cached keys",
                    len(self._keys),
                    extra={"reason": str(error)},
                )
                return
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        async with httpx.AsyncClient(timeout=self.http_timeout, follow_redirects=False) as client:
            jwks_url = self.jwks_url
            if jwks_url is None:
                discovery = await client.get(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                discovery.raise_for_status()
                jwks_url = str(discovery.json()["jwks_uri"])
                self.jwks_url = jwks_url
            response = await client.get(jwks_url)
            response.raise_for_status()
            document = response.json()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                continue  # a key type we do not verify with (e.g. an HMAC "oct" key): skip it, never trust it
            if key.algorithm_name in ALLOWED_ALGORITHMS or entry.get("alg") is None:
                keys[kid] = key
        return keys


def _scopes_from(claims: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    scp = claims.get("scp")
    if isinstance(scp, str):
        scopes.update(scp.split())
    roles = claims.get("roles")
    if isinstance(roles, list):
        scopes.update(role for role in roles if isinstance(role, str))
    return frozenset(scopes)


def _key_algorithm(key: jwt.PyJWK) -> str | None:
    kty = key._jwk_data.get("kty")
    return {"RSA": "RS256", "EC": "ES256"}.get(str(kty))


class TokenVerifier:
    """Verifies bearer tokens for one issuer and audience; verified tokens are cached until they expire."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: KeySource,
        leeway_seconds: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self._verified: TLRUCache[str, Caller] = TLRUCache(
            maxsize=cache_size, ttu=lambda _key, caller, _now: caller.expires_at, timer=time.time
        )

    async def verify(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_BYTES:
            raise invalid_token("token too large")
        cache_key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        cached = self._verified.get(cache_key)
        if cached is not None:
            return cached
        caller = await self._verify_uncached(token)
        self._verified[cache_key] = caller
        return caller

    async def _verify_uncached(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise invalid_token(f"signing algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("token has no key id (kid)")
        key = await self.keys.key_for(kid)
        if key is None:
            raise invalid_token("token signed with an unknown key")
        if _key_algorithm(key) != algorithm:
            raise invalid_token("token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("token expired") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("token audience is not this API") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("token issuer is not trusted") from None
        except jwt.PyJWTError:
            raise invalid_token("token signature or claims are invalid") from None
        subject = claims.get("oid") or claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise invalid_token("token names no subject (oid or sub)")
        return Caller(subject=subject, scopes=_scopes_from(claims), expires_at=float(claims["exp"]))


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or a 401."""
    if not authorization:
        raise AuthError(401, "missing_token", "a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise invalid_token("the Authorization header must be 'Bearer <token>'")
    return token.strip()
