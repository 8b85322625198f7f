"""JSON logs on stdout, one object per line: App Service's log stream reads stdout.

In development on a terminal the same records print as short human-readable lines instead; LOG_FORMAT
(`json`, `text`, or `auto`, the default) forces one or the other.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from typing import Any, Final, Literal

from pythonjsonlogger.json import JsonFormatter

from service.redaction import RedactSecretsFilter
from service.request_context import current_request_id
from service.telemetry import current_trace_ids

LogFormat = Literal["json", "text"]
LOG_FORMATS: Final = ("auto", "json", "text")

# LogRecord's own attributes: what is left over on a record are the `extra` fields worth printing.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        # uvicorn attaches a copy of its message with ANSI colour codes for its own console formatter;
        # in a JSON line (or a log file) those escapes are noise.
        record.__dict__.pop("color_message", None)
        # With Application Insights on, the line names its trace, so a log line leads to its request.
        if (ids := current_trace_ids()) is not None:
            record.trace_id, record.span_id = ids
        return True


def chosen_log_format(
    environ: dict[str, str] | None = None, *, stdout_is_terminal: bool | None = None
) -> LogFormat:
    """JSON unless LOG_FORMAT=text, or LOG_FORMAT is auto/unset in development on a terminal."""
    env = os.environ if environ is None else environ
    wanted = env.get("LOG_FORMAT", "auto").strip().lower()
    if wanted in ("json", "text"):
        return "json" if wanted == "json" else "text"
    terminal = sys.stdout.isatty() if stdout_is_terminal is None else stdout_is_terminal
    development = env.get("APP_ENV", "").strip().lower() == "development"
    return "text" if development and terminal else "json"


class _ConsoleFormatter(logging.Formatter):
    """`10:55:01 INFO    backend_iac: message key=value ...`: for a person reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(
            f"{key}={value}" for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES
        )
        line = f"{time} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def render_access_line(line: dict[str, Any], log_format: LogFormat) -> str:
    """The access line (written without `logging`, see service.middleware) in the chosen format."""
    if log_format == "json":
        return json.dumps(line) + "\n"
    time = str(line.get("time", ""))[11:19]
    return (
        f"{time} {line.get('level', 'INFO'):<7} {line.get('method')} {line.get('path')} {line.get('status')} "
        f"{line.get('duration_ms')} ms  request_id={line.get('request_id')}\n"
    )


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601 in UTC
    )


def logging_config(level: str = "INFO", log_format: LogFormat | None = None) -> dict[str, Any]:
    """A dictConfig for the service and for gunicorn's own loggers (gunicorn's `logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # Every line passes the redaction filter: no handler writes a database password, whatever logs it.
        "filters": {"request_id": {"()": _RequestIdFilter}, "redact": {"()": RedactSecretsFilter}},
        "formatters": {"json": {"()": json_formatter}, "text": {"()": _ConsoleFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": log_format or chosen_log_format(),
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            # Our middleware writes the access line (with the request id); uvicorn's would duplicate it.
            "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
            "uvicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
            "uvicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "httpx": {"level": "WARNING"},
            "azure": {"level": "WARNING"},
            "psycopg.pool": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Configure logging for a process that gunicorn did not configure (tests, scripts)."""
    import logging.config

    logging.config.dictConfig(logging_config(level))
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
