"""Connection-level attacks on the real start command: oversized heads, slow and silent connections, floods.

One service (one worker, so its memory and descriptors are one process's) serves every test here. Each
attack is measured: the worker's resident memory (from /proc) while it runs, and how long a fresh
`/healthz` request takes meanwhile.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.worker import MAX_HEAD_BYTES
from tests.reliability.conftest import production_env, worker_pids
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.reliability

HEADER_TIMEOUT_SECONDS = 1.5
KEEP_ALIVE_SECONDS = 1
MAX_CONNECTIONS = 40
# What an attacker offers per attack; today's code (before the limits) buffered all of it.
ATTACK_BYTES = 48 * 1024 * 1024
# A worker's memory may grow by this much under a head attack: a few reads past the limit, not the attack.
RSS_GROWTH_LIMIT_BYTES = 12 * 1024 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def service(issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One worker, short head and keep-alive timeouts, a small connection bound: each attack in seconds."""
    env = production_env(
        issuer,
        tmp_path_factory.mktemp("limits-home"),
        REQUEST_HEADER_TIMEOUT=str(HEADER_TIMEOUT_SECONDS),
        GUNICORN_CMD_ARGS=f"--keep-alive {KEEP_ALIVE_SECONDS} --worker-connections {MAX_CONNECTIONS}",
    )
    process = ServiceProcess(env, workers=1).start(timeout=60.0)
    yield process
    process.terminate(timeout=30.0)


def _worker(service: ServiceProcess) -> int:
    (pid,) = worker_pids(service)
    return pid


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RssPeak:
    """Samples a process's resident memory every 10 ms on a thread; `.peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = _rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def _healthz(service: ServiceProcess) -> tuple[int, float]:
    """A fresh connection's /healthz: its status (0 if it failed) and seconds taken."""
    started = time.monotonic()
    try:
        status = httpx.get(f"{service.url}/healthz", timeout=5.0).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic() - started


def _status_of(head: bytes) -> int:
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _flood_head(service: ServiceProcess, first: bytes, filler: bytes) -> tuple[int, int, tuple[int, float]]:
    """Send `first`, then `filler` over and over (up to ATTACK_BYTES) until the server answers or stops
    reading. Returns the status it answered (0 if none), the bytes it took, and a /healthz taken halfway."""
    sent = 0
    response = b""
    health: tuple[int, float] = (0, 0.0)
    with socket.create_connection(("127.0.0.1", service.port), timeout=10.0) as sock:
        sock.sendall(first)
        sent = len(first)
        while sent < ATTACK_BYTES:
            readable, writable, _ = select.select([sock], [sock], [], 5.0)
            if readable:
                with contextlib.suppress(OSError):
                    response = sock.recv(65536)
                break
            if not writable:
                break  # the server stopped reading and has not answered
            try:
                sent += sock.send(filler)
            except OSError:
                break
            if not health[0] and sent >= 4 * MIB:
                health = _healthz(service)
        if not response:
            with contextlib.suppress(OSError):
                sock.settimeout(HEADER_TIMEOUT_SECONDS + 3)
                response = sock.recv(65536)
    if not health[0]:
        health = _healthz(service)
    return _status_of(response), sent, health


@pytest.mark.parametrize(
    ("attack", "first", "filler"),
    [
        # Many headers, each small: the count and the size both run out long before the attack does.
        ("many_headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"x-h: v\r\n" * 8192),
        # One header whose value never ends.
        ("one_huge_header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ", b"a" * 65536),
        # A request line (URL) that never ends.
        ("huge_url", b"GET /healthz?", b"q" * 65536),
    ],
)
def test_an_oversized_head_is_refused_while_it_arrives(
    service: ServiceProcess, attack: str, first: bytes, filler: bytes
) -> None:
    """A head past the limit gets 431 and its connection closed once the limit is passed, not after the
    whole head is in: the worker's memory grows by a few reads, not by the attack, and /healthz answers."""
    pid = _worker(service)
    with RssPeak(pid) as rss:
        status, sent, (health_status, health_seconds) = _flood_head(service, first, filler)
    report(
        f"limits-{attack}",
        status=status,
        offered_mib=ATTACK_BYTES // MIB,
        taken_kib=sent // 1024,
        rss_before_mib=rss.baseline / MIB,
        rss_peak_mib=rss.peak / MIB,
        healthz_status=health_status,
        healthz_s=health_seconds,
    )
    assert status == 431, (attack, status, sent)
    # Taken before the refusal: the limit plus what the sockets' buffers held, far from the attack.
    assert sent < MAX_HEAD_BYTES + 8 * MIB, sent
    assert rss.growth < RSS_GROWTH_LIMIT_BYTES, rss.growth
    assert health_status == 200
    assert health_seconds < 2.0
    assert _worker(service) == pid, "the worker was replaced"


def test_too_many_small_headers_get_431(service: ServiceProcess) -> None:
    """One field past MAX_HEADER_FIELDS, all tiny: 431 from the worker, before the app runs."""
    from service.config import MAX_HEADER_FIELDS

    headers = "".join(f"x-h{n}: v\r\n" for n in range(MAX_HEADER_FIELDS + 1))
    with socket.create_connection(("127.0.0.1", service.port), timeout=5.0) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        assert _status_of(sock.recv(65536)) == 431


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes, float]:
    """Read until the server closes the connection or `seconds` pass: (closed, what it said, elapsed)."""
    started = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return True, received, time.monotonic() - started
        if not chunk:
            return True, received, time.monotonic() - started
        received += chunk
    return False, received, time.monotonic() - started


