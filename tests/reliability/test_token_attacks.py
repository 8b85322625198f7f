"""Token and key-set attacks against the service under gunicorn (issue 18 items 1, 3, 4, 5): malformed
tokens, hostile identity providers, ID tokens, owner collisions and withdrawn keys. Loopback only, each
test bounded in requests and seconds."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import percentile, report
from tests.support.issuer import AUDIENCE, LocalIssuer, new_key
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.reliability

ITEMS = "/api/v1/items"
DEADLINE_SECONDS = 1.0


@pytest.fixture
def own_issuer() -> Iterator[LocalIssuer]:
    """An issuer of this test's own, which the test may turn hostile."""
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


def _claims(issuer: LocalIssuer, **overrides: object) -> bytes:
    now = int(time.time())
    claims: dict[str, object] = {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "scp": "items.read"}
    claims.update({"iat": now, "nbf": now, "exp": now + 600, **overrides})
    return json.dumps(claims).encode()


def test_malformed_tokens_are_401_without_tracebacks(
    start_service: ServiceFactory, issuer: LocalIssuer
) -> None:
    """Correctly signed tokens with an alg list/object, exp 10**400, exp/nbf as strings or booleans: every
    one a 401, no 500, no traceback, and a few hundred bytes of log per request at most."""
    service = start_service(workers=2, LOG_LEVEL="INFO")
    variants = {
        "alg_list": issuer.sign_raw(_claims(issuer), {"alg": ["RS256"]}),
        "alg_object": issuer.sign_raw(_claims(issuer), {"alg": {"RS256": 1}}),
        "exp_10e400": issuer.sign_raw(_claims(issuer, exp=10**400)),
        "exp_string": issuer.sign_raw(_claims(issuer, exp=str(int(time.time()) + 600))),
        "nbf_string": issuer.sign_raw(_claims(issuer, nbf="0")),
        "exp_bool": issuer.sign_raw(_claims(issuer, exp=True)),
    }
    rounds = 40
    log_before = len(service.logs().encode())
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    with httpx.Client(base_url=service.url, timeout=10.0) as client:
        for _ in range(rounds):
            for name, token in variants.items():
                started = time.monotonic()
                status = client.get(ITEMS, headers=bearer(token)).status_code
                latencies.append(time.monotonic() - started)
                statuses[f"{name}_{status}"] += 1
    time.sleep(0.5)  # let the access lines reach the log
    logs = service.logs()
    sent = rounds * len(variants)
    log_bytes_per_request = (len(logs.encode()) - log_before) / sent
    report(
        "token-malformed",
        requests=sent,
        by_outcome=dict(statuses),
        p99_ms=percentile(latencies, 0.99) * 1000,
        log_bytes_per_request=log_bytes_per_request,
    )
    assert statuses == Counter({f"{name}_401": rounds for name in variants}), statuses
    assert "Traceback" not in logs
    assert log_bytes_per_request < 600  # one access line each; a 500 wrote two tracebacks (~10 KB)


def test_trickling_jwks_delays_neither_start_up_nor_requests(
    start_service: ServiceFactory, own_issuer: LocalIssuer
) -> None:
    """A JWKS endpoint trickling a byte every 0.5 s for 30 s (each read inside the per-read timeout):
    workers start at once, and a request waiting for keys is answered within the fetch deadline."""
    own_issuer.trickle_seconds = 0.5
    own_issuer.trickle_bytes = 60
    started = time.monotonic()
    service = start_service(workers=2, issuer_=own_issuer, AUTH_HTTP_TIMEOUT=str(DEADLINE_SECONDS))
    start_up = time.monotonic() - started
    waits: list[float] = []
    statuses: Counter[int] = Counter()
    for _ in range(4):
        began = time.monotonic()
        statuses[
            httpx.get(f"{service.url}{ITEMS}", headers=bearer(own_issuer.mint()), timeout=20.0).status_code
        ] += 1
        waits.append(time.monotonic() - began)
        time.sleep(0.3)
    healthz = time.monotonic()
    assert httpx.get(f"{service.url}/healthz", timeout=5.0).status_code == 200
    healthz_s = time.monotonic() - healthz
    report(
        "jwks-trickle",
        start_up_s=start_up,
        slowest_request_s=max(waits),
        by_status=dict(statuses),
        healthz_s=healthz_s,
        trickle_s=own_issuer.trickle_bytes * own_issuer.trickle_seconds,
    )
    assert statuses == Counter({401: 4}), statuses
    assert start_up < 15.0, start_up  # the trickle alone lasts 30 s
    assert max(waits) < DEADLINE_SECONDS + 2.0, waits


