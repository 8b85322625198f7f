"""How log lines print: JSON for App Service's log stream, readable text for a person at a terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from service.config import ConfigurationError, load_settings
from service.logging import chosen_log_format
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.service_process import ServiceProcess, production_env


@pytest.mark.parametrize(
    ("environ", "terminal", "expected"),
    [
        ({"APP_ENV": "development"}, True, "text"),
        ({"APP_ENV": "development"}, False, "json"),
        ({"APP_ENV": "production"}, True, "json"),
        ({}, True, "json"),
        ({"APP_ENV": "development", "LOG_FORMAT": "json"}, True, "json"),
        ({"APP_ENV": "production", "LOG_FORMAT": "text"}, False, "text"),
        ({"APP_ENV": "development", "LOG_FORMAT": "auto"}, True, "text"),
    ],
)
def test_the_format_is_json_unless_a_person_is_reading(
    environ: dict[str, str], terminal: bool, expected: str
) -> None:
    """Text only in development on a terminal, or when LOG_FORMAT says so; JSON everywhere else."""
    assert chosen_log_format(environ, stdout_is_terminal=terminal) == expected


def test_an_unknown_log_format_is_refused_at_start_up_by_name() -> None:
    """LOG_FORMAT=yaml is a start-up error naming LOG_FORMAT."""
    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        load_settings(log_format="yaml")


@pytest.mark.slow
def test_json_lines_carry_no_ansi_escapes(issuer: LocalIssuer, tmp_path: Path) -> None:
    """uvicorn's colour copy of its messages (`color_message`) never reaches the JSON log stream."""
    with ServiceProcess(production_env(issuer.url, AUDIENCE, tmp_path), workers=1) as service:
        httpx.get(f"{service.url}/healthz")
        time.sleep(0.3)
        logs = service.logs()
    assert "Started server process" in logs or "Application startup complete" in logs, logs[-2000:]
    assert "\x1b[" not in logs
    assert "color_message" not in logs
    for line in logs.splitlines():
        if line.startswith("{"):
            json.loads(line)


@pytest.mark.slow
def test_text_lines_are_readable_and_carry_the_access_line(tmp_path: Path) -> None:
    """With LOG_FORMAT=text (what a terminal gets in development), no JSON: `GET /healthz 200 ... ms`."""
    env = {
        "APP_ENV": "development",
        "LOG_FORMAT": "text",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    with ServiceProcess(env, workers=1) as service:
        httpx.get(f"{service.url}/healthz")
        time.sleep(0.3)
        logs = service.logs()
    lines = [line for line in logs.splitlines() if line.strip()]
    assert not any(line.startswith("{") for line in lines), logs[-2000:]
    assert any(" GET /healthz 200 " in line and " ms " in line for line in lines), logs[-2000:]
    assert "\x1b[" not in logs
