"""Bearer-token verification: JWKS cache, signature and claims checks, scopes.

Asymmetric algorithms only (RS256/384/512, PS256/384/512, ES256/384; RFC 7518 section 3.1), each with a
key of its own family: `alg=none` and HMAC tokens are refused before any key is looked at, so a token
"signed" with the public key as an HMAC secret can never verify. Every refusal names its cause, in the
problem detail and in the RFC 6750 `error_description`; no refusal repeats anything the token says.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit

import httpx
import jwt
from cachetools import TLRUCache
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.urls import is_loopback_host

logger = logging.getLogger("backend_iac.auth")

# RFC 7518 section 3.1: RSASSA-PKCS1-v1_5 (RS*), RSASSA-PSS (PS*) and ECDSA on P-256/P-384 (ES256/384).
ALLOWED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
)
# RFC 7518 section 3.4: ES256 is ECDSA on P-256, ES384 on P-384; a key on another curve never fits.
_EC_CURVES: Final[Mapping[str, type[ec.EllipticCurve]]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
# One signature verifier for the process: building one registers every algorithm object anew.
_JWS: Final = jwt.PyJWS()
# The header types an access token may carry, lower-cased (see _check_header); no typ at all is accepted too
# (RFC 7519 section 5.1: typ is optional).
ACCESS_TOKEN_TYPES: Final = frozenset({"jwt", "at+jwt", "application/at+jwt"})
# A JWT beyond this size is refused unread: real access tokens are a few KiB.
MAX_TOKEN_BYTES: Final = 16 * 1024
MAX_KID_LENGTH: Final = 256
MAX_CLAIM_STRING: Final = 1024
# NumericDates past this (the year 2286) are refused as malformed, not trusted: nothing real expires then,
# and a date must stay a finite float for the cache's clock arithmetic.
MAX_NUMERIC_DATE: Final = 10_000_000_000
# Cached keys are refetched in the background after this long, even without an unknown kid.
JWKS_MAX_AGE_SECONDS: Final = 3600.0
# A discovery or JWKS body beyond this is cut off and refused: Entra's key set is a few KiB (x5c included).
MAX_JWKS_BYTES: Final = 256 * 1024
# RFC 7518 sections 3.3 and 3.5: RSA keys of 2048 bits or more for RS* and PS*.
MIN_RSA_BITS: Final = 2048
# RFC 6750 section 3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash).
_DESCRIPTION_UNSAFE: Final = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


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
        """The RFC 6750 section 3 WWW-Authenticate value: the error code and, for a refused token, its cause
        as `error_description` (the same text as the problem detail)."""
        if self.code == "missing_token":
            return 'Bearer realm="backend-iac"'  # section 3.1: no error code when no token was sent
        value = f'Bearer realm="backend-iac", error="{self.code}"'
        value += f', error_description="{_DESCRIPTION_UNSAFE.sub("?", self.detail)}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


def invalid_token(detail: str) -> AuthError:
    return AuthError(401, "invalid_token", detail)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: who, as a namespaced owner key (owner_key), and what they may do."""

    subject: str
    scopes: frozenset[str]
    expires_at: float
    key_id: str = ""  # the kid that verified it: its cached verification ends when the issuer drops the key
    # The owner this caller's items had before owners were namespaced ("legacy:" + oid, else sub), if its
    # items may be adopted from there (see legacy_owner_key); None when there is nothing to adopt.
    legacy_owner: str | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise AuthError(403, "insufficient_scope", f"this operation needs the {scope} scope", scope=scope)


PublicKeyType = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key of the issuer's JWKS, and the algorithm it declares (`alg`), if any."""

    kid: str
    public: PublicKeyType
    declared_algorithm: str | None

    def fits(self, algorithm: str) -> bool:
        """Whether a token signed with `algorithm` may be verified with this key: same family (RSA for RS*
        and PS*, EC on the algorithm's own curve for ES*), and the JWK's own `alg` if it names one
        (RFC 7517 section 4.4)."""
        if self.declared_algorithm is not None and self.declared_algorithm != algorithm:
            return False
        if algorithm.startswith(("RS", "PS")):
            return isinstance(self.public, rsa.RSAPublicKey)
        curve = _EC_CURVES.get(algorithm)
        return (
            curve is not None
            and isinstance(self.public, ec.EllipticCurvePublicKey)
            and isinstance(self.public.curve, curve)
        )


