"""Database outage: PostgreSQL stops hard mid-load and returns; the service degrades to fast 503s, recovers by
itself, and loses no acknowledged write."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer, worker_pids
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer
from tests.support.postgres import PostgresServer
from tests.support.tcp_proxy import FreezableProxy

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

OUTAGE_SECONDS = 5.0
WRITERS = 2
SLOWEST_ALLOWED_SECONDS = 5.0
READY_WITHIN_SECONDS = 10.0


@dataclass
class Outcome:
    started: float
    elapsed: float
    status: int  # 0: no HTTP response (connection error or client timeout)
    method: str
    kind: str = ""
    item_id: str | None = None


@dataclass
class Timeline:
    requests: list[Outcome] = field(default_factory=list)
    healthz: list[tuple[float, int]] = field(default_factory=list)
    readyz: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request(client: httpx.Client, method: str, path: str, body: object = None) -> Outcome:
    started = time.monotonic()
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as error:
        return Outcome(started, time.monotonic() - started, 0, method, type(error).__name__)
    outcome = Outcome(started, time.monotonic() - started, response.status_code, method)
    if response.status_code == 201:
        outcome.item_id = response.json()["id"]
    elif response.status_code >= 400:
        is_problem = response.headers["content-type"].startswith("application/problem+json")
        outcome.kind = response.json().get("dependency", "?") if is_problem else "not-a-problem-document"
    return outcome


def _write_until(
    stop: threading.Event, url: str, headers: dict[str, str], timeline: Timeline, n: int
) -> None:
    """Create an item, then read the newest page back, until told to stop."""
    with httpx.Client(base_url=url, headers=headers, timeout=SLOWEST_ALLOWED_SECONDS + 5) as client:
        for sequence in range(100_000):  # bounded; the test sets `stop` long before
            if stop.is_set():
                return
            write = _request(client, "POST", "/api/v1/items", {"name": f"writer {n} #{sequence}"})
            read = _request(client, "GET", "/api/v1/items?limit=5")
            with timeline.lock:
                timeline.requests.extend((write, read))
            if write.status != 201:
                time.sleep(0.05)  # a client backing off a little, as a real one would


def _probe_until(stop: threading.Event, url: str, timeline: Timeline) -> None:
    with httpx.Client(base_url=url, timeout=SLOWEST_ALLOWED_SECONDS + 5) as client:
        for _ in range(10_000):
            if stop.is_set():
                return
            for path, samples in (("/healthz", timeline.healthz), ("/readyz", timeline.readyz)):
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                samples.append((time.monotonic(), status))
            time.sleep(0.1)


def test_database_outage_degrades_to_503_and_loses_no_acknowledged_write(
    start_service: ServiceFactory, postgres_server: PostgresServer, postgres_url: str, issuer: LocalIssuer
) -> None:
    """Healthz stays 200, items answer 503 fast during the outage, readyz recovers within 10 s, no 201 is lost."""
    service = start_service(DATABASE_URL=postgres_url)
    headers = bearer(issuer.mint(subject="outage-writer"))
    assert httpx.get(f"{service.url}/readyz").status_code == 200
    workers_before = worker_pids(service)

    timeline = Timeline()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_write_until, args=(stop, service.url, headers, timeline, n), daemon=True)
        for n in range(WRITERS)
    ]
    threads.append(threading.Thread(target=_probe_until, args=(stop, service.url, timeline), daemon=True))
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        down_at = time.monotonic()
        postgres_server.stop("immediate")
        stopped_at = time.monotonic()
        # One request of our own at once, so the outage surely has a request that started after the stop.
        with httpx.Client(base_url=service.url, headers=headers, timeout=SLOWEST_ALLOWED_SECONDS + 5) as own:
            first = _request(own, "POST", "/api/v1/items", {"name": "during the outage"})
        with timeline.lock:
            timeline.requests.append(first)
        time.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.monotonic()))
        restarting_at = time.monotonic()
        postgres_server.start()
        back_at = time.monotonic()
        deadline = back_at + READY_WITHIN_SECONDS + 5
        while time.monotonic() < deadline:
            if any(t > back_at and status == 200 for t, status in list(timeline.readyz)):
                break
            time.sleep(0.1)
        time.sleep(2.0)  # writes after recovery, on the same processes
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        if not postgres_server.is_running():
            postgres_server.start()

    database = urlsplit(postgres_url).path.lstrip("/")
    stored = set(postgres_server.psql("SELECT id FROM items", database=database).split())
    acknowledged = {w.item_id for w in timeline.requests if w.item_id}
    statuses = Counter(f"{w.method}_{w.status}" for w in timeline.requests)
    during = [w for w in timeline.requests if stopped_at <= w.started < back_at]
    after = [w for w in timeline.requests if w.started >= back_at and w.status == 201]
    ready_again = min((t for t, status in timeline.readyz if t > back_at and status == 200), default=None)
    recovery_s = (min(w.started + w.elapsed for w in after) - back_at) if after else float("inf")
    slowest = max(w.elapsed for w in timeline.requests)
    report(
        "outage",
        sent=len(timeline.requests),
        by_status=dict(statuses),
        errors=dict(Counter(w.kind for w in timeline.requests if w.status >= 400 or not w.status)),
        acknowledged=len(acknowledged),
        stored=len(stored),
        lost=len(acknowledged - stored),
        outage_s=back_at - down_at,
        ready_after_s=(ready_again - back_at) if ready_again else -1.0,
        recovery_s=recovery_s,
        slowest_s=slowest,
        healthz_ok=f"{sum(s == 200 for _, s in timeline.healthz)}/{len(timeline.healthz)}",
    )

    assert acknowledged - stored == set(), "acknowledged writes lost"
    assert set(statuses) <= {"POST_201", "POST_503", "GET_200", "GET_503"}, statuses
    assert all(w.kind == "database" for w in timeline.requests if w.status == 503)
    assert slowest < SLOWEST_ALLOWED_SECONDS, slowest
    assert during, "no write was attempted while the database was down"
    # Started once the server was down and answered before it began to come back: all 503.
    inside = [w.status for w in during if w.started + w.elapsed < restarting_at]
    assert first.status == 503, first
    assert set(inside) == {503}, Counter(inside)
    assert all(status == 200 for _, status in timeline.healthz), Counter(s for _, s in timeline.healthz)
    assert any(stopped_at < t < back_at and status == 503 for t, status in timeline.readyz)
    assert ready_again is not None, "readyz never 200 after the database returned"
    assert ready_again - back_at < READY_WITHIN_SECONDS
    assert after, "no write succeeded after the database returned"
    assert worker_pids(service) == workers_before, "the service restarted a worker to recover"


FROZEN_STATEMENT_TIMEOUT_SECONDS = 2.0


def test_frozen_database_answers_503_within_the_statement_timeout(
    start_service: ServiceFactory,
    postgres_server: PostgresServer,
    postgres_proxy: FreezableProxy,
    postgres_url: str,
    issuer: LocalIssuer,
) -> None:
    """A database that stops answering but keeps its connections open (frozen: the relay in front of it holds
    every byte) costs a request at most DATABASE_STATEMENT_TIMEOUT and a 503, never a hung request; the
    service recovers when it thaws."""
    service = start_service(
        DATABASE_URL=postgres_proxy.url(postgres_url),
        DATABASE_STATEMENT_TIMEOUT=str(FROZEN_STATEMENT_TIMEOUT_SECONDS),
    )
    headers = bearer(issuer.mint(subject="frozen-writer"))
    with httpx.Client(base_url=service.url, headers=headers, timeout=30.0) as client:
        warm = [client.post("/api/v1/items", json={"name": f"before {n}"}) for n in range(10)]
        acknowledged = {response.json()["id"] for response in warm if response.status_code == 201}
        assert len(acknowledged) == len(warm)

        with postgres_proxy.frozen():
            time.sleep(1.5)  # pooled connections now idle long enough to be checked (and hang) first
            calls = [("POST", "/api/v1/items", {"name": "frozen"}), ("GET", "/api/v1/items", None)] * 3
            calls.append(("GET", "/readyz", None))
            with ThreadPoolExecutor(max_workers=len(calls)) as pool:
                outcomes = list(pool.map(lambda call: _request(client, *call), calls))
            alive = client.get("/healthz").status_code
        thawed_at = time.monotonic()
        after = None
        for _ in range(100):  # bounded: ten seconds at most
            after = _request(client, "POST", "/api/v1/items", {"name": "after"})
            if after.status == 201 or time.monotonic() - thawed_at > 10:
                break
            time.sleep(0.1)
    assert after is not None
    if after.item_id:
        acknowledged.add(after.item_id)
    database = urlsplit(postgres_url).path.lstrip("/")
    stored = set(postgres_server.psql("SELECT id FROM items", database=database).split())
    slowest = max(outcome.elapsed for outcome in outcomes)
    report(
        "frozen-db",
        sent=len(outcomes),
        by_status=dict(Counter(f"{o.method}_{o.status}" for o in outcomes)),
        slowest_s=slowest,
        deadline_s=FROZEN_STATEMENT_TIMEOUT_SECONDS,
        recovery_s=time.monotonic() - thawed_at,
        acknowledged=len(acknowledged),
        lost=len(acknowledged - stored),
    )
    assert [o.status for o in outcomes] == [503] * len(outcomes), outcomes
    assert all(o.kind == "database" for o in outcomes)
    assert slowest < FROZEN_STATEMENT_TIMEOUT_SECONDS + 1.0
    assert alive == 200
    assert after.status == 201, after
    assert acknowledged <= stored
