"""Hostile input: every malformed, oversized or slow request is a 4xx within limits, never a 500 or a hang."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import backend, report
from tests.support.issuer import LocalIssuer
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.reliability

SQL_METACHARACTERS = [
    "'; DROP TABLE items; --",
    '" OR "1"="1',
    "' OR 1=1 --",
    "1; SELECT pg_sleep(10)",
    "%(owner)s :owner $1 ? %s",
    "\\'; \\x00 \\\\",
    "Robert'); DELETE FROM items WHERE ('1'='1",
    "/* */ UNION SELECT id, owner FROM items --",
    "ünïcødé ∑ 🙂 שלום",
]
BODY_TIMEOUT_SECONDS = 2.0
# A refusal must come back well within this, whatever the request (the slow upload: its timeout plus this).
ANSWER_WITHIN_SECONDS = 3.0


def test_sql_metacharacters_in_every_string_field_are_stored_verbatim(
    client: TestClient, issuer: LocalIssuer, database_url: str
) -> None:
    """SQL metacharacters in name and description (create and update) round-trip exactly and touch nothing else."""
    headers = bearer(issuer.mint(subject="sql-probe"))
    bystander = bearer(issuer.mint(subject="bystander"))
    kept = client.post("/api/v1/items", json={"name": "bystander's"}, headers=bystander)
    assert kept.status_code == 201, kept.text
    statuses: Counter[int] = Counter()
    for text in SQL_METACHARACTERS:
        created = client.post("/api/v1/items", json={"name": text, "description": text}, headers=headers)
        statuses[created.status_code] += 1
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        changed = client.patch(url, json={"name": text[::-1], "description": text * 2}, headers=headers)
        statuses[changed.status_code] += 1
        assert changed.status_code == 200, changed.text
        read = client.get(url, headers=headers).json()
        assert (read["name"], read["description"]) == (text[::-1], text * 2)
        listed = client.get(f"/api/v1/items?limit=100&offset=0&x={text}", headers=headers)
        assert listed.status_code == 200, listed.text
    assert len(client.get("/api/v1/items?limit=100", headers=headers).json()["items"]) == len(
        SQL_METACHARACTERS
    )
    assert client.get("/api/v1/items", headers=bystander).json()["items"] == [kept.json()]
    report(f"hostile-sql-{backend(database_url)}", requests=sum(statuses.values()), by_status=dict(statuses))


def test_nul_characters_are_refused_on_both_backends(client: TestClient, issuer: LocalIssuer) -> None:
    """A NUL in a string field is a 422 naming the field (PostgreSQL text cannot hold one), never a 500."""
    headers = bearer(issuer.mint(subject="nul-probe"))
    created = client.post("/api/v1/items", json={"name": "fine"}, headers=headers)
    assert created.status_code == 201, created.text
    for method, url, body, field in (
        ("POST", "/api/v1/items", {"name": "a\x00b"}, "name"),
        ("POST", "/api/v1/items", {"name": "ok", "description": "\x00"}, "description"),
        ("PATCH", created.headers["location"], {"name": "\x00"}, "name"),
        ("PATCH", created.headers["location"], {"description": "x\x00"}, "description"),
    ):
        response = client.request(method, url, json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


@pytest.fixture
def service(start_service: ServiceFactory) -> ServiceProcess:
    """The service under its start command on SQLite, with a short body timeout so a slow upload is quick."""
    return start_service(REQUEST_BODY_TIMEOUT=str(BODY_TIMEOUT_SECONDS))


def _raw(service: ServiceProcess, request: bytes, *, timeout: float = 10.0) -> tuple[int, float]:
    """Send bytes on a fresh socket; return the response's status code (0 if none) and seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port), timeout=timeout) as sock:
        # The server may answer and close before it has read everything: then read what it said.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            try:
                chunk = sock.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            head += chunk
    elapsed = time.monotonic() - started
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), elapsed


def _slow_upload(service: ServiceProcess, token: str) -> tuple[int, float]:
    """Declare a 100-byte body, send four bytes of it, then stall."""
    head = (
        "POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n"
    )
    return _raw(service, head.encode() + b'{"na', timeout=BODY_TIMEOUT_SECONDS + 10)


