"""The liveness probe is answered by a plain route (issue 19) and still behaves as the documented operation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_probe_answers_get_and_head_and_stays_documented(client: TestClient) -> None:
    """GET and HEAD are 200 with the JSON body (HEAD without it), security headers and a request id; the
    OpenAPI document still lists both operations; another method is a 405 problem document."""
    got = client.get("/healthz")
    assert (got.status_code, got.json()) == (200, {"status": "ok"}), got.text
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert len(got.headers["x-request-id"]) == 32
    head = client.head("/healthz")
    assert (head.status_code, head.content) == (200, b"")
    operations = client.get("/openapi.json").json()["paths"]["/healthz"]
    assert set(operations) == {"get", "head"}
    refused = client.post("/healthz")
    assert refused.status_code == 405, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "GET" in refused.headers["allow"]


def test_routes_are_tried_busiest_first() -> None:
    """Starlette tries routes in order: the probe first, then the API's, then the documents and metadata
    (issue 19: the item routes used to come eleventh). Every route is still there, once."""
    from service.main import create_app

    app = create_app()
    paths = [getattr(route, "path", "") for route in app.router.routes]
    assert paths[0] == "/healthz"
    api = [index for index, path in enumerate(paths) if path.startswith("/api/v1/items")]
    assert api == list(range(1, 6)), paths
    assert {"/openapi.json", "/docs", "/redoc", "/readyz", "/version", "/docs/assets"} <= set(paths[6:])
    assert paths.count("/healthz") == 3  # the plain probe route, then the documented GET and HEAD
