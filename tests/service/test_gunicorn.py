"""The service under its real start command (gunicorn + uvicorn workers), over HTTP on loopback."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.db.schema import MIGRATIONS
from service.startup import STARTUP_COMMAND
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import PostgresServer
from tests.support.service_process import ServiceProcess, production_env

pytestmark = pytest.mark.slow

LAUNCHER = f"{sys.executable} -m service.serve"


def _production_env(issuer: LocalIssuer, home: Path, **extra: str) -> dict[str, str]:
    return production_env(issuer.url, AUDIENCE, home, **extra)


def test_serves_the_api_on_the_embedded_sqlite_default(issuer: LocalIssuer, tmp_path: Path) -> None:
    """Production mode with no DATABASE_URL: SQLite under $HOME/data, items created and read over HTTP."""
    env = _production_env(issuer, tmp_path, APP_COMMIT_SHA="abc1234")
    with ServiceProcess(env) as service:
        headers = {"Authorization": f"Bearer {issuer.mint()}"}
        created = httpx.post(f"{service.url}/api/v1/items", json={"name": "over http"}, headers=headers)
        assert created.status_code == 201, created.text
        read = httpx.get(service.url + created.headers["location"], headers=headers)
        assert read.json()["name"] == "over http"
        assert httpx.get(f"{service.url}/readyz").status_code == 200
        assert httpx.get(f"{service.url}/version").json()["commit"] == "abc1234"
    assert (tmp_path / "data" / "backend-iac.sqlite3").exists()


def test_logs_are_json_access_lines_without_tokens(issuer: LocalIssuer, tmp_path: Path) -> None:
    """Every request writes one JSON access line with its request id; the token never appears."""
    token = issuer.mint()
    with ServiceProcess(_production_env(issuer, tmp_path)) as service:
        httpx.get(
            f"{service.url}/api/v1/items?x=1",
            headers={"Authorization": f"Bearer {token}", "x-request-id": "r-42"},
        )
        time.sleep(0.3)
        logs = service.logs()
    assert token not in logs
    assert token.split(".")[2] not in logs
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    access = [record for record in records if record.get("logger") == "backend_iac.access"]
    line = next(record for record in access if record.get("request_id") == "r-42")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/items", 200)
    assert isinstance(line["duration_ms"], float | int)
    non_json = [line for line in logs.splitlines() if line.strip() and not line.startswith("{")]
    assert non_json == [], non_json


def test_misconfiguration_stops_start_up_with_every_setting_named(tmp_path: Path) -> None:
    """Production without auth settings exits non-zero at once, naming each setting; no worker boots."""
    service = ServiceProcess({"APP_ENV": "production", "HOME": str(tmp_path), "DATABASE_POOL_SIZE": "lots"})
    service.start(wait=False)
    assert service.process is not None
    code = service.process.wait(timeout=20)
    logs = service.logs()
    assert code != 0
    for name in ("AUTH_ISSUER", "AUTH_AUDIENCE", "DATABASE_POOL_SIZE"):
        assert name in logs, logs
    assert "Booting worker" not in logs


def test_bad_gunicorn_settings_are_named_with_the_others_not_a_traceback(tmp_path: Path) -> None:
    """WEB_CONCURRENCY, PORT, GRACEFUL_TIMEOUT and LOG_LEVEL are validated with every other setting: one
    start-up error (exit 3) naming each, no traceback, no worker. (A WEB_CONCURRENCY that is not a number
    at all fails inside gunicorn's own import, before any config of ours runs: `python -m service.serve`,
    next test, is what catches it.)"""
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WEB_CONCURRENCY": "0",
        "PORT": "99999",
        "GRACEFUL_TIMEOUT": "-5",
        "LOG_LEVEL": "chatty",
        "DATABASE_POOL_SIZE": "lots",
    }
    service = ServiceProcess(env)
    service.start(wait=False)
    assert service.process is not None
    code = service.process.wait(timeout=20)
    logs = service.logs()
    assert code == 3, logs
    assert "start-up refused: invalid configuration" in logs
    for name in ("WEB_CONCURRENCY", "PORT", "GRACEFUL_TIMEOUT", "LOG_LEVEL", "DATABASE_POOL_SIZE"):
        assert name in logs, logs
    assert "Traceback" not in logs
    assert "Booting worker" not in logs


def test_the_launcher_names_a_worker_count_gunicorn_would_crash_on(tmp_path: Path) -> None:
    """`python -m service.serve` (what `make serve` runs) checks every setting before gunicorn is
    imported: WEB_CONCURRENCY=two is named with the others (exit 3), not gunicorn's int() traceback."""
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WEB_CONCURRENCY": "two",
        "PORT": "eighty",
        "GRACEFUL_TIMEOUT": "soon",
    }
    service = ServiceProcess(env, command=LAUNCHER)
    service.start(wait=False)
    assert service.process is not None
    code = service.process.wait(timeout=20)
    logs = service.logs()
    assert code == 3, logs
    assert logs.startswith("backend-iac: start-up refused: invalid configuration"), logs
    for name in ("WEB_CONCURRENCY", "PORT", "GRACEFUL_TIMEOUT"):
        assert name in logs, logs
    assert "Traceback" not in logs


def test_the_launcher_becomes_the_start_command_when_the_settings_are_good(tmp_path: Path) -> None:
    """With good settings the launcher replaces itself with STARTUP_COMMAND: the process it started is
    gunicorn's master (same pid), and the service answers."""
    env = {"APP_ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    with ServiceProcess(env, command=LAUNCHER, workers=1) as service:
        assert httpx.get(f"{service.url}/healthz").status_code == 200
        assert service.process is not None
        raw = Path(f"/proc/{service.process.pid}/cmdline").read_bytes()
    # [interpreter, .../bin/gunicorn, --config, ..., service.main:app]: the script's shebang runs python.
    words = [word.decode() for word in raw.split(b"\0") if word]
    expected = shlex.split(STARTUP_COMMAND)
    assert Path(words[1]).name == expected[0], words
    assert words[2:] == expected[1:], words


@pytest.mark.postgres
def test_workers_share_postgres_and_migrate_once(
    issuer: LocalIssuer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Four workers start against a fresh Postgres database; the schema is applied once, items flow."""
    url = postgres_server.create_database("gunicorn_workers")
    with ServiceProcess(_production_env(issuer, tmp_path, DATABASE_URL=url), workers=4) as service:
        headers = {"Authorization": f"Bearer {issuer.mint()}"}
        with httpx.Client(base_url=service.url, headers=headers) as client:
            statuses = [client.post("/api/v1/items", json={"name": f"i{i}"}).status_code for i in range(20)]
            assert statuses == [201] * 20
            assert client.get("/readyz").status_code == 200
    # One ledger row per migration: each applied once, however many workers raced to apply it.
    applied = postgres_server.psql("SELECT count(*) FROM schema_migrations", database="gunicorn_workers")
    assert applied == str(len(MIGRATIONS))
    assert postgres_server.psql("SELECT count(*) FROM items", database="gunicorn_workers") == "20"


def test_sigterm_stops_gracefully(issuer: LocalIssuer, tmp_path: Path) -> None:
    """SIGTERM to the master (App Service stopping the container) exits cleanly and promptly."""
    service = ServiceProcess(_production_env(issuer, tmp_path)).start()
    started = time.monotonic()
    code = service.terminate()
    assert code == 0, service.logs()[-2000:]
    assert time.monotonic() - started < 10
