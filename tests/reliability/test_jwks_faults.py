"""JWKS faults: the identity provider goes away, rotates its keys, or is flooded by way of made-up key ids."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import percentile, report
from tests.support.issuer import LocalIssuer, SigningKey, new_key

pytestmark = pytest.mark.reliability

REFRESH_INTERVAL_SECONDS = 2.0


@pytest.fixture
def fresh_issuer() -> Iterator[LocalIssuer]:
    """An issuer of this test's own: its key set and request counter are not shared."""
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


def _wait_for_start_up_fetches(issuer: LocalIssuer, *, workers: int) -> None:
    """Each worker fetches the key set as it starts; /healthz answering only means one of them is up."""
    deadline = time.monotonic() + 20.0
    while issuer.jwks_requests < workers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert issuer.jwks_requests >= workers, "a worker never fetched the key set at start-up"


def _get(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/v1/items", headers=bearer(token), timeout=10.0).status_code


def test_cached_keys_keep_working_when_the_issuer_goes_away(
    start_service: ServiceFactory, fresh_issuer: LocalIssuer
) -> None:
    """With the JWKS endpoint failing, then gone, tokens signed with known keys still verify; unknown ones are 401."""
    service = start_service(
        workers=2, issuer_=fresh_issuer, AUTH_JWKS_REFRESH_INTERVAL=str(REFRESH_INTERVAL_SECONDS)
    )
    _wait_for_start_up_fetches(fresh_issuer, workers=2)
    assert _get(service.url, fresh_issuer.mint(subject="before")) == 200
    stranger = new_key("ES256")
    statuses: Counter[str] = Counter()
    slowest = 0.0
    for phase in ("unavailable", "gone"):
        if phase == "unavailable":
            fresh_issuer.available = False  # discovery and JWKS answer 503
        else:
            fresh_issuer.stop()  # connection refused
        for round_ in range(3):
            for key in fresh_issuer.keys:  # both the RSA and the EC key, each a new token
                started = time.monotonic()
                status = _get(service.url, fresh_issuer.mint(subject=f"{phase}-{round_}", key=key))
                slowest = max(slowest, time.monotonic() - started)
                statuses[f"known_{status}"] += 1
                assert status == 200, (phase, key.kid)
            started = time.monotonic()
            unknown = _get(service.url, fresh_issuer.mint(key=stranger))
            slowest = max(slowest, time.monotonic() - started)
            statuses[f"unknown_{unknown}"] += 1
            assert unknown == 401
            time.sleep(REFRESH_INTERVAL_SECONDS / 2)  # let refreshes be attempted (and fail) in between
    assert httpx.get(f"{service.url}/healthz").status_code == 200
    report("jwks-outage", requests=sum(statuses.values()), by_outcome=dict(statuses), slowest_s=slowest)
    assert slowest < 5.0


def test_rotated_key_is_accepted_after_one_refresh(
    start_service: ServiceFactory, fresh_issuer: LocalIssuer
) -> None:
    """After a key rollover the new kid verifies on its first use (one JWKS fetch); the retired key is refused."""
    service = start_service(
        workers=1, issuer_=fresh_issuer, AUTH_JWKS_REFRESH_INTERVAL=str(REFRESH_INTERVAL_SECONDS)
    )
    _wait_for_start_up_fetches(fresh_issuer, workers=1)
    retired = fresh_issuer.keys[0]
    assert _get(service.url, fresh_issuer.mint(subject="before")) == 200
    time.sleep(REFRESH_INTERVAL_SECONDS + 0.2)  # the start-up fetch is older than the interval now
    fetches_before = fresh_issuer.jwks_requests
    new = fresh_issuer.rotate()
    statuses = [_get(service.url, fresh_issuer.mint(subject=f"after-{n}", key=new)) for n in range(20)]
    fetches = fresh_issuer.jwks_requests - fetches_before
    refused = _get(service.url, fresh_issuer.mint(subject="retired", key=retired))
    report(
        "jwks-rotation",
        requests=len(statuses) + 1,
        new_key_200=statuses.count(200),
        jwks_fetches=fresh_issuer.jwks_requests - fetches_before,
        retired_key=refused,
    )
    assert statuses == [200] * len(statuses)
    assert fetches == 1
    assert refused == 401


def test_unknown_kid_flood_keeps_jwks_fetches_rate_limited(
    start_service: ServiceFactory, fresh_issuer: LocalIssuer
) -> None:
    """A flood of tokens with made-up kids is all 401, costs at most one JWKS fetch per interval per worker,
    and valid callers keep being served meanwhile."""
    workers = 2
    service = start_service(
        workers=workers, issuer_=fresh_issuer, AUTH_JWKS_REFRESH_INTERVAL=str(REFRESH_INTERVAL_SECONDS)
    )
    _wait_for_start_up_fetches(fresh_issuer, workers=workers)
    stranger = new_key("ES256")
    valid = fresh_issuer.mint(subject="legit")
    fetches_before = fresh_issuer.jwks_requests
    duration = 6.0
    deadline = time.monotonic() + duration

    def flood(n: int) -> tuple[Counter[int], list[float]]:
        statuses: Counter[int] = Counter()
        legit_latency: list[float] = []
        with httpx.Client(base_url=service.url, timeout=10.0) as client:
            for sequence in range(5_000):  # bounded; the deadline ends it first
                if time.monotonic() > deadline:
                    break
                made_up = SigningKey(
                    kid=f"bogus-{uuid.uuid4().hex}", private=stranger.private, algorithm="ES256"
                )
                token = fresh_issuer.mint(key=made_up)
                statuses[client.get("/api/v1/items", headers=bearer(token)).status_code] += 1
                if sequence % 10 == 0:
                    started = time.monotonic()
                    legit = client.get("/api/v1/items", headers=bearer(valid)).status_code
                    legit_latency.append(time.monotonic() - started)
                    statuses[1000 + legit] += 1  # 1200: a valid caller served during the flood
        return statuses, legit_latency

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(flood, range(8)))
    statuses = sum((counts for counts, _ in results), Counter())
    legit_latency = [seconds for _, latencies in results for seconds in latencies]
    fetches = fresh_issuer.jwks_requests - fetches_before
    allowed = workers * (math.ceil(duration / REFRESH_INTERVAL_SECONDS) + 1)
    report(
        "jwks-flood",
        unknown_kid_sent=sum(n for status, n in statuses.items() if status < 1000),
        unknown_kid_401=statuses[401],
        legit_200=statuses[1200],
        legit_p99_ms=percentile(legit_latency, 0.99) * 1000,
        jwks_fetches=fetches,
        fetches_allowed=allowed,
    )
    assert set(statuses) <= {401, 1200}, statuses
    assert fetches <= allowed
