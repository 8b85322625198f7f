"""Graceful shutdown: SIGTERM to the gunicorn master under steady load; every accepted request completes."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.reliability

CLIENTS = 8
SLOW_UPLOADS = 4
GRACEFUL_TIMEOUT_SECONDS = 25  # gunicorn_conf's default, what App Service runs with


@dataclass
class Sent:
    request_id: str
    method: str
    name: str | None
    status: int  # 0: no response
    error: str = ""
    location: str = ""


@dataclass
class Record:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)


def _steady_client(n: int, url: str, headers: dict[str, str], record: Record, stop: threading.Event) -> None:
    """Create then read items on one keep-alive connection until the service stops answering."""
    failures_in_a_row = 0
    with httpx.Client(base_url=url, headers=headers, timeout=15.0) as client:
        for sequence in range(100_000):  # bounded; ends on `stop` or once the service is gone
            if stop.is_set() or failures_in_a_row >= 3:
                return
            request_id = f"gs-{n}-{sequence}"
            name = f"steady {n} #{sequence}"
            sent = _send(client, "POST", "/api/v1/items", request_id, name)
            record.add(sent)
            if sent.status == 201:
                record.add(_send(client, "GET", sent.location, f"{request_id}-r", None))
            failures_in_a_row = 0 if sent.status else failures_in_a_row + 1
            if not sent.status:
                time.sleep(0.05)


def _send(client: httpx.Client, method: str, path: str, request_id: str, name: str | None) -> Sent:
    try:
        response = client.request(
            method, path, json={"name": name} if name else None, headers={"x-request-id": request_id}
        )
    except httpx.HTTPError as error:
        return Sent(request_id, method, name, 0, type(error).__name__)
    return Sent(request_id, method, name, response.status_code, location=response.headers.get("location", ""))


def _slow_upload(n: int, url: str, headers: dict[str, str], record: Record) -> None:
    """One create whose body trickles in over two seconds: in flight when SIGTERM arrives."""
    request_id = f"gs-slow-{n}"
    name = f"slow upload {n}"

    def body() -> Iterator[bytes]:
        yield b'{"name": "'
        for char in name:
            time.sleep(2.0 / len(name))
            yield char.encode()
        yield b'"}'

    try:
        response = httpx.post(
            f"{url}/api/v1/items",
            content=body(),
            headers={**headers, "content-type": "application/json", "x-request-id": request_id},
            timeout=GRACEFUL_TIMEOUT_SECONDS + 5,
        )
        record.add(Sent(request_id, "POST", name, response.status_code))
    except httpx.HTTPError as error:
        record.add(Sent(request_id, "POST", name, 0, type(error).__name__))


def _stored_names(request: pytest.FixtureRequest, postgres_url: str | None, home: Path) -> set[str]:
    if postgres_url is None:
        with closing(sqlite3.connect(home / "data" / "backend-iac.sqlite3")) as db:
            return {row[0] for row in db.execute("SELECT name FROM items")}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = urlsplit(postgres_url).path.lstrip("/")
    return set(server.psql("SELECT name FROM items", database=database).splitlines())


def _access_statuses(logs: str) -> dict[str, int]:
    """request id -> status, from the service's JSON access lines: the requests the app accepted."""
    statuses = {}
    for line in logs.splitlines():
        if line.startswith("{") and '"backend_iac.access"' in line:
            entry = json.loads(line)
            if entry["request_id"].startswith("gs-"):  # ours, not the start-up health probes
                statuses[entry["request_id"]] = entry["status"]
    return statuses


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigterm_under_load_completes_every_accepted_request(
    backend: str,
    start_service: ServiceFactory,
    issuer: LocalIssuer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """After SIGTERM every request the app accepted gets its normal status, and the master exits in time."""
    postgres_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    service = start_service(**({"DATABASE_URL": postgres_url} if postgres_url else {}))
    headers = bearer(issuer.mint(subject="shutdown-load"))
    record = Record()
    stop = threading.Event()
    steady = [
        threading.Thread(target=_steady_client, args=(n, service.url, headers, record, stop), daemon=True)
        for n in range(CLIENTS)
    ]
    slow = [
        threading.Thread(target=_slow_upload, args=(n, service.url, headers, record), daemon=True)
        for n in range(SLOW_UPLOADS)
    ]
    for thread in steady:
        thread.start()
    time.sleep(1.5)
    for thread in slow:
        thread.start()
    time.sleep(0.5)  # the slow uploads are a quarter of the way through their bodies
    assert service.process is not None
    sent_before = len(record.sent)
    signalled_at = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    exit_code = service.process.wait(timeout=GRACEFUL_TIMEOUT_SECONDS + 10)
    shutdown_s = time.monotonic() - signalled_at
    stop.set()
    for thread in steady + slow:
        thread.join(timeout=20)

    accepted = _access_statuses(service.logs())
    answered = {s.request_id: s.status for s in record.sent if s.status}
    unanswered = [s for s in record.sent if not s.status]
    stored_names = _stored_names(request, postgres_url, tmp_path)
    report(
        f"shutdown-{backend}",
        sent=len(record.sent),
        sent_before_sigterm=sent_before,
        answered=dict(Counter(answered.values())),
        accepted=len(accepted),
        not_accepted=dict(Counter(s.error for s in unanswered)),
        slow_uploads=",".join(str(s.status) for s in record.sent if s.request_id.startswith("gs-slow")),
        shutdown_s=shutdown_s,
        exit_code=exit_code,
    )

    assert exit_code == 0, service.logs()[-2000:]
    assert shutdown_s < GRACEFUL_TIMEOUT_SECONDS
    lost = {rid: status for rid, status in accepted.items() if answered.get(rid) != status}
    assert lost == {}, "accepted requests without their response"
    assert all(status in (200, 201) for status in answered.values()), Counter(answered.values())
    slow_results = [s.status for s in record.sent if s.request_id.startswith("gs-slow")]
    assert slow_results == [201] * SLOW_UPLOADS, "an upload in flight at SIGTERM was cut off"
    # A write with no response must not have happened either: it never reached the app.
    unanswered_but_stored = [s.name for s in unanswered if s.name in stored_names]
    assert unanswered_but_stored == []
    answered_creates = {s.name for s in record.sent if s.method == "POST" and s.status == 201}
    assert answered_creates <= stored_names
