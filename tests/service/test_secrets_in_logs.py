"""No database password in any log line or start-up error, whatever DATABASE_URL holds."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from service.config import ConfigurationError, load_settings
from service.logging import json_formatter
from service.redaction import RedactSecretsFilter, redact
from tests.support.service_process import ServiceProcess

PASSWORD = "Sup3rSecret-xyz"
MALFORMED_URLS = {
    "percent_token": f"postgresql://app:{PASSWORD}%zz@127.0.0.1:5432/db",
    "space": f"postgresql://app:{PASSWORD} x@127.0.0.1:5432/db",
    "unclosed_ipv6": f"postgresql://app:{PASSWORD}@[::1/db",
    "bad_port": f"postgresql://app:{PASSWORD}@127.0.0.1:notaport/db",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["percent_token", "space"])
def test_a_malformed_database_url_stops_start_up_without_its_password(tmp_path: Path, case: str) -> None:
    """Under the real start command: exit non-zero at once, naming DATABASE_URL; the password is in no
    line of the output (libpq quotes the part it cannot parse, which was the password)."""
    env = {
        "APP_ENV": "production",
        "AUTH_ISSUER": "https://login.example/tenant/v2.0",
        "AUTH_AUDIENCE": "api://backend-iac",
        "HOME": str(tmp_path),
        "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": MALFORMED_URLS[case],
    }
    service = ServiceProcess(env, workers=1)
    service.start(wait=False)
    assert service.process is not None
    code = service.process.wait(timeout=30)
    logs = service.logs()
    assert code != 0, logs
    assert "DATABASE_URL" in logs, logs
    assert PASSWORD not in logs, logs
    assert "Booting worker" not in logs


@pytest.mark.parametrize("case", sorted(MALFORMED_URLS))
def test_settings_name_database_url_and_never_its_password(case: str) -> None:
    """Each malformed URL is a ConfigurationError naming DATABASE_URL; the message holds no password."""
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as caught:
        load_settings(database_url=MALFORMED_URLS[case])
    assert PASSWORD not in str(caught.value)


def test_settings_repr_hides_the_database_url() -> None:
    settings = load_settings(database_url=f"postgresql://app:{PASSWORD}@127.0.0.1:5432/db")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)


@pytest.mark.parametrize(
    "text",
    [
        f"error connecting: postgresql://app:{PASSWORD}@db.example:5432/db failed",
        f"connection string host=db port=5432 password={PASSWORD} dbname=x",
        f"connection string host=db password='{PASSWORD} with space' dbname=x",
        f"postgres://app:{PASSWORD}@with@at@db/db",
        f"https://example/?password={PASSWORD}&x=1",
    ],
)
def test_redact_masks_passwords_in_every_form(text: str) -> None:
    assert PASSWORD not in redact(text)


def test_every_log_line_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the service's handler filter: the password the process was given is masked in messages,
    their arguments and tracebacks, even where it stands alone (as libpq quotes it)."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{PASSWORD}@127.0.0.1:5432/db")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("error connecting in %r: %s", "pool", f'invalid percent-encoded token: "{PASSWORD}"')
        try:
            raise ValueError(f"cannot use {PASSWORD}")  # noqa: TRY301 - the traceback is what is tested
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert PASSWORD not in output, output
    assert "invalid percent-encoded token" in output
    assert "ValueError" in output
