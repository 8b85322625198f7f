"""A local OpenID Connect issuer: discovery document and JWKS served over HTTP on 127.0.0.1.

Tests mint tokens with its keys and can rotate keys, take the JWKS endpoint away, and count requests.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "api://backend-iac-tests"


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str

    def public_jwk(self) -> dict[str, Any]:
        family = (
            jwt.algorithms.ECAlgorithm if self.algorithm.startswith("ES") else jwt.algorithms.RSAAlgorithm
        )
        jwk: dict[str, Any] = json.loads(family.to_jwk(self.private.public_key()))  # type: ignore[attr-defined]
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}


def new_key(algorithm: str = "RS256", *, bits: int = 2048) -> SigningKey:
    """A fresh key for `algorithm`: RSA (`bits` long) for RS*/PS*, EC on the algorithm's curve for ES*."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm.startswith("ES"):
        private = ec.generate_private_key(_CURVES[algorithm])
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return SigningKey(kid=f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}", private=private, algorithm=algorithm)


@dataclass
class LocalIssuer:
    keys: list[SigningKey] = field(default_factory=lambda: [new_key("RS256"), new_key("ES256")])
    available: bool = True
    jwks_requests: int = 0
    # Hostile behaviours, off by default: fields merged into the discovery document; a JWKS answered one
    # byte every `trickle_seconds` (bounded: at most `trickle_bytes`, and never past stop()); a JWKS body
    # padded by `padding_bytes`, with or without a Content-Length.
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    trickle_seconds: float | None = None
    trickle_bytes: int = 30
    padding_bytes: int = 0
    declare_length: bool = True
    _server: ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def start(self) -> LocalIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not issuer.available:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body: Mapping[str, Any] = {
                        "issuer": issuer.url,
                        "jwks_uri": issuer.jwks_url,
                        **issuer.discovery_overrides,
                    }
                elif self.path == "/jwks":
                    issuer.jwks_requests += 1
                    body = {"keys": [key.public_jwk() for key in issuer.keys]}
                    if issuer.padding_bytes:
                        body = {**body, "padding": "x" * issuer.padding_bytes}
                    if issuer.trickle_seconds is not None:
                        self._trickle(json.dumps(body).encode(), issuer.trickle_seconds)
                        return
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if issuer.declare_length:
                    self.send_header("content-length", str(len(payload)))
                else:
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(payload)

            def _trickle(self, payload: bytes, interval: float) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.flush()
                for byte in payload[: issuer.trickle_bytes]:
                    if issuer._stopping.wait(interval):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up: exactly what it should do
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def rotate(self) -> SigningKey:
        """Replace every key with a new one (as an identity provider's key rollover does)."""
        key = new_key("RS256")
        self.keys = [key]
        return key

    def mint(
        self,
        *,
        subject: str = "user-1",
        scopes: str | None = "items.read items.write",
        roles: list[str] | None = None,
        key: SigningKey | None = None,
        ttl: int = 600,
        not_before: int | None = None,
        audience: str = AUDIENCE,
        issuer: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        oid: str | None = None,
    ) -> str:
        signing = key or self.keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.url,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": not_before if not_before is not None else now,
            "exp": now + ttl,
        }
        if scopes is not None:
            claims["scp"] = scopes
        if roles is not None:
            claims["roles"] = roles
        if oid is not None:
            claims["oid"] = oid
        claims.update(extra or {})
        return jwt.encode(
            claims,
            signing.private,
            algorithm=signing.algorithm,
            headers={"kid": signing.kid, **(headers or {})},
        )

    def sign_raw(self, payload: bytes, header: Mapping[str, Any] | None = None) -> str:
        """A token over raw payload bytes, really signed (RS256) with the first RSA key, whatever the header
        says: built by hand, since a JWT library refuses to write most malformed tokens."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = next(key for key in self.keys if isinstance(key.private, rsa.RSAPrivateKey))
        assert isinstance(key.private, rsa.RSAPrivateKey)
        fields = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}
        signing_input = f"{_b64(json.dumps(fields).encode())}.{_b64(payload)}"
        signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
