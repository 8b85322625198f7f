"""Interoperability with a real OpenID provider we do not write: panva's oidc-provider (npm), on loopback.

It issues RFC 9068 JWT access tokens by client credentials (scopes in `scope`, `sub` the client); the
service runs as App Service runs it (gunicorn, APP_ENV=production, AUTH_ISSUER the provider, discovery
and JWKS fetched over HTTP). Create, read and list work; a read-only client is refused a write with 403;
two clients never see each other's items; tokens signed RS256, PS256 and ES256 all verify.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oidc_provider import Client, OidcProvider
from tests.support.service_process import ServiceProcess, production_env

pytestmark = pytest.mark.slow

RESOURCE = "https://backend-iac.test/api"
WRITER_A = Client("writer-a", "secret-a-0123456789", "items.read items.write")
WRITER_B = Client("writer-b", "secret-b-0123456789", "items.read items.write")
READER = Client("reader", "secret-r-0123456789", "items.read")
PS_WRITER = Client("writer-ps", "secret-p-0123456789", "items.read items.write", alg="PS256")
ES_WRITER = Client("writer-es", "secret-e-0123456789", "items.read items.write", alg="ES256")
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider([WRITER_A, WRITER_B, READER, PS_WRITER, ES_WRITER], RESOURCE) as started:
        yield started


@pytest.fixture(scope="module")
def service(provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service under gunicorn trusting the provider: AUTH_ISSUER its issuer, AUTH_AUDIENCE the resource."""
    home: Path = tmp_path_factory.mktemp("interop-home")
    with ServiceProcess(env=production_env(provider.issuer, RESOURCE, home), workers=1) as running:
        yield running


def claims_of(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def part(segment: str) -> dict[str, object]:
        decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        return decoded

    header, payload, _ = token.split(".")
    return part(header), part(payload)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_provider_issues_rfc_9068_access_tokens(provider: OidcProvider) -> None:
    """What the service is up against: typ at+jwt, aud the resource, scopes only in `scope`, no scp/roles."""
    header, claims = claims_of(provider.token(WRITER_A, "items.read items.write"))
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == claims["client_id"] == "writer-a"
    assert claims["scope"] == "items.read items.write"
    assert "scp" not in claims
    assert "roles" not in claims
    assert provider.discovery()["issuer"] == provider.issuer


def test_create_read_and_list_with_a_client_credentials_token(
    provider: OidcProvider, service: ServiceProcess
) -> None:
    """A writer's token creates an item (201), reads it back (200) and finds it in its list (200)."""
    headers = bearer(provider.token(WRITER_A, "items.read items.write"))
    with httpx.Client(base_url=service.url, headers=headers, timeout=TIMEOUT) as client:
        created = client.post("/api/v1/items", json={"name": "from oidc-provider"})
        assert created.status_code == 201, created.text
        item = created.json()
        read = client.get(f"/api/v1/items/{item['id']}")
        assert read.status_code == 200, read.text
        assert read.json()["name"] == "from oidc-provider"
        listed = client.get("/api/v1/items", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        assert item["id"] in [entry["id"] for entry in listed.json()["items"]]


def test_read_only_client_may_read_but_is_refused_a_write_with_403(
    provider: OidcProvider, service: ServiceProcess
) -> None:
    """A client allowed only items.read: the provider will not grant items.write; its token lists (200)
    and is refused a create with 403 insufficient_scope naming the scope, in the body and the challenge."""
    assert provider.token_response(READER, "items.write").json()["error"] == "invalid_scope"
    token = provider.token(READER, "items.read")
    assert claims_of(token)[1]["scope"] == "items.read"
    with httpx.Client(base_url=service.url, headers=bearer(token), timeout=TIMEOUT) as client:
        assert client.get("/api/v1/items").status_code == 200
        refused = client.post("/api/v1/items", json={"name": "not allowed"})
    assert refused.status_code == 403, refused.text
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert 'scope="items.write"' in refused.headers["www-authenticate"]
    assert "items.write" in refused.json()["detail"]


def test_two_clients_are_isolated_from_each_other(provider: OidcProvider, service: ServiceProcess) -> None:
    """Client B neither lists nor reads nor changes client A's item (404, as if it did not exist)."""
    with (
        httpx.Client(base_url=service.url, headers=bearer(provider.token(WRITER_A, "items.read items.write")), timeout=TIMEOUT) as a,
        httpx.Client(base_url=service.url, headers=bearer(provider.token(WRITER_B, "items.read items.write")), timeout=TIMEOUT) as b,
    ):  # fmt: skip
        secret = a.post("/api/v1/items", json={"name": "a's own"}).json()
        mine = b.post("/api/v1/items", json={"name": "b's own"}).json()
        b_ids = [entry["id"] for entry in b.get("/api/v1/items", params={"limit": 100}).json()["items"]]
        assert secret["id"] not in b_ids
        assert mine["id"] in b_ids
        assert b.get(f"/api/v1/items/{secret['id']}").status_code == 404
        assert b.patch(f"/api/v1/items/{secret['id']}", json={"name": "taken"}).status_code == 404
        assert b.delete(f"/api/v1/items/{secret['id']}").status_code == 404
        assert a.get(f"/api/v1/items/{secret['id']}").json()["name"] == "a's own"
        assert mine["id"] not in [
            entry["id"] for entry in a.get("/api/v1/items", params={"limit": 100}).json()["items"]
        ]


@pytest.mark.parametrize("client", [PS_WRITER, ES_WRITER], ids=["PS256", "ES256"])
def test_other_asymmetric_algorithms_verify(
    provider: OidcProvider, service: ServiceProcess, client: Client
) -> None:
    """Tokens the provider signs with PS256 (RSA-PSS) and ES256 (P-256) verify like RS256 ones."""
    token = provider.token(client, "items.read items.write")
    assert claims_of(token)[0]["alg"] == client.alg
    response = httpx.post(
        f"{service.url}/api/v1/items", json={"name": client.alg}, headers=bearer(token), timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text


def test_a_token_for_another_resource_is_refused_naming_the_audience(
    provider: OidcProvider, service: ServiceProcess, tmp_path: Path
) -> None:
    """The same provider's token for another API: 401 whose detail names the audience this API expects."""
    with OidcProvider([WRITER_A], "https://another.test/api") as other:
        token = other.token(WRITER_A, "items.read")
    response = httpx.get(f"{service.url}/api/v1/items", headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert token not in response.text
