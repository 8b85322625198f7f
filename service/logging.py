"""JSON logs on stdout, one object per line: App Service's log stream reads stdout."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from service.request_context import current_request_id
from service.telemetry import current_trace_ids


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        # With Application Insights on, the line names its trace, so a log line leads to its request.
        if (ids := current_trace_ids()) is not None:
            record.trace_id, record.span_id = ids
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601 in UTC
    )


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for the service and for gunicorn's own loggers (gunicorn's `logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": _RequestIdFilter}},
        "formatters": {"json": {"()": json_formatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["request_id"],
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
