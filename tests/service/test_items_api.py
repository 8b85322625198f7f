"""The items API contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient

ITEMS = "/api/v1/items"
Auth = Callable[..., dict[str, str]]


def test_create_returns_201_the_item_and_its_location(client: TestClient, auth: Auth) -> None:
    """POST creates: 201, the full item, and a Location that reads it back."""
    response = client.post(ITEMS, json={"name": "first", "description": "d"}, headers=auth())
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "description", "created_at", "updated_at"}
    assert (body["name"], body["description"]) == ("first", "d")
    assert response.headers["location"] == f"{ITEMS}/{body['id']}"
    assert client.get(response.headers["location"], headers=auth()).json() == body


def test_list_pages_in_stable_order(client: TestClient, auth: Auth) -> None:
    """Listing pages through the caller's items oldest first, with next_offset until the last page."""
    ids = [client.post(ITEMS, json={"name": f"n{i}"}, headers=auth()).json()["id"] for i in range(5)]
    first = client.get(ITEMS, params={"limit": 2}, headers=auth()).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert first["next_offset"] == 2
    rest = client.get(ITEMS, params={"limit": 3, "offset": 2}, headers=auth()).json()
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert rest["next_offset"] is None


def test_patch_changes_given_fields_and_delete_removes(client: TestClient, auth: Auth) -> None:
    """PATCH changes only what it names; DELETE is 204 and the item is then gone."""
    url = client.post(ITEMS, json={"name": "a", "description": "keep"}, headers=auth()).headers["location"]
    patched = client.patch(url, json={"name": "b"}, headers=auth())
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["description"]) == ("b", "keep")
    cleared = client.patch(url, json={"description": None}, headers=auth())
    assert cleared.json()["description"] is None
    assert client.delete(url, headers=auth()).status_code == 204
    assert client.get(url, headers=auth()).status_code == 404


def test_another_callers_item_is_404_for_every_operation(client: TestClient, auth: Auth) -> None:
    """Bob can neither see, list, change nor delete Alice's item: it does not exist for him."""
    url = client.post(ITEMS, json={"name": "alice's"}, headers=auth(subject="alice")).headers["location"]
    bob = auth(subject="bob")
    assert client.get(url, headers=bob).status_code == 404
    assert client.patch(url, json={"name": "mine"}, headers=bob).status_code == 404
    assert client.delete(url, headers=bob).status_code == 404
    assert client.get(ITEMS, headers=bob).json()["items"] == []
    assert client.get(url, headers=auth(subject="alice")).json()["name"] == "alice's"


def test_unknown_id_is_404_problem(client: TestClient, auth: Auth) -> None:
    """A well-formed id that does not exist is a 404 problem document."""
    response = client.get(f"{ITEMS}/{uuid.uuid4()}", headers=auth())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_invalid_fields_are_422_naming_the_field(client: TestClient, auth: Auth) -> None:
    """Too long, empty, wrong type, unknown field, bad id: 422 with the offending field named."""
    cases = [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
        ({"name": 5}, "name"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({}, "name"),
    ]
    for body, field in cases:
        response = client.post(ITEMS, json=body, headers=auth())
        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert problem["detail"].startswith(f"{field}:"), problem
        assert field in [error["field"] for error in problem["errors"]]
    assert client.get(f"{ITEMS}/not-a-uuid", headers=auth()).json()["errors"][0]["field"] == "item_id"
    assert client.get(ITEMS, params={"limit": 0}, headers=auth()).json()["errors"][0]["field"] == "limit"


def test_patch_name_null_is_422(client: TestClient, auth: Auth) -> None:
    """A name can be changed but not removed."""
    url = client.post(ITEMS, json={"name": "a"}, headers=auth()).headers["location"]
    response = client.patch(url, json={"name": None}, headers=auth())
    assert response.status_code == 422
    assert response.json()["detail"].startswith("name:")


def test_malformed_json_is_422_naming_the_body(client: TestClient, auth: Auth) -> None:
    """Unparseable JSON is a 422 that says the body is malformed; nothing is stored."""
    headers = {**auth(), "content-type": "application/json"}
    response = client.post(ITEMS, content=b'{"name": "x",', headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    assert client.get(ITEMS, headers=auth()).json()["items"] == []


def test_body_over_one_mebibyte_is_413(client: TestClient, auth: Auth) -> None:
    """A body over 1 MiB is refused with 413 and a problem document, declared length or not."""
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post(ITEMS, content=big, headers={**auth(), "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["status"] == 413

    def chunks() -> object:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    streamed = client.post(ITEMS, content=chunks(), headers={**auth(), "content-type": "application/json"})  # type: ignore[arg-type]
    assert streamed.status_code == 413


def test_errors_are_problem_documents_with_request_ids(client: TestClient, auth: Auth) -> None:
    """Error bodies are application/problem+json with type, title, status and the request id echoed."""
    response = client.get(f"{ITEMS}/{uuid.uuid4()}", headers={**auth(), "x-request-id": "req-123"})
    assert response.headers["x-request-id"] == "req-123"
    problem = response.json()
    assert {"type", "title", "status"} <= set(problem)
    assert problem["request_id"] == "req-123"


def test_traceparent_becomes_the_request_id(client: TestClient) -> None:
    """Without x-request-id, the W3C trace id of traceparent is the request id."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get("/healthz", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert response.headers["x-request-id"] == trace_id
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_health_ready_version_and_docs(client: TestClient) -> None:
    """Liveness, readiness, version and the OpenAPI document answer without a token."""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    version = client.get("/version").json()
    assert set(version) == {"version", "commit", "python", "started_at"}
    assert "/api/v1/items/{item_id}" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