@pytest.mark.parametrize(
    "attack", ["oversized", "cross_host_jwks_uri", "discovery_issuer_mismatch", "weak_rsa_key"]
)
def test_hostile_key_sets_are_not_trusted(start_service: ServiceFactory, attack: str, tmp_path: Path) -> None:
    """A 4 MiB key set, a jwks_uri on another host name, a discovery document naming another issuer, and a
    1024-bit RSA key: tokens that only those would verify are 401, and the service stays healthy."""
    keys = [new_key("RS256", bits=1024)] if attack == "weak_rsa_key" else None
    issuer = LocalIssuer(keys=keys) if keys else LocalIssuer()
    issuer.start()
    try:
        if attack == "oversized":
            issuer.padding_bytes = 4 * 1024 * 1024
        elif attack == "cross_host_jwks_uri":
            issuer.discovery_overrides = {"jwks_uri": issuer.jwks_url.replace("127.0.0.1", "localhost")}
        elif attack == "discovery_issuer_mismatch":
            issuer.discovery_overrides = {"issuer": "https://someone-else.example"}
        service = start_service(workers=1, issuer_=issuer, LOG_LEVEL="INFO")
        began = time.monotonic()
        status = httpx.get(f"{service.url}{ITEMS}", headers=bearer(issuer.mint()), timeout=20.0).status_code
        seconds = time.monotonic() - began
        healthy = httpx.get(f"{service.url}/healthz", timeout=5.0).status_code
        fetched = issuer.jwks_requests
    finally:
        issuer.stop()
    report(f"jwks-hostile-{attack}", status=status, seconds=seconds, healthz=healthy, jwks_fetches=fetched)
    assert status == 401
    assert healthy == 200
    if attack in ("cross_host_jwks_uri", "discovery_issuer_mismatch"):
        assert fetched == 0  # the foreign key set is never even asked for
    if attack == "weak_rsa_key":
        assert "1024 bits" in _logs_after(service)


def _logs_after(service: ServiceProcess) -> str:
    time.sleep(0.3)
    return service.logs()


def test_id_tokens_and_owner_collisions_are_refused(
    start_service: ServiceFactory, issuer: LocalIssuer
) -> None:
    """An ID token carrying every role is a 401; a token without oid whose sub is another caller's oid
    reads, changes and deletes nothing of theirs."""
    service = start_service(workers=2)
    outcomes: Counter[str] = Counter()
    with httpx.Client(base_url=service.url, timeout=10.0) as client:
        for n in range(10):
            id_token = issuer.mint(roles=["items.read", "items.write"], extra={"nonce": f"n{n}"})
            outcomes[f"id_token_{client.get(ITEMS, headers=bearer(id_token)).status_code}"] += 1
        victim = bearer(issuer.mint(subject="victim-pairwise", oid="victim-object-id"))
        attacker = bearer(issuer.mint(subject="victim-object-id"))
        urls = []
        for n in range(10):
            created = client.post(ITEMS, json={"name": f"secret-{n}"}, headers=victim)
            assert created.status_code == 201, created.text
            urls.append(created.headers["location"])
        outcomes[f"collision_list_{len(client.get(ITEMS, headers=attacker).json()['items'])}_items"] += 1
        for url in urls:
            outcomes[f"collision_get_{client.get(url, headers=attacker).status_code}"] += 1
            outcomes[
                f"collision_patch_{client.patch(url, json={'name': 'x'}, headers=attacker).status_code}"
            ] += 1
            outcomes[f"collision_delete_{client.delete(url, headers=attacker).status_code}"] += 1
        victim_items = len(client.get(ITEMS, headers=victim).json()["items"])
    report("token-identity", by_outcome=dict(outcomes), victim_items_left=victim_items)
    assert outcomes == Counter(
        {
            "id_token_401": 10,
            "collision_list_0_items": 1,
            "collision_get_404": 10,
            "collision_patch_404": 10,
            "collision_delete_404": 10,
        }
    ), outcomes
    assert victim_items == 10


def test_withdrawn_key_stops_cached_tokens_at_the_next_refresh(
    start_service: ServiceFactory, own_issuer: LocalIssuer
) -> None:
    """A token verified (and cached) before its key was withdrawn is refused once a refresh has seen the
    key gone (here triggered by the first token of the new key)."""
    service = start_service(workers=1, issuer_=own_issuer, AUTH_JWKS_REFRESH_INTERVAL="1")
    old = own_issuer.mint(subject="before-withdrawal")
    with httpx.Client(base_url=service.url, timeout=10.0) as client:
        before = [client.get(ITEMS, headers=bearer(old)).status_code for _ in range(5)]
        time.sleep(1.2)
        new = own_issuer.rotate()
        fresh = client.get(ITEMS, headers=bearer(own_issuer.mint(key=new))).status_code
        after = [client.get(ITEMS, headers=bearer(old)).status_code for _ in range(5)]
    report(
        "jwks-withdrawn-key",
        cached_before=before.count(200),
        new_key=fresh,
        old_token_after=dict(Counter(after)),
    )
    assert before == [200] * 5
    assert fresh == 200
    assert after == [401] * 5