def test_slow_silent_and_idle_connections_are_closed(service: ServiceProcess) -> None:
    """A head trickled a byte at a time gets 408 at the head deadline; a connection that sends nothing is
    closed at the same deadline; a kept-alive connection idle after a response is closed at keep-alive."""
    slack = 2.5
    with (
        socket.create_connection(("127.0.0.1", service.port), timeout=5.0) as silent,
        socket.create_connection(("127.0.0.1", service.port), timeout=5.0) as trickle,
        socket.create_connection(("127.0.0.1", service.port), timeout=5.0) as idle,
    ):
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status_of(idle.recv(65536)) == 200
        started = time.monotonic()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-slow: "
        trickled = 0
        trickle_status = 0
        while time.monotonic() - started < HEADER_TIMEOUT_SECONDS + slack:
            try:
                trickle.sendall(head[trickled : trickled + 1] or b"a")
            except OSError:
                break
            trickled += 1
            readable, _, _ = select.select([trickle], [], [], 0.1)
            if readable:
                with contextlib.suppress(OSError):
                    trickle_status = _status_of(trickle.recv(65536))
                break
        trickle_seconds = time.monotonic() - started
        silent_closed, silent_said, silent_seconds = _closed_within(silent, HEADER_TIMEOUT_SECONDS + slack)
        idle_closed, _, _ = _closed_within(idle, KEEP_ALIVE_SECONDS + slack)
        health_status, health_seconds = _healthz(service)
    report(
        "limits-slow",
        header_timeout_s=HEADER_TIMEOUT_SECONDS,
        trickle_status=trickle_status,
        trickle_s=trickle_seconds,
        silent_closed_s=silent_seconds + trickle_seconds,
        idle_closed=idle_closed,
        healthz_status=health_status,
        healthz_s=health_seconds,
    )
    assert trickle_status == 408
    assert trickle_seconds < HEADER_TIMEOUT_SECONDS + slack
    assert silent_closed
    assert silent_said == b""
    assert idle_closed
    assert health_status == 200


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def test_a_connection_flood_gets_503_past_the_bound_and_drains(service: ServiceProcess) -> None:
    """Connections past the per-worker bound are answered 503 and closed at once (their descriptors
    released); the silent ones under the bound are closed at the head deadline, and /healthz is 200 again."""
    pid = _worker(service)
    fds_before = _open_fds(pid)
    flood = 2 * MAX_CONNECTIONS
    sockets: list[socket.socket] = []
    refused = 0
    try:
        for _ in range(flood):
            sockets.append(socket.create_connection(("127.0.0.1", service.port), timeout=5.0))
        time.sleep(0.6)  # the refused ones linger 0.25 s; the others wait for the head deadline
        for sock in sockets:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                with contextlib.suppress(OSError):
                    refused += _status_of(sock.recv(65536)) == 503
        fds_during = _open_fds(pid)
        health_during = _healthz(service)
        time.sleep(HEADER_TIMEOUT_SECONDS + 0.5)
        health_after = _healthz(service)
        drained = sum(_closed_within(sock, 0.2)[0] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    report(
        "limits-flood",
        bound=MAX_CONNECTIONS,
        opened=flood,
        refused_503=refused,
        fds_before=fds_before,
        fds_during=fds_during,
        healthz_during=f"{health_during[0]}:{health_during[1]:.3f}s",
        healthz_after=f"{health_after[0]}:{health_after[1]:.3f}s",
        closed_by_server=drained,
    )
    assert refused >= flood - MAX_CONNECTIONS, refused
    assert fds_during <= fds_before + MAX_CONNECTIONS + 5, fds_during
    assert health_during[0] == 503, health_during
    assert health_during[1] < 2.0, health_during
    assert health_after[0] == 200, health_after
    assert drained == flood


def test_responses_over_http_carry_no_banner_and_the_security_headers(service: ServiceProcess) -> None:
    """Under the real start command: no `server` header, nosniff and HSTS (production), HEAD /healthz 200,
    and the worker's own refusals are problem documents with the same headers."""
    for method in ("GET", "HEAD"):
        response = httpx.request(method, f"{service.url}/healthz", timeout=5.0)
        assert response.status_code == 200, (method, response.text)
        assert "server" not in response.headers, method
        assert response.headers["x-content-type-options"] == "nosniff", method
        assert response.headers["strict-transport-security"].startswith("max-age="), method
    with socket.create_connection(("127.0.0.1", service.port), timeout=5.0) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n")
        refused = sock.recv(65536)
    assert _status_of(refused) == 400
    assert b"content-type: application/problem+json" in refused
    assert b"x-content-type-options: nosniff" in refused
    assert b"server:" not in refused.lower()
