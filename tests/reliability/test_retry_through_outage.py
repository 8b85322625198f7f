"""Retries through an outage: writers retry every failed or timed-out create with the same Idempotency-Key
while the path to PostgreSQL resets connections mid-request and while PostgreSQL stops and restarts.
Every key must end with exactly one stored item: none lost, none duplicated."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer
from tests.support.postgres import PostgresServer
from tests.support.tcp_proxy import FreezableProxy

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

WRITERS = 4
MAX_KEYS_PER_WRITER = 400  # bounded; writers take new keys until the faults are over
STATEMENT_TIMEOUT_SECONDS = 2.0
CLIENT_TIMEOUT_SECONDS = 3.0  # short enough that some creates time out on the client and are retried
ATTEMPTS_PER_KEY = 60  # bounded: a key still unacknowledged after this many tries counts as lost
RESET_EVERY = 4  # every fourth answer from PostgreSQL is dropped and its connection reset
OUTAGE_SECONDS = 3.0


@dataclass
class Ledger:
    acknowledged: dict[str, set[str]] = field(default_factory=dict)  # key -> item ids answered with 201
    attempts: Counter[str] = field(default_factory=Counter)  # outcome -> count
    unfinished: list[str] = field(default_factory=list)
    # Keys whose 201 came back for an item created by an earlier attempt (one whose answer was lost):
    # the hard case, where a retry without the key would have stored a duplicate.
    replayed: set[str] = field(default_factory=set)
    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _create_until_acknowledged(client: httpx.Client, key: str, ledger: Ledger) -> None:
    """Send the create, and send it again (same key, same body) after anything but a 201."""
    for _ in range(ATTEMPTS_PER_KEY):
        sent_at = datetime.now(UTC)
        try:
            response = client.post("/api/v1/items", json={"name": key}, headers={"Idempotency-Key": key})
            outcome = str(response.status_code)
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.HTTPError:
            outcome = "no-response"
        with ledger.lock:
            ledger.attempts[outcome] += 1
            if outcome == "201":
                body = response.json()
                ledger.acknowledged.setdefault(key, set()).add(body["id"])
                if datetime.fromisoformat(body["created_at"]) < sent_at:
                    ledger.replayed.add(key)
        if outcome == "201":
            return
        if outcome not in {"409", "503", "timeout", "no-response"}:
            break  # anything else is a bug the assertions report
        time.sleep(0.1)  # a client backing off a little before the retry
    with ledger.lock:
        ledger.unfinished.append(key)


def _writer(n: int, url: str, headers: dict[str, str], ledger: Ledger, stop: threading.Event) -> None:
    """Take a new key after each acknowledged create, through every fault, until the faults are over."""
    with httpx.Client(base_url=url, headers=headers, timeout=CLIENT_TIMEOUT_SECONDS) as client:
        for index in range(MAX_KEYS_PER_WRITER):
            if stop.is_set():
                return
            key = f"w{n}-k{index}"
            with ledger.lock:
                ledger.keys.append(key)
            _create_until_acknowledged(client, key, ledger)


def test_retried_creates_end_with_exactly_one_item_per_key(
    start_service: ServiceFactory,
    postgres_server: PostgresServer,
    postgres_proxy: FreezableProxy,
    postgres_url: str,
    issuer: LocalIssuer,
) -> None:
    """Through connection resets and a database restart, each key is acknowledged and stored exactly once."""
    service = start_service(
        DATABASE_URL=postgres_proxy.url(postgres_url),
        DATABASE_STATEMENT_TIMEOUT=str(STATEMENT_TIMEOUT_SECONDS),
        DATABASE_POOL_TIMEOUT="2",
        DATABASE_CONNECT_TIMEOUT="2",
    )
    headers = bearer(issuer.mint(subject="retrying-writer", ttl=600))
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(n, service.url, headers, ledger, stop), daemon=True)
        for n in range(WRITERS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        with postgres_proxy.resetting(every=RESET_EVERY):
            time.sleep(1.5)
        # Then the worst case: the commit happened, its answer is lost, the service cannot know.
        with postgres_proxy.resetting(every=2, containing=b"COMMIT\0"):
            time.sleep(1.5)
        postgres_server.stop("immediate")
        time.sleep(OUTAGE_SECONDS)
        postgres_server.start()
        time.sleep(1.0)  # writes after the restart, on the same processes
    finally:
        stop.set()
        if not postgres_server.is_running():
            postgres_server.start()
        for thread in threads:
            thread.join(timeout=60)
    seconds = time.monotonic() - started

    database = urlsplit(postgres_url).path.lstrip("/")
    stored = postgres_server.psql("SELECT name || ' ' || id FROM items", database=database).splitlines()
    stored_by_key: dict[str, list[str]] = {}
    for line in stored:
        name, item_id = line.split(" ")
        stored_by_key.setdefault(name, []).append(item_id)
    keys = list(ledger.keys)
    duplicates = sum(len(ids) - 1 for ids in stored_by_key.values() if len(ids) > 1)
    lost = [key for key in keys if key not in stored_by_key]
    answered_twice_differently = [key for key, ids in ledger.acknowledged.items() if len(ids) > 1]
    mismatched = [key for key, ids in ledger.acknowledged.items() if ids != set(stored_by_key.get(key, []))]
    report(
        "retry-outage",
        keys=len(keys),
        attempts=sum(ledger.attempts.values()),
        retries=sum(ledger.attempts.values()) - len(keys),
        by_outcome=dict(ledger.attempts),
        resets=postgres_proxy.resets,
        replayed=len(ledger.replayed),
        stored=len(stored),
        duplicates=duplicates,
        lost=len(lost),
        unacknowledged=len(ledger.unfinished),
        seconds=seconds,
    )

    assert not any(thread.is_alive() for thread in threads), "a writer did not finish"
    assert ledger.unfinished == [], ledger.unfinished
    assert set(ledger.attempts) <= {"201", "409", "503", "timeout", "no-response"}, ledger.attempts
    assert postgres_proxy.resets > 0, "the relay reset no connection: the suite tested nothing"
    assert ledger.attempts["503"] > 0, "no create failed: the outage did not reach the service"
    assert duplicates == 0
    assert lost == []
    assert answered_twice_differently == []
    assert mismatched == []
    assert len(stored) == len(keys)
