"""Bearer-token verification against a JWKS served over HTTP: every bad token is a 401/403, never a 500."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.support.issuer import LocalIssuer, new_key

ITEMS = "/api/v1/items"


def _assert_invalid_token(response: object) -> None:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestTokens:
    def test_valid_rs256_token_is_accepted(
        self, client: TestClient, auth: Callable[..., dict[str, str]]
    ) -> None:
        """A token signed by the issuer's RSA key, with the right claims, reads items."""
        response = client.get(ITEMS, headers=auth())
        assert response.status_code == 200, response.text

    def test_valid_es256_token_is_accepted(self, client: TestClient, issuer: LocalIssuer) -> None:
        """ES256 (an EC key from the JWKS) is accepted as well as RS256."""
        token = issuer.mint(key=issuer.keys[1])
        assert client.get(ITEMS, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    def test_missing_token_is_401_with_bearer_challenge(self, client: TestClient) -> None:
        """No Authorization header: 401 and a plain Bearer challenge (RFC 6750 section 3)."""
        response = client.get(ITEMS)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    @pytest.mark.parametrize(
        "claims",
        [
            pytest.param({"ttl": -3600}, id="expired"),
            pytest.param({"not_before": int(time.time()) + 3600}, id="not-yet-valid"),
            pytest.param({"issuer": "https://evil.example/"}, id="wrong-issuer"),
            pytest.param({"audience": "api://someone-else"}, id="wrong-audience"),
        ],
    )
    def test_bad_claims_are_refused(
        self, client: TestClient, auth: Callable[..., dict[str, str]], claims: dict[str, object]
    ) -> None:
        """Expired, not yet valid, foreign issuer or audience: 401 invalid_token."""
        _assert_invalid_token(client.get(ITEMS, headers=auth(**claims)))

    def test_small_clock_skew_is_tolerated(
        self, client: TestClient, auth: Callable[..., dict[str, str]]
    ) -> None:
        """A token that became valid a few seconds in our future still works (leeway)."""
        response = client.get(ITEMS, headers=auth(not_before=int(time.time()) + 5))
        assert response.status_code == 200, response.text

    def test_unknown_kid_is_refused(self, client: TestClient, issuer: LocalIssuer) -> None:
        """A token signed by a key the issuer does not publish is refused."""
        token = issuer.mint(key=new_key("RS256"))
        _assert_invalid_token(client.get(ITEMS, headers={"Authorization": f"Bearer {token}"}))

    def test_missing_kid_is_refused(self, client: TestClient, issuer: LocalIssuer) -> None:
        """A token without a key id is refused before any key lookup."""
        key = issuer.keys[0]
        token = jwt.encode(
            {"sub": "x", "aud": "a", "iss": issuer.url, "exp": int(time.time()) + 60}, key.private, "RS256"
        )
        _assert_invalid_token(client.get(ITEMS, headers={"Authorization": f"Bearer {token}"}))

    def test_tampered_payload_is_refused(self, client: TestClient, issuer: LocalIssuer) -> None:
        """Changing a claim after signing breaks the signature."""
        header, payload, signature = issuer.mint(subject="alice").split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["sub"] = "mallory"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        _assert_invalid_token(
            client.get(ITEMS, headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
        )

    def test_alg_none_is_refused(self, client: TestClient, issuer: LocalIssuer) -> None:
        """An unsigned token (alg=none) is never verified."""
        claims = {
            "sub": "x",
            "aud": "api://backend-iac-tests",
            "iss": issuer.url,
            "exp": int(time.time()) + 60,
        }
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.keys[0].kid})
        _assert_invalid_token(client.get(ITEMS, headers={"Authorization": f"Bearer {token}"}))

    def test_hs256_signed_with_the_public_key_is_refused(
        self, client: TestClient, issuer: LocalIssuer
    ) -> None:
        """The algorithm-confusion attack: HMAC with the public key as the secret is refused."""
        public_jwk = json.dumps(issuer.keys[0].public_jwk()).encode()
        claims = {
            "sub": "x",
            "scp": "items.read",
            "aud": "api://backend-iac-tests",
            "iss": issuer.url,
            "exp": int(time.time()) + 60,
        }
        header = {"kid": issuer.keys[0].kid, "alg": "HS256", "typ": "JWT"}

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        import hashlib
        import hmac

        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = hmac.new(public_jwk, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(signature)}"
        _assert_invalid_token(client.get(ITEMS, headers={"Authorization": f"Bearer {token}"}))

    @pytest.mark.parametrize(
        "value",
        [
            "Bearer",
            "Bearer ",
            "Bearer garbage",
            "Bearer a.b.c",
            "Basic dXNlcjpwYXNz",
            "Bearer ....",
            "Bearer \x7f",
        ],
    )
    def test_garbage_authorization_headers_are_401(self, client: TestClient, value: str) -> None:
        """Anything that is not a well-formed bearer JWT is a 401, never a 500."""
        response = client.get(ITEMS, headers={"Authorization": value})
        assert response.status_code == 401, response.text

    def test_token_without_scope_is_403_insufficient_scope(
        self, client: TestClient, auth: Callable[..., dict[str, str]]
    ) -> None:
        """Authenticated but lacking items.write: 403 with error="insufficient_scope" naming the scope."""
        response = client.post(ITEMS, json={"name": "x"}, headers=auth(scopes="items.read"))
        assert response.status_code == 403, response.text
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="items.write"' in challenge

    def test_roles_claim_grants_scopes(self, client: TestClient, auth: Callable[..., dict[str, str]]) -> None:
        """App roles (the `roles` list of client-credential tokens) grant scopes like `scp` does."""
        headers = auth(scopes=None, roles=["items.read", "items.write"])
        assert client.post(ITEMS, json={"name": "x"}, headers=headers).status_code == 201

    def test_oid_claim_takes_precedence_over_sub(
        self, client: TestClient, auth: Callable[..., dict[str, str]]
    ) -> None:
        """Ownership follows oid when present: two tokens with one oid and different subs share items."""
        created = client.post(ITEMS, json={"name": "x"}, headers=auth(subject="s1", oid="object-1"))
        assert created.status_code == 201
        item_url = created.headers["location"]
        assert client.get(item_url, headers=auth(subject="s2", oid="object-1")).status_code == 200
        assert client.get(item_url, headers=auth(subject="object-1")).status_code == 200
        assert client.get(item_url, headers=auth(subject="s1")).status_code == 404
