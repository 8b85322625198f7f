"""What every response says about itself (security headers, redirects, HEAD), and the names items refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import load_settings
from service.main import create_app
from service.middleware import HSTS_VALUE
from tests.support.issuer import LocalIssuer


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: nothing here reaches the store's backend-specific code (validation runs first)."""
    return f"sqlite:///{tmp_path / 'items.sqlite3'}"


def _bearer(issuer: LocalIssuer, subject: str = "security") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=subject)}"}


def test_every_response_says_nosniff_and_the_api_says_no_store(
    client: TestClient, issuer: LocalIssuer
) -> None:
    """nosniff on every response (health, 404, 401, 201, 422); no-store on every API response and on
    anything answered to a request carrying credentials; HSTS in production; no server banner."""
    auth = _bearer(issuer)
    responses = {
        "healthz": client.get("/healthz"),
        "not_found": client.get("/nowhere"),
        "unauthenticated": client.get("/api/v1/items"),
        "created": client.post("/api/v1/items", json={"name": "kept"}, headers=auth),
        "listed": client.get("/api/v1/items", headers=auth),
        "invalid": client.post("/api/v1/items", json={"name": ""}, headers=auth),
        "version_with_token": client.get("/version", headers=auth),
    }
    for name, response in responses.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("strict-transport-security") == HSTS_VALUE.decode(), name
        assert "server" not in response.headers, name
    for name in ("unauthenticated", "created", "listed", "invalid", "version_with_token"):
        assert responses[name].headers.get("cache-control") == "no-store", name
    assert responses["created"].status_code == 201, responses["created"].text


def test_development_sends_no_hsts(tmp_path: Path) -> None:
    """HSTS is a production promise: a local development server over plain HTTP does not make it."""
    settings = load_settings(app_env="development", database_url=f"sqlite:///{tmp_path / 'dev.sqlite3'}")
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers


def test_health_endpoints_answer_head(client: TestClient) -> None:
    """HEAD on the health endpoints is 200 with no body (probes that only look at the status use it)."""
    for path in ("/healthz", "/readyz", "/version"):
        response = client.head(path)
        assert response.status_code == 200, (path, response.text)
        assert response.content == b"", path


def test_the_trailing_slash_redirect_never_names_the_clients_host(
    client: TestClient, issuer: LocalIssuer
) -> None:
    """The redirect from /api/v1/items/ is a relative Location (path and query), whatever Host said."""
    for host in ("evil.example", "evil.example:8443", "127.0.0.1@evil.example", "evil.example/..//x"):
        response = client.get(
            "/api/v1/items/?limit=5", headers={**_bearer(issuer), "host": host}, follow_redirects=False
        )
        assert response.status_code == 307, (host, response.text)
        assert response.headers["location"] == "/api/v1/items?limit=5", host


REFUSED_NAMES = {
    "blank": "",
    "spaces": "   ",
    "tab_and_newline": "\t\n",
    "ideographic_space": "\u3000",
    "newline_inside": "first\nsecond",
    "escape": "red\x1b[31m",
    "delete": "a\x7f",
    "right_to_left_override": "invoice\u202egpj.exe",
    "left_to_right_isolate": "a\u2066b",
    "zero_width_space": "look\u200balike",
    "zero_width_joiner_only": "\u200d",
    "byte_order_mark": "\ufeffname",
    "soft_hyphen": "soft\u00adhyphen",
}


def test_names_refuse_control_format_and_blank(client: TestClient, issuer: LocalIssuer) -> None:
    """Control (Cc) and format (Cf, bidi controls included) characters and blank names are a 422 naming
    `name`, on create and on update; nothing is stored."""
    auth = _bearer(issuer, subject="names")
    created = client.post("/api/v1/items", json={"name": "fine"}, headers=auth)
    assert created.status_code == 201, created.text
    for case, name in REFUSED_NAMES.items():
        for response in (
            client.post("/api/v1/items", json={"name": name}, headers=auth),
            client.patch(created.headers["location"], json={"name": name}, headers=auth),
        ):
            assert response.status_code == 422, (case, response.text)
            assert response.json()["errors"][0]["field"] == "name", (case, response.text)
    assert [item["name"] for item in client.get("/api/v1/items", headers=auth).json()["items"]] == ["fine"]


def test_names_keep_every_visible_script(client: TestClient, issuer: LocalIssuer) -> None:
    """Letters, marks, emoji, right-to-left scripts, inner and surrounding spaces are all fine."""
    auth = _bearer(issuer, subject="scripts")
    for name in ("ünïcødé ∑ 🙂", "שלום עולם", "名前", "a b", " padded "):
        response = client.post("/api/v1/items", json={"name": name}, headers=auth)
        assert response.status_code == 201, response.text
        assert response.json()["name"] == name
