"""What a first-time caller meets: the wrong media type, broken JSON, an empty PATCH, a DELETE's 204."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

ITEMS = "/api/v1/items"
Auth = Callable[..., dict[str, str]]


def test_a_body_sent_as_form_data_is_415_naming_the_media_type(client: TestClient, auth: Auth) -> None:
    """`curl -d` without a JSON content type: 415 saying to send JSON, not "a valid dictionary"."""
    headers = {**auth(), "content-type": "application/x-www-form-urlencoded"}
    response = client.post(ITEMS, content=b'{"name": "first"}', headers=headers)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert "content-type: application/json" in problem["detail"]
    assert "application/x-www-form-urlencoded" in problem["detail"]
    assert "dictionary" not in response.text


def test_a_body_with_no_content_type_is_415_too(client: TestClient, auth: Auth) -> None:
    """No content type at all: FastAPI does not read the body as JSON, so the answer says what to send."""
    response = client.post(ITEMS, content=b'{"name": "first"}', headers=auth())
    assert response.status_code == 415, response.text
    assert "no content-type" in response.json()["detail"]


def test_json_with_a_structured_suffix_is_accepted(client: TestClient, auth: Auth) -> None:
    """application/merge-patch+json is JSON too."""
    url = client.post(ITEMS, json={"name": "a"}, headers=auth()).headers["location"]
    response = client.patch(
        url, content=b'{"name": "b"}', headers={**auth(), "content-type": "application/merge-patch+json"}
    )
    assert response.status_code == 200, response.text


def test_malformed_json_is_422_with_its_position(client: TestClient, auth: Auth) -> None:
    """Broken JSON names what is wrong and where: line and column."""
    body = b'{\n  "name": "first",\n  "description": oops\n}'
    response = client.post(ITEMS, content=body, headers={**auth(), "content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("body: malformed JSON: "), detail
    assert "line 3, column 18" in detail, detail


def test_an_empty_patch_changes_nothing(client: TestClient, auth: Auth) -> None:
    """PATCH {} returns the item exactly as it was: updated_at does not move."""
    created = client.post(ITEMS, json={"name": "a", "description": "d"}, headers=auth())
    time.sleep(0.01)
    patched = client.patch(created.headers["location"], json={}, headers=auth())
    assert patched.status_code == 200, patched.text
    assert patched.json() == created.json()


def test_an_empty_patch_of_another_callers_item_is_404(client: TestClient, auth: Auth) -> None:
    """Changing nothing still does not reveal another caller's item."""
    url = client.post(ITEMS, json={"name": "a"}, headers=auth(subject="alice")).headers["location"]
    assert client.patch(url, json={}, headers=auth(subject="bob")).status_code == 404


def test_delete_answers_204_with_no_body_and_no_body_type(client: TestClient, auth: Auth) -> None:
    """A 204 carries neither a body nor a content-type."""
    url = client.post(ITEMS, json={"name": "a"}, headers=auth()).headers["location"]
    response = client.delete(url, headers=auth())
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
