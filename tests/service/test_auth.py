"""Bearer-token verification against a JWKS served over HTTP: every bad token is a 401/403, never a 500."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from service.config import load_settings
from service.main import create_app
from tests.support.issuer import AUDIENCE, LocalIssuer, SigningKey, new_key

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
        assert client.get(item_url, headers=auth(subject="s1")).status_code == 404
        # A token without oid whose sub equals the owner's oid is someone else (issue 18 item 5).
        assert client.get(item_url, headers=auth(subject="object-1")).status_code == 404


ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
ENTRA_TENANT = "00000000-0000-0000-0000-00000000aaaa"
ENTRA_V2_ISSUER = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
ENTRA_CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _description(response: object) -> str:
    """The RFC 6750 error_description of a refusal, checked to equal the problem detail."""
    from httpx import Response

    assert isinstance(response, Response)
    challenge = response.headers["www-authenticate"]
    assert 'error_description="' in challenge, challenge
    description = challenge.split('error_description="', 1)[1].split('"', 1)[0]
    assert description == response.json()["detail"]
    return description


@pytest.fixture
def every_algorithm_issuer() -> Iterator[LocalIssuer]:
    """An issuer of this module's own publishing one key per accepted algorithm."""
    local = LocalIssuer(keys=[new_key(algorithm) for algorithm in ALGORITHMS]).start()
    yield local
    local.stop()