def verification_key(entry: Mapping[str, Any]) -> VerificationKey | None:
    """A JWKS entry as a verification key, or None for one this service never verifies with (weak RSA keys
    and curves other than P-256/P-384 are logged as warnings: an issuer publishing them wants to know)."""
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    declared = entry.get("alg")
    if declared is not None and declared not in ALLOWED_ALGORITHMS:
        return None
    try:
        parsed = jwt.PyJWK.from_dict(dict(entry)).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        # A key type we do not verify with (an HMAC "oct" key, an unknown curve): skip it, never trust it.
        logger.warning("JWKS key skipped: not an RSA or EC public key this service reads", extra={"kid": kid})
        return None
    if isinstance(parsed, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        parsed = parsed.public_key()
    if isinstance(parsed, rsa.RSAPublicKey) and parsed.key_size < MIN_RSA_BITS:
        logger.warning(
            "JWKS key skipped: RSA key of %d bits (at least %d required)",
            parsed.key_size,
            MIN_RSA_BITS,
            extra={"kid": kid},
        )
        return None
    if isinstance(parsed, ec.EllipticCurvePublicKey) and not isinstance(
        parsed.curve, ec.SECP256R1 | ec.SECP384R1
    ):
        logger.warning(
            "JWKS key skipped: EC curve %s is not accepted (P-256, P-384)",
            parsed.curve.name,
            extra={"kid": kid},
        )
        return None
    if not isinstance(parsed, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    return VerificationKey(kid=kid, public=parsed, declared_algorithm=declared)


WithdrawnKeysListener = Callable[[frozenset[str]], None]


class KeySource(Protocol):
    async def key_for(self, kid: str) -> VerificationKey | None: ...

    def subscribe(self, listener: WithdrawnKeysListener) -> None:
        """Call `listener` with the kids of keys that left the key set (or changed), after each refresh."""


class StaticKeys:
    """A fixed key set (development keys)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        keys = (verification_key(entry) for entry in jwks.get("keys", []))
        self._keys = {key.kid: key for key in keys if key is not None}

    async def key_for(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    def subscribe(self, listener: WithdrawnKeysListener) -> None:
        del listener  # a fixed key set never withdraws a key


class JwksError(Exception):
    """A discovery or JWKS response refused: the message says why (logged, never shown to callers)."""


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"https": 443, "http": 80}.get(parts.scheme, -1)
    return parts.scheme, (parts.hostname or ""), port if port is not None else default


def check_jwks_uri(jwks_uri: object, *, issuer: str) -> str:
    """The discovered `jwks_uri`, if it obeys the rules for configured URLs and stays on the issuer's host.

    Same scheme rule as AUTH_ISSUER/AUTH_JWKS_URL (https, or http on loopback only), no credentials in it,
    and the same scheme, host and port as the issuer: a discovery document can never send this service to
    another host (a metadata endpoint, an attacker's key set). An issuer whose keys live on another host
    is served by setting AUTH_JWKS_URL explicitly (an operator's decision, not a document's).
    """
    if not isinstance(jwks_uri, str) or not jwks_uri or len(jwks_uri) > 2048:
        msg = "discovery document has no jwks_uri string"
        raise JwksError(msg)
    parts = urlsplit(jwks_uri)
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        msg = "discovered jwks_uri must be https (http only on loopback)"
        raise JwksError(msg)
    if parts.username is not None or parts.password is not None:
        msg = "discovered jwks_uri must not carry credentials"
        raise JwksError(msg)
    if _origin(jwks_uri) != _origin(issuer):
        msg = "discovered jwks_uri is not on the issuer's scheme, host and port"
        raise JwksError(msg)
    return jwks_uri


@dataclass
class JwksCache:
    """The issuer's signing keys, fetched over HTTP and cached.

    An unknown kid triggers at most one refetch per `min_refresh_interval` (a flood of made-up kids
    cannot amplify into a flood of requests to the identity provider); one refetch runs at a time; when
    the JWKS endpoint is unreachable the keys already held keep working. Every fetch (discovery and key
    set together) has a total deadline, `http_timeout`, and every response body a size cap, `max_bytes`:
    an endpoint trickling a byte at a time, or sending an endless body, costs one refresh its deadline
    and nothing more. Known keys are refreshed in the background (`start()`, then every `max_age`); a
    request holding a known kid never waits for the network.
    """

    issuer: str
    jwks_url: str | None
    http_timeout: float
    min_refresh_interval: float
    max_age: float = JWKS_MAX_AGE_SECONDS
    max_bytes: int = MAX_JWKS_BYTES
    _keys: dict[str, VerificationKey] = field(default_factory=dict)
    _fetched_at: float = float("-inf")
    _attempted_at: float = float("-inf")
    _finished: int = 0  # attempts finished, successful or not
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _listeners: list[WithdrawnKeysListener] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    fetch_count: int = 0

    def subscribe(self, listener: WithdrawnKeysListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        """Fetch the key set in the background now, and again every `max_age`: start-up never waits."""
        self._spawn(self._keep_fresh())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _keep_fresh(self) -> None:
        while True:
            await self.refresh(force=True)
            await asyncio.sleep(self.max_age)

    async def key_for(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is not None:
            now = time.monotonic()
            stale = now - self._fetched_at > self.max_age
            if stale and now - self._attempted_at >= self.min_refresh_interval and not self._lock.locked():
                self._spawn(self.refresh())  # refresh behind this request, which goes on with the cached key
            return key
        await self.refresh(unless_finished_since=self._finished)
        return self._keys.get(kid)

    async def refresh(self, *, force: bool = False, unless_finished_since: int | None = None) -> None:
        """Refetch the key set unless one was attempted within the minimum interval.

        `unless_finished_since` is the count of finished attempts the caller saw before waiting: when an
        attempt finished while it waited for the lock (it arrived during an in-flight fetch), that attempt's
        answer is the caller's, and it waits for at most one fetch deadline, not two back to back.
        """
        async with self._lock:
            if unless_finished_since is not None and self._finished != unless_finished_since:
                return
            if not force and time.monotonic() - self._attempted_at < self.min_refresh_interval:
                return
            self._attempted_at = time.monotonic()
            self.fetch_count += 1
            try:
                async with asyncio.timeout(self.http_timeout):
                    keys = await self._fetch()
            except (TimeoutError, httpx.HTTPError, JwksError) as error:
                reason = str(error) or f"no complete answer within {self.http_timeout:g} s"
                logger.warning(
                    "JWKS refresh failed; keeping %d cached keys", len(self._keys), extra={"reason": reason}
                )
                return
            finally:
                self._finished += 1
            withdrawn = frozenset(kid for kid, key in self._keys.items() if keys.get(kid) != key)
            self._keys = keys
            self._fetched_at = time.monotonic()
        if withdrawn:
            logger.info("JWKS keys withdrawn by the issuer", extra={"kids": sorted(withdrawn)})
            for listener in self._listeners:
                listener(withdrawn)

    async def _fetch(self) -> dict[str, VerificationKey]:
        async with httpx.AsyncClient(timeout=self.http_timeout, follow_redirects=False) as client:
            jwks_url = self.jwks_url
            if jwks_url is None:
                discovery = await self._get_json(
                    client, self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                )
                # OpenID Connect Discovery 1.0 section 4.3 (and RFC 8414 section 3.3): the issuer value
                # returned MUST be identical to the issuer the document was fetched for.
                if discovery.get("issuer") != self.issuer:
                    msg = "discovery document's issuer is not AUTH_ISSUER"
                    raise JwksError(msg)
                jwks_url = check_jwks_uri(discovery.get("jwks_uri"), issuer=self.issuer)
                self.jwks_url = jwks_url
            document = await self._get_json(client, jwks_url)
        entries = document.get("keys")
        if not isinstance(entries, list):
            msg = "JWKS document has no keys array"
            raise JwksError(msg)
        keys: dict[str, VerificationKey] = {}
        for entry in entries:
            if isinstance(entry, dict) and (key := verification_key(entry)) is not None:
                keys[key.kid] = key
        return keys

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        """A JSON object from `url`, the body read up to `max_bytes` and no further."""
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                msg = f"{url} answered {response.status_code}"
                raise JwksError(msg)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                msg = f"{url} sent a body over {self.max_bytes} bytes"
                raise JwksError(msg)
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    msg = f"{url} sent a body over {self.max_bytes} bytes"
                    raise JwksError(msg)
        try:
            document = json.loads(bytes(body), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            msg = f"{url} did not send JSON"
            raise JwksError(msg) from None
        if not isinstance(document, dict):
            msg = f"{url} did not send a JSON object"
            raise JwksError(msg)
        return document


def _scopes_from(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from `scp` (Entra delegated tokens: "String, a space separated list of scopes"), `scope`
    (RFC 9068 section 2.2.3: the RFC 8693 section 4.2 space-separated string) and `roles` (Entra app
    roles: "Array of strings"). Sources: learn.microsoft.com/entra/identity-platform/
    access-token-claims-reference; rfc-editor.org/rfc/rfc9068. Types were checked by _check_claims."""
    scopes: set[str] = set()
    for name in ("scp", "scope"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split(" "))
    roles = claims.get("roles")
    if isinstance(roles, list):
        scopes.update(role for role in roles if isinstance(role, str))
    scopes.discard("")
    return frozenset(scopes)


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
        keys.subscribe(self._forget_verified_by)

    def _forget_verified_by(self, kids: frozenset[str]) -> None:
        """Evict every cached verification made with a key the issuer withdrew (once per refresh, not per
        request: the per-request lookup stays a single hash-table probe)."""
        with self._verified.timer:  # one frozen clock: no entry expires halfway through the sweep
            for cache_key, caller in list(self._verified.items()):
                if caller.key_id in kids:
                    self._verified.pop(cache_key, None)

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
        # Everything the token says is checked for type and refused with its cause before any key is
        # looked up: those refusals need no signature (a claim that would be refused after verification
        # is refused before it just the same), and a token for another issuer or audience, an expired one,
        # or an HMAC one, can never make this worker fetch the JWKS.
        header, claims = _unverified_parts(token)
        algorithm, kid = _check_header(header)
        _check_claims(
            claims,
            issuer=self.issuer,
            audience=self.audience,
            now=time.time(),
            leeway=self.leeway_seconds,
        )
        key = await self.keys.key_for(kid)
        if key is None:
            raise invalid_token("token signed with a key the issuer does not publish (unknown kid)")
        if not key.fits(algorithm):
            raise invalid_token("token algorithm does not match its key's type")
        try:
            verified = _JWS.decode_complete(token, key=key.public, algorithms=[algorithm])
        except (jwt.PyJWTError, ValueError, TypeError):
            raise invalid_token("token signature is invalid") from None
        # What was checked above must be what was signed: PyJWT decoded the same segments (strictly).
        try:
            signed_claims = json.loads(verified["payload"], parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            signed_claims = None
        if verified["header"] != header or signed_claims != claims:
            raise invalid_token("malformed token")  # unreachable unless the two decoders disagree
        owner, legacy_owner = _owner_of(claims, issuer=self.issuer)
        return Caller(
            subject=owner,
            legacy_owner=legacy_owner,
            scopes=_scopes_from(claims),
            expires_at=float(claims["exp"]),
            key_id=kid,
        )


def _refuse_constant(name: str) -> None:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def _segment_json(segment: str, part: str) -> dict[str, Any]:
    """One base64url segment decoded to a JSON object, or a 401 naming the part."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # bad base64, not UTF-8, not JSON, NaN, a 5000-digit number
        raise invalid_token(f"malformed token: the {part} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise invalid_token(f"malformed token: the {part} is not a JSON object")
    return value


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not token.isascii() or token.count(".") != 2:
        raise invalid_token("malformed token: not a compact JWS (three base64url parts)")
    header_segment, payload_segment, _signature = token.split(".")
    return _segment_json(header_segment, "header"), _segment_json(payload_segment, "payload")


def _check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """The header's algorithm and key id, each type-checked; refusals name the field."""
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise invalid_token("malformed token: the header alg is not a string")
    if algorithm.lower() == "none" or algorithm.upper().startswith("HS"):
        raise invalid_token("unsigned and HMAC-signed tokens are refused")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise invalid_token(
            f"signing algorithm not accepted (accepted: {', '.join(sorted(ALLOWED_ALGORITHMS))})"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise invalid_token("token has no key id (kid)")
    if len(kid) > MAX_KID_LENGTH:
        raise invalid_token("malformed token: the header kid is too long")
    # Other header fields (jku, x5u, jwk, x5c, ...) are never read: keys come from the configured issuer's
    # JWKS by kid only, so a token can never point this service at a key or a URL of its choosing.
    # RFC 7515 section 4.1.11: a recipient MUST reject a JWS whose crit lists an extension it does not
    # understand; this verifier understands none (nor b64=false, RFC 7797, which needs crit).
    if "crit" in header or "b64" in header:
        raise invalid_token("token uses JWS extensions (crit, b64) this API does not accept")
    token_type = header.get("typ")
    if token_type is not None and not isinstance(token_type, str):
        raise invalid_token("malformed token: the header typ is not a string")
    # RFC 9068 section 2.1: a JWT access token's typ is at+jwt (media type application/at+jwt, compared
    # case-insensitively, RFC 7515 section 4.1.9); Entra's is always JWT (access token claims reference,
    # header typ). Any other type (an ID token's, a logout token's, a SET's) is not an access token.
    if token_type is not None and token_type.lower() not in ACCESS_TOKEN_TYPES:
        raise invalid_token("token type (typ header) is not an access token type (at+jwt or JWT)")
    return algorithm, kid


def _refuse_id_tokens(claims: Mapping[str, Any], *, issuer: str) -> None:
    """Access tokens only. An ID token proves a sign-in to a client; it grants nothing at an API.

    - `nonce`, `at_hash`, `c_hash`: ID-token claims (OpenID Connect Core 1.0 sections 2, 3.1.3.6, 3.3.2.11;
      Entra's ID token claims reference lists all three), never in an access token.
    - Entra ID: its access tokens name the client that requested them, `azp` in v2.0 and `appid` in v1.0
      (access token claims reference), and its ID tokens carry neither (ID token claims reference), so an
      Entra token without the client claim of its version is an ID token (the API's own registration used
      to sign in would otherwise produce one with this API's `aud`). `idtyp`, where emitted, is only ever
      in access tokens (optional claims reference) and needs no check.
    """
    for name in ("nonce", "at_hash", "c_hash"):
        if name in claims:
            raise invalid_token(f"token is an ID token (it carries {name}), not an access token for this API")
    if _is_entra_v2_issuer(issuer) or _ENTRA_V1_ISSUER.fullmatch(issuer):
        client_claim = "appid" if claims.get("ver") == "1.0" else "azp"
        if not isinstance(claims.get(client_claim), str):
            raise invalid_token(
                f"token is not an Entra ID access token (no {client_claim} claim): an ID token is refused"
            )


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    """A NumericDate (RFC 7519 section 2: a JSON number of seconds), within sane bounds, else a 401."""
    value = claims.get(name)
    if value is None:
        if required or name in claims:
            raise invalid_token(
                f"token has no {name} claim" if name not in claims else f"malformed {name} claim"
            )
        return None
    # bool is an int in Python, and a string of digits is not a JSON number: both refused.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_token(f"malformed {name} claim: not a JSON number")
    if not (
        0 <= value <= MAX_NUMERIC_DATE
    ):  # also false for NaN; an int past the float range is refused here
        raise invalid_token(f"malformed {name} claim: out of range")
    return float(value)


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_STRING:
        raise invalid_token(f"malformed {name} claim: not a non-empty string")
    return value


def _check_claims(claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, leeway: int) -> None:
    """Type-check every claim this service reads, then the issuer, audience and validity window."""
    token_issuer = _optional_string(claims, "iss")
    version = _optional_string(claims, "ver")
    for name in ("sub", "oid", "tid"):
        _optional_string(claims, name)
    for name in ("scp", "scope"):
        if name in claims and not isinstance(claims[name], str):
            raise invalid_token(f"malformed {name} claim: not a space-separated string")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise invalid_token("malformed roles claim: not an array of strings")
    expires = _numeric_date(claims, "exp", required=True)
    not_before = _numeric_date(claims, "nbf", required=False)
    issued_at = _numeric_date(claims, "iat", required=False)

    if token_issuer is None:
        raise invalid_token("token has no iss claim")
    if token_issuer != issuer:
        if _is_entra_v1_token(token_issuer, version) and _is_entra_v2_issuer(issuer):
            raise invalid_token(
                "token is an Entra ID v1.0 access token (issuer https://sts.windows.net/<tenant>/) but this "
                f"API expects v2.0 tokens from {issuer}: set the API app registration's "
                "requestedAccessTokenVersion to 2 (api.requestedAccessTokenVersion in its manifest), "
                "or configure AUTH_ISSUER with the v1.0 issuer"
            )
        raise invalid_token(f"token issuer is not the one this API trusts (expected {issuer})")
    token_audience = claims.get("aud")
    # RFC 7519 section 4.1.3: aud is a string or an array of strings.
    if isinstance(token_audience, str):
        audiences = [token_audience]
    elif isinstance(token_audience, list) and all(isinstance(item, str) for item in token_audience):
        audiences = token_audience
    elif token_audience is None and "aud" not in claims:
        raise invalid_token(f"token has no aud claim (expected {audience})")
    else:
        raise invalid_token("malformed aud claim: not a string or an array of strings")
    if audience not in audiences:
        raise invalid_token(f"token audience is not this API (expected {audience})")
    _refuse_id_tokens(claims, issuer=issuer)
    assert expires is not None  # noqa: S101 - required=True above
    if now > expires + leeway:
        raise invalid_token("token expired")
    if not_before is not None and now + leeway < not_before:
        raise invalid_token("token not yet valid (nbf is in the future)")
    if issued_at is not None and now + leeway < issued_at:
        raise invalid_token("token issued in the future (iat)")


# Entra's v1.0 tokens: iss `https://sts.windows.net/<tenant>/`, `ver` "1.0"; v2.0 issuers end in `/v2.0`
# (learn.microsoft.com/entra/identity-platform/access-token-claims-reference, claims iss and ver).
_ENTRA_V1_ISSUER: Final = re.compile(r"https://sts\.windows\.net/(?P<tenant>[^/]+)/")
_ENTRA_V2_ISSUER: Final = re.compile(r"https://login\.microsoftonline\.com/(?P<tenant>[^/]+)/v2\.0/?")


def _is_entra_v1_token(token_issuer: str, version: str | None) -> bool:
    return bool(_ENTRA_V1_ISSUER.fullmatch(token_issuer)) or version == "1.0"


def _is_entra_v2_issuer(issuer: str) -> bool:
    return bool(_ENTRA_V2_ISSUER.fullmatch(issuer))


def owner_namespace(issuer: str) -> str:
    """Whose identifiers these are: Entra ID's v1.0 and v2.0 issuers of one tenant are one namespace (an
    object's `oid` is the same in both token versions), any other issuer is its own."""
    for pattern in (_ENTRA_V1_ISSUER, _ENTRA_V2_ISSUER):
        if match := pattern.fullmatch(issuer):
            return f"entra/{match.group('tenant')}"
    return issuer


def owner_key(kind: str, namespace: str, value: str) -> str:
    """`<kind>:<namespace, percent-encoded>:<value>`: no two (kind, namespace, value) triples give the same
    key (the encoded namespace holds no colon), so an `oid` can never be taken for a `sub`, nor one
    issuer's subject for another's. A `sub` is only unique within its issuer (RFC 7519 section 4.1.2); an
    Entra `oid` is a GUID unique to the tenant's object (access token claims reference)."""
    return f"{kind}:{quote(namespace, safe='')}:{value}"


def _owner_of(claims: Mapping[str, Any], *, issuer: str) -> tuple[str, str | None]:
    """The caller's owner key, and the legacy owner its items may be adopted from (migration 2).

    Before owners were namespaced the owner was the bare `oid`, else `sub`: a token without `oid` whose
    `sub` equalled another caller's `oid` owned that caller's items. Entra ID access tokens always carry
    `oid`, so under an Entra issuer a legacy owner was always an `oid`, and a token without one adopts
    nothing; under other issuers the old rule stands for rows written before the migration only.
    """
    namespace = owner_namespace(issuer)
    oid, sub = claims.get("oid"), claims.get("sub")
    if isinstance(oid, str) and oid:
        return owner_key("oid", namespace, oid), f"legacy:{oid}"
    if isinstance(sub, str) and sub:
        entra = namespace.startswith("entra/")
        return owner_key("sub", namespace, sub), None if entra else f"legacy:{sub}"
    raise invalid_token("token names no subject (oid or sub)")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or a 401."""
    if not authorization:
        raise AuthError(401, "missing_token", "a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise invalid_token("the Authorization header must be 'Bearer <token>'")
    return token.strip()