def test_hostile_requests_get_4xx_within_limits(service: ServiceProcess, issuer: LocalIssuer) -> None:
    """Each hostile request is refused with a 4xx within seconds, and the service stays healthy and serving."""
    token = issuer.mint(subject="hostile")
    auth = bearer(token)
    json_auth = {**auth, "content-type": "application/json"}
    item = httpx.post(f"{service.url}/api/v1/items", json={"name": "target"}, headers=auth)
    assert item.status_code == 201, item.text

    def http(method: str, path: str, **kwargs: object) -> Callable[[], tuple[int, float]]:
        def send() -> tuple[int, float]:
            started = time.monotonic()
            response = httpx.request(method, service.url + path, timeout=10.0, **kwargs)  # type: ignore[arg-type]
            return response.status_code, time.monotonic() - started

        return send

    def ten_megabytes_chunked() -> Iterator[bytes]:
        for _ in range(160):
            yield b"x" * 65536

    thousand_scopes = " ".join(f"s{n}" for n in range(1000))  # under the 16 KiB token limit
    cases: dict[str, tuple[Callable[[], tuple[int, float]], set[int]]] = {
        "huge_header": (http("GET", "/api/v1/items", headers={**auth, "x-big": "a" * 200_000}), {431}),
        "many_headers": (
            http("GET", "/api/v1/items", headers={**auth, **{f"x-h{n}": "v" for n in range(500)}}),
            {431},
        ),
        "deep_json": (
            http("POST", "/api/v1/items", content="[" * 100_000 + "]" * 100_000, headers=json_auth),
            {400, 422},
        ),
        "deep_json_field": (
            http(
                "POST",
                "/api/v1/items",
                content='{"name":' + "{" * 50_000 + "}" * 50_000 + "}",
                headers=json_auth,
            ),
            {400, 422},
        ),
        "invalid_utf8_body": (
            http("POST", "/api/v1/items", content=b'{"name":"\xff\xfe\xfd"}', headers=json_auth),
            {400, 422},
        ),
        "invalid_utf8_path": (
            lambda: _raw(
                service,
                b"GET /api/v1/items/\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + token.encode()
                + b"\r\n\r\n",
            ),
            {400, 404, 422},
        ),
        "invalid_utf8_header": (
            lambda: _raw(
                service, b"GET /api/v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
            ),
            {400, 401},
        ),
        "ten_mb_body": (http("POST", "/api/v1/items", content=b"x" * 10_000_000, headers=json_auth), {413}),
        "ten_mb_chunked": (
            http("POST", "/api/v1/items", content=ten_megabytes_chunked(), headers=json_auth),
            {413},
        ),
        "slow_upload": (lambda: _slow_upload(service, token), {408}),
        "traversal_dotdot": (http("GET", "/api/v1/items/../../../etc/passwd", headers=auth), {404}),
        "traversal_encoded": (http("GET", "/api/v1/items/..%2F..%2Fetc%2Fpasswd", headers=auth), {404, 422}),
        "traversal_patch": (
            http("PATCH", "/api/v1/items/%2e%2e%2f%2e%2e", json={"name": "x"}, headers=auth),
            {404, 422},
        ),
        "nul_in_id": (http("DELETE", "/api/v1/items/%00", headers=auth), {404, 422}),
        "sql_in_id": (http("GET", "/api/v1/items/1'%20OR%20'1'='1", headers=auth), {404, 422}),
        "thousand_scopes": (
            http("GET", "/api/v1/items", headers=bearer(issuer.mint(scopes=thousand_scopes))),
            {403},
        ),
        "thousand_roles": (
            http(
                "POST",
                "/api/v1/items",
                json={"name": "x"},
                headers=bearer(issuer.mint(scopes=None, roles=thousand_scopes.split())),
            ),
            {403},
        ),
        "token_20kb": (http("GET", "/api/v1/items", headers=bearer("a" * 20_000)), {401}),
        "token_64kb": (http("GET", "/api/v1/items", headers=bearer("a" * 65_536)), {401, 431}),
        "signed_token_64kb": (
            http("GET", "/api/v1/items", headers=bearer(issuer.mint(extra={"pad": "p" * 65_536}))),
            {401, 431},
        ),
    }
    seen: dict[str, int] = {}
    slowest = 0.0
    for name, (send, expected) in cases.items():
        status, elapsed = send()
        seen[name] = status
        limit = ANSWER_WITHIN_SECONDS + (BODY_TIMEOUT_SECONDS if name == "slow_upload" else 0.0)
        assert status in expected, (name, status)
        assert elapsed < limit, (name, elapsed)
        slowest = max(slowest, elapsed)
        alive = httpx.get(f"{service.url}/healthz", timeout=5.0)
        assert alive.status_code == 200, (name, alive.text)

    still_there = httpx.get(f"{service.url}{item.headers['location']}", headers=auth)
    assert still_there.status_code == 200, still_there.text
    assert httpx.post(f"{service.url}/api/v1/items", json={"name": "after"}, headers=auth).status_code == 201
    assert '"status": 500' not in service.logs()
    report(
        "hostile",
        requests=len(cases),
        by_status=dict(Counter(seen.values())),
        slowest_s=slowest,
        cases=",".join(f"{name}:{status}" for name, status in seen.items()),
    )


def test_body_limit_comes_from_the_environment(start_service: ServiceFactory, issuer: LocalIssuer) -> None:
    """MAX_BODY_BYTES set for the start command is the limit the service enforces (not the built-in 1 MiB)."""
    service = start_service(MAX_BODY_BYTES="2048")
    headers = {**bearer(issuer.mint()), "content-type": "application/json"}
    body = b'{"name": "x", "description": "' + b"d" * 1900 + b'"}'
    response = httpx.post(f"{service.url}/api/v1/items", content=body + b" " * 200, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "request body exceeds 2048 bytes"