@pytest.fixture
def every_algorithm_client(every_algorithm_issuer: LocalIssuer, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        app_env="production",
        database_url=f"sqlite:///{tmp_path / 'items.sqlite3'}",
        auth_issuer=every_algorithm_issuer.url,
        auth_audience=AUDIENCE,
        build_info_path=tmp_path / "missing-build-info.json",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        _wait_for_warm_fetch(every_algorithm_issuer)
        yield test_client


def _wait_for_warm_fetch(issuer: LocalIssuer, fetches: int = 1) -> None:
    """The key set is fetched in the background at start-up: wait (bounded) until it was asked for."""
    deadline = time.monotonic() + 10.0
    while issuer.jwks_requests < fetches and time.monotonic() < deadline:
        time.sleep(0.02)
    assert issuer.jwks_requests >= fetches, "the service never fetched the key set"


@pytest.fixture
def entra_client(issuer: LocalIssuer, tmp_path: Path) -> Iterator[TestClient]:
    """The service configured as for Entra ID v2.0 (issuer, client-id audience), keys from the local JWKS."""
    settings = load_settings(
        app_env="production",
        database_url=f"sqlite:///{tmp_path / 'items.sqlite3'}",
        auth_issuer=ENTRA_V2_ISSUER,
        auth_audience=ENTRA_CLIENT_ID,
        auth_jwks_url=issuer.jwks_url,
        build_info_path=tmp_path / "missing-build-info.json",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


class TestAlgorithms:
    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_every_accepted_algorithm_verifies(
        self, every_algorithm_client: TestClient, every_algorithm_issuer: LocalIssuer, algorithm: str
    ) -> None:
        """RS256/384/512, PS256/384/512 and ES256/384 tokens, each signed with its own key, read items."""
        key = next(key for key in every_algorithm_issuer.keys if key.algorithm == algorithm)
        response = every_algorithm_client.get(ITEMS, headers=_bearer(every_algorithm_issuer.mint(key=key)))
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("algorithm", "kid_of"), [("RS256", "ES256"), ("ES256", "RS256"), ("PS256", "ES384")]
    )
    def test_key_of_another_family_is_refused(
        self,
        every_algorithm_client: TestClient,
        every_algorithm_issuer: LocalIssuer,
        algorithm: str,
        kid_of: str,
    ) -> None:
        """A token whose kid names a key of another type (an EC key for RS256, ...) is refused, named."""
        signer = next(key for key in every_algorithm_issuer.keys if key.algorithm == algorithm)
        other = next(key for key in every_algorithm_issuer.keys if key.algorithm == kid_of)
        token = every_algorithm_issuer.mint(key=signer, headers={"kid": other.kid})
        response = every_algorithm_client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        assert "does not match its key" in _description(response)

    def test_declared_jwk_algorithm_binds_the_key(
        self, every_algorithm_client: TestClient, every_algorithm_issuer: LocalIssuer
    ) -> None:
        """An RSA key published for RS256 does not verify a PS256 token signed with the same private key."""
        rs256 = next(key for key in every_algorithm_issuer.keys if key.algorithm == "RS256")
        token = every_algorithm_issuer.mint(
            key=SigningKey(kid=rs256.kid, private=rs256.private, algorithm="PS256")
        )
        _assert_invalid_token(every_algorithm_client.get(ITEMS, headers=_bearer(token)))

    @pytest.mark.parametrize("algorithm", ["none", "HS256", "HS512", "ES512", "EdDSA"])
    def test_unaccepted_algorithms_are_refused_before_any_key_lookup(
        self, every_algorithm_client: TestClient, every_algorithm_issuer: LocalIssuer, algorithm: str
    ) -> None:
        """alg none, HMAC and algorithms outside the list are 401 without a JWKS fetch, even for a new kid."""
        header = {"alg": algorithm, "kid": f"made-up-{uuid.uuid4().hex}", "typ": "JWT"}
        claims = {
            "iss": every_algorithm_issuer.url,
            "aud": AUDIENCE,
            "sub": "x",
            "exp": int(time.time()) + 60,
        }
        token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(b'sig')}"
        fetches = every_algorithm_issuer.jwks_requests
        response = every_algorithm_client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        assert every_algorithm_issuer.jwks_requests == fetches
        description = _description(response)
        assert algorithm not in description.replace("RS256", "").replace("ES256", "").replace("HMAC", "")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestScopesAndCauses:
    def test_rfc9068_scope_claim_grants_scopes(self, client: TestClient, issuer: LocalIssuer) -> None:
        """An RFC 9068 token carrying its scopes in `scope` (no scp, no roles) reads and writes."""
        token = issuer.mint(scopes=None, extra={"scope": "openid items.read items.write", "client_id": "c1"})
        created = client.post(ITEMS, json={"name": "x"}, headers=_bearer(token))
        assert created.status_code == 201, created.text
        read_only = issuer.mint(scopes=None, extra={"scope": "items.read"})
        refused = client.post(ITEMS, json={"name": "x"}, headers=_bearer(read_only))
        assert refused.status_code == 403, refused.text

    def test_wrong_audience_names_the_expected_one(self, client: TestClient, issuer: LocalIssuer) -> None:
        """A token for another API: 401 whose detail and error_description say which audience is expected."""
        token = issuer.mint(audience="api://someone-else")
        response = client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        description = _description(response)
        assert "audience" in description
        assert AUDIENCE in description
        assert "someone-else" not in response.text

    def test_wrong_issuer_is_named(self, client: TestClient, issuer: LocalIssuer) -> None:
        """A token from another issuer: 401 naming the issuer as the cause."""
        response = client.get(ITEMS, headers=_bearer(issuer.mint(issuer="https://evil.example/")))
        _assert_invalid_token(response)
        assert "issuer" in _description(response)
        assert "evil.example" not in response.text

    def test_refusals_never_echo_the_token(self, client: TestClient, issuer: LocalIssuer) -> None:
        """No part of a refused token appears in the response, body or headers."""
        for token in (issuer.mint(ttl=-3600), issuer.mint(audience="x"), issuer.mint(key=new_key())):
            response = client.get(ITEMS, headers=_bearer(token))
            assert response.status_code == 401
            everything = response.text + json.dumps(dict(response.headers))
            for part in token.split("."):
                assert part[:16] not in everything


