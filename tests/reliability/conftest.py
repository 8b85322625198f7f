"""Fixtures for the reliability suites: the service under its real start command, on loopback only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.service_process import ServiceProcess
from tests.support.service_process import production_env as service_env

ServiceFactory = Callable[..., ServiceProcess]


def production_env(issuer: LocalIssuer, home: Path, **extra: str) -> dict[str, str]:
    """The settings App Service gives the service, pointed at the local issuer; `extra` overrides."""
    return service_env(issuer.url, AUDIENCE, home, **{"LOG_LEVEL": "WARNING", **extra})


@pytest.fixture
def start_service(issuer: LocalIssuer, tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start the service (production settings, local issuer); every one started is stopped afterwards."""
    started: list[ServiceProcess] = []

    def start(*, workers: int = 2, issuer_: LocalIssuer | None = None, **env: str) -> ServiceProcess:
        service = ServiceProcess(production_env(issuer_ or issuer, tmp_path, **env), workers=workers)
        started.append(service)
        return service.start(timeout=60.0)

    yield start
    for service in started:
        service.terminate(timeout=30.0)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def worker_pids(service: ServiceProcess) -> set[int]:
    """The gunicorn master's live worker processes (a changed set means a worker was replaced)."""
    assert service.process is not None
    assert service.process.poll() is None, "the gunicorn master is gone"
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}
