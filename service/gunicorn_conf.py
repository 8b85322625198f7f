"""Gunicorn settings for `service.startup.STARTUP_COMMAND`: the same locally, in tests and on App Service."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from service.config import ConfigurationError, get_settings
from service.logging import logging_config
from service.serve import settings_or_exit
from service.startup import FRONT_END_TIMEOUT_SECONDS

# A bad value exits 3 naming every bad setting (a WEB_CONCURRENCY that is not a number never gets here:
# gunicorn's import fails on it first; `python -m service.serve` checks it before gunicorn starts).
_settings = settings_or_exit()
bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
# uvicorn-worker's worker with limits enforced while a request head is parsed, a head deadline and a
# connection bound (service.worker).
worker_class = "service.worker.LimitedUvicornWorker"
# Connections one worker keeps open at once (capped by its descriptor limit); past it: 503 and close.
worker_connections = 1000

# A worker silent this long is killed and replaced; well under the front end's fixed 230 s.
timeout = 120
# SIGTERM (App Service stopping or recycling the container): requests in flight get this long to finish.
graceful_timeout = _settings.graceful_timeout
# Longer than the front end's idle keep-alive, so it never reuses a connection we just closed. This is
# also the idle timeout: a kept-alive connection silent this long after a response is closed.
keepalive = 75
# App Service terminates TLS in front of the container and sets X-Forwarded-*; nothing else reaches it.
forwarded_allow_ips = "*"
accesslog = None
# Gunicorn's control socket would sit under $HOME, which App Service shares between instances: off.
control_socket_disable = True
logconfig_dict = logging_config(_settings.log_level)

assert timeout < FRONT_END_TIMEOUT_SECONDS  # noqa: S101 - a configuration invariant, checked at import


def on_starting(server: Any) -> None:
    """In the master, before any worker: refuse bad settings once, then migrate once.

    Misconfiguration exits the whole process with a message naming each bad setting, instead of
    workers crash-looping into what would look like gunicorn worker timeouts.
    """
    from service.db.errors import DatabaseUnavailable
    from service.db.migrations import migrate_database

    try:
        settings = get_settings()
    except ConfigurationError as error:
        server.log.error("start-up refused: %s", error)
        print(f"backend-iac: start-up refused: {error}", file=sys.stderr)
        sys.exit(3)
    if not settings.uses_postgres:
        _choose_sqlite_mode(server, settings)
    try:
        applied = asyncio.run(migrate_database(settings))
        server.log.info("schema migrations applied: %s", applied or "none pending")
    except DatabaseUnavailable as error:
        if not settings.uses_postgres:
            server.log.error("start-up refused: DATABASE_URL: the SQLite database cannot be used: %s", error)
            print(f"backend-iac: start-up refused: DATABASE_URL: {error}", file=sys.stderr)
            sys.exit(3)
        server.log.warning(
            "database unreachable at start-up; workers retry and /readyz reports it: %s", error
        )


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, after the fork: start Application Insights when it is configured.

    Here and not in the master: the exporter's threads would not survive the fork. Before the app is
    imported, so `create_app` finds telemetry on and instruments itself.
    """
    from service import telemetry
    from service.config import get_settings

    telemetry.start(get_settings().applicationinsights_connection_string)


def worker_exit(server: Any, worker: Any) -> None:
    """In each worker that exits normally: push the buffered telemetry (a no-op once the app's lifespan
    did it; a SIGTERM'd uvicorn worker never gets here, so the lifespan is what flushes on shutdown)."""
    from service import telemetry

    telemetry.flush_and_stop()


def _choose_sqlite_mode(server: Any, settings: Any) -> None:
    """Log the SQLite mode once, for the whole service; on a network share run exactly one worker.

    The network-share mode holds the database's lock for the connection's life (service.db.storage):
    a second worker would wait for it and answer 503, so the master starts one worker instead.
    """
    from service.db.storage import storage_mode, worker_count

    mode = storage_mode(settings.sqlite_path, settings.sqlite_storage)
    server.log.info("%s", mode.describe())
    allowed = worker_count(server.num_workers, mode)
    if allowed != server.num_workers:
        server.log.warning(
            "WEB_CONCURRENCY=%s lowered to %s: the SQLite file is on a network share",
            server.num_workers,
            allowed,
        )
        server.num_workers = allowed