class TestEntra:
    def test_v2_token_for_the_client_id_is_accepted(
        self, entra_client: TestClient, issuer: LocalIssuer
    ) -> None:
        """The Entra v2.0 shape: iss .../v2.0, aud the API's client id, ver 2.0."""
        token = issuer.mint(
            issuer=ENTRA_V2_ISSUER, audience=ENTRA_CLIENT_ID, extra={"ver": "2.0", "azp": ENTRA_CLIENT_ID}
        )
        response = entra_client.get(ITEMS, headers=_bearer(token))
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "audience",
        [
            pytest.param("api://backend-iac", id="identifier-uri"),
            pytest.param(ENTRA_CLIENT_ID, id="client-id"),
        ],
    )
    def test_v1_token_to_a_v2_configuration_says_what_to_change(
        self, entra_client: TestClient, issuer: LocalIssuer, audience: str
    ) -> None:
        """An Entra v1.0 token (sts.windows.net issuer, ver 1.0): 401 telling to set requestedAccessTokenVersion
        to 2 or to configure the v1.0 issuer."""
        token = issuer.mint(
            issuer=f"https://sts.windows.net/{ENTRA_TENANT}/", audience=audience, extra={"ver": "1.0"}
        )
        response = entra_client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        description = _description(response)
        assert "v1.0" in description
        assert "requestedAccessTokenVersion" in description
        assert "AUTH_ISSUER" in description


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(issuer: LocalIssuer, payload: bytes, *, header: dict[str, object] | None = None) -> str:
    """A token over raw payload bytes, really signed (RS256) by the issuer's RSA key, whatever the header
    says: built by hand, since a JWT library refuses to write most of these."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = issuer.keys[0]
    assert isinstance(key.private, rsa.RSAPrivateKey)
    fields = {"alg": "RS256", "typ": "JWT", "kid": key.kid, **(header or {})}
    signing_input = f"{_b64(json.dumps(fields).encode())}.{_b64(payload)}"
    signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _claims(issuer: LocalIssuer, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": "user-1",
        "scp": "items.read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not _ABSENT}


_ABSENT = object()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestMalformedTokens:
    """Every header field and claim is type-checked before use: a malformed, correctly signed token is a 401
    naming the field, never a 500 (issue 18 item 1)."""

    @pytest.mark.parametrize(
        "header",
        [
            pytest.param({"alg": ["RS256"]}, id="alg-list"),
            pytest.param({"alg": {"RS256": True}}, id="alg-object"),
            pytest.param({"alg": 256}, id="alg-number"),
            pytest.param({"alg": None}, id="alg-null"),
            pytest.param({"kid": ["k"]}, id="kid-list"),
            pytest.param({"kid": {"k": 1}}, id="kid-object"),
            pytest.param({"kid": ""}, id="kid-empty"),
            pytest.param({"kid": "k" * 300}, id="kid-huge"),
            pytest.param({"typ": ["JWT"]}, id="typ-list"),
            pytest.param({"crit": ["exp"]}, id="crit-unknown"),
        ],
    )
    def test_malformed_header_fields_are_401(
        self, client: TestClient, issuer: LocalIssuer, header: dict[str, object]
    ) -> None:
        """A header whose alg, kid or typ is a list, object, number or null: 401, not a 500."""
        token = _signed(issuer, json.dumps(_claims(issuer)).encode(), header=header)
        _assert_invalid_token(client.get(ITEMS, headers=_bearer(token)))

    @pytest.mark.parametrize(
        ("claims", "field"),
        [
            pytest.param({"exp": "9999999999"}, "exp", id="exp-string"),
            pytest.param({"exp": True}, "exp", id="exp-bool"),
            pytest.param({"exp": None}, "exp", id="exp-null"),
            pytest.param({"exp": [1]}, "exp", id="exp-list"),
            pytest.param({"exp": 10**400}, "exp", id="exp-10-to-the-400"),
            pytest.param({"exp": 1e300}, "exp", id="exp-1e300"),
            pytest.param({"exp": -1}, "exp", id="exp-negative"),
            pytest.param({"exp": _ABSENT}, "exp", id="exp-missing"),
            pytest.param({"nbf": "0"}, "nbf", id="nbf-string"),
            pytest.param({"nbf": 10**400}, "nbf", id="nbf-10-to-the-400"),
            pytest.param({"nbf": False}, "nbf", id="nbf-bool"),
            pytest.param({"iat": "0"}, "iat", id="iat-string"),
            pytest.param({"iat": 10**400}, "iat", id="iat-10-to-the-400"),
            pytest.param({"iss": ["x"]}, "iss", id="iss-list"),
            pytest.param({"aud": {"a": 1}}, "aud", id="aud-object"),
            pytest.param({"aud": [AUDIENCE, 1]}, "aud", id="aud-list-with-number"),
            pytest.param({"aud": 5}, "aud", id="aud-number"),
            pytest.param({"sub": 12}, "sub", id="sub-number"),
            pytest.param({"sub": {"id": 1}}, "sub", id="sub-object"),
            pytest.param({"oid": ["a"]}, "oid", id="oid-list"),
            pytest.param({"scp": ["items.read"]}, "scp", id="scp-list"),
            pytest.param({"scope": {"items.read": 1}}, "scope", id="scope-object"),
            pytest.param({"roles": "items.read"}, "roles", id="roles-string"),
            pytest.param({"roles": [1, 2]}, "roles", id="roles-numbers"),
        ],
    )
    def test_malformed_claims_are_401_naming_the_claim(
        self, client: TestClient, issuer: LocalIssuer, claims: dict[str, object], field: str
    ) -> None:
        """Numeric dates must be JSON numbers in range (not strings, bools or 10**400); strings and lists
        must be what they claim to be."""
        token = _signed(issuer, json.dumps(_claims(issuer, **claims)).encode())
        response = client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        assert field in _description(response)

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param(b"[1, 2]", id="array"),
            pytest.param(b'"claims"', id="string"),
            pytest.param(b"\xff\xfe", id="not-utf8"),
            pytest.param(b'{"exp": NaN}', id="nan"),
            pytest.param(b'{"exp": ' + b"9" * 5000 + b"}", id="5000-digits"),
            pytest.param(b'{"a": ' * 3000 + b"1" + b"}" * 3000, id="deeply-nested"),
        ],
    )
    def test_payloads_that_are_not_claim_objects_are_401(
        self, client: TestClient, issuer: LocalIssuer, payload: bytes
    ) -> None:
        """A signed payload that is not a JSON object of claims is a 401."""
        response = client.get(ITEMS, headers=_bearer(_signed(issuer, payload)))
        assert response.status_code == 401, response.text

    def test_nbf_is_optional_but_checked_when_present(self, client: TestClient, issuer: LocalIssuer) -> None:
        """RFC 9068 does not require nbf: a token without it is accepted; one with a future nbf is not."""
        without = _signed(issuer, json.dumps(_claims(issuer, nbf=_ABSENT)).encode())
        assert client.get(ITEMS, headers=_bearer(without)).status_code == 200
        future = _signed(issuer, json.dumps(_claims(issuer, nbf=int(time.time()) + 3600)).encode())
        _assert_invalid_token(client.get(ITEMS, headers=_bearer(future)))

    def test_fractional_dates_are_numbers_too(self, client: TestClient, issuer: LocalIssuer) -> None:
        """RFC 7519 NumericDates may be non-integer JSON numbers."""
        token = _signed(
            issuer, json.dumps(_claims(issuer, exp=time.time() + 600.5, nbf=time.time() - 0.5)).encode()
        )
        assert client.get(ITEMS, headers=_bearer(token)).status_code == 200


class TestAccessTokensOnly:
    """ID tokens are refused, whatever they carry (issue 18 item 4)."""

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    @pytest.mark.parametrize("claim", ["nonce", "at_hash", "c_hash"])
    def test_id_token_claims_are_refused(self, client: TestClient, issuer: LocalIssuer, claim: str) -> None:
        """A token carrying an ID-token claim (with roles that would otherwise grant everything) is a 401."""
        token = issuer.mint(roles=["items.read", "items.write"], extra={claim: "abc"})
        response = client.get(ITEMS, headers=_bearer(token))
        _assert_invalid_token(response)
        assert "ID token" in _description(response)

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    @pytest.mark.parametrize("token_type", ["id_token+jwt", "logout+jwt", "secevent+jwt", "JOSE"])
    def test_other_token_types_are_refused(
        self, client: TestClient, issuer: LocalIssuer, token_type: str
    ) -> None:
        """A typ other than at+jwt / JWT is not an access token."""
        response = client.get(ITEMS, headers=_bearer(issuer.mint(headers={"typ": token_type})))
        _assert_invalid_token(response)
        assert "typ" in _description(response)

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    @pytest.mark.parametrize("token_type", ["at+jwt", "application/at+jwt", "application/AT+JWT", "JWT"])
    def test_access_token_types_are_accepted(
        self, client: TestClient, issuer: LocalIssuer, token_type: str
    ) -> None:
        """RFC 9068's at+jwt (any case, with or without application/) and Entra's JWT are accepted."""
        response = client.get(ITEMS, headers=_bearer(issuer.mint(headers={"typ": token_type})))
        assert response.status_code == 200, response.text

    def test_entra_id_token_without_client_claim_is_refused(
        self, entra_client: TestClient, issuer: LocalIssuer
    ) -> None:
        """An Entra v2.0 ID token for the API's own registration (aud its client id, no azp, no nonce)
        is refused; the access token of the same shape with azp is accepted."""
        claims = {"ver": "2.0", "roles": ["items.read"]}
        id_token = issuer.mint(issuer=ENTRA_V2_ISSUER, audience=ENTRA_CLIENT_ID, extra=claims)
        response = entra_client.get(ITEMS, headers=_bearer(id_token))
        _assert_invalid_token(response)
        assert "azp" in _description(response)
        access = issuer.mint(issuer=ENTRA_V2_ISSUER, audience=ENTRA_CLIENT_ID, extra={**claims, "azp": "c"})
        assert entra_client.get(ITEMS, headers=_bearer(access)).status_code == 200
