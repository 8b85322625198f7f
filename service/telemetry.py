"""Application Insights: requests, dependencies and logs, through Microsoft's Azure Monitor OpenTelemetry distro.

Off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set. Nothing here imports OpenTelemetry at module
level: a process without the connection string (local runs, the test suite, `make serve`) never loads
it, so it pays neither the import time nor the memory (see docs/observability.md for the figures).

Started once per gunicorn worker (`post_fork` in service.gunicorn_conf): the exporter's background
threads do not survive `fork`, so the master never starts them. Flushed on graceful shutdown by the
app's lifespan (uvicorn ends it by re-raising SIGTERM, so `worker_exit` alone would not run). What is sent:

- one request per HTTP request, named by route template (`GET /api/v1/items/{item_id}`), with status and
  duration; the URL keeps its path, never the query string (`_ScrubQueryStrings`);
- a dependency per PostgreSQL statement (psycopg instrumentation: the statement text with its
  placeholders, never the parameters) and per JWKS fetch (httpx instrumentation);
- the `backend_iac` loggers' records, as traces; the JSON lines on stdout carry trace_id and span_id.

An incoming W3C `traceparent` continues its trace (OpenTelemetry's default propagator). No header is
recorded: the instrumentations capture request headers only when told to, and they are not told to.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Final

from service.startup import TELEMETRY_CONNECTION_STRING_SETTING

if TYPE_CHECKING:
    from fastapi import FastAPI

CONNECTION_STRING_SETTING: Final = TELEMETRY_CONNECTION_STRING_SETTING
# Which loggers go to Application Insights (as traces): ours, not gunicorn's, uvicorn's or the SDKs'.
EXPORTED_LOGGER: Final = "backend_iac"
SERVICE_NAME: Final = "backend-iac"
# App Service probes this every minute on every instance: recording it would bill a request per probe.
EXCLUDED_URLS: Final = "/healthz"
# How long a worker's exit may spend pushing what is still buffered (gunicorn's graceful_timeout is 25 s).
FLUSH_TIMEOUT_MILLIS: Final = 5000

# Defaults set before the distro reads the environment; each is the distro's or SDK's documented
# variable, so an app setting of the same name wins.
_ENVIRONMENT_DEFAULTS: Final = {
    # Only App Service's detector: it reads WEBSITE_* variables. The distro's default list also has
    # azure_vm, which asks the instance metadata endpoint (169.254.169.254) over the network at start.
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
    # The SDK's own usage statistics ("statsbeat") go to a Microsoft-owned resource, not ours: off.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    # The distro's control plane (OneSettings) polls settings.sdk.monitor.azure.com hourly: off, so the
    # only outbound telemetry traffic is to our own IngestionEndpoint.
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_SERVICE_NAME": SERVICE_NAME,
}
# Instrumentations the distro would switch on that this service has no use for (it uses none of these
# libraries, or instruments them itself: FastAPI per app in instrument_app, to drop per-message spans).
_DISTRO_INSTRUMENTATIONS_OFF: Final = (
    "django",
    "fastapi",
    "flask",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)

# The exporter's transmission logger: its warnings are what an unreachable ingestion endpoint looks like.
_EXPORTER_LOGGER: Final = "azure.monitor.opentelemetry.exporter"

logger = logging.getLogger("backend_iac.telemetry")

_active = False
_get_current_span: Any = None  # opentelemetry.trace.get_current_span, once telemetry is on


def is_active() -> bool:
    """Whether this process exports telemetry."""
    return _active


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's (trace_id, span_id) in W3C hex, or None (telemetry off, or no span)."""
    if _get_current_span is None:
        return None
    context = _get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


_URL_KEYS: Final = ("http.url", "url.full", "http.target")


def _scrub_query_strings(span: Any) -> None:
    """Drop the query string from every URL attribute of `span` (a recording, not yet ended span).

    Query strings may carry credentials (a misdirected `?access_token=`), and a request is named by its
    route template anyway.
    """
    attributes = span.attributes or {}
    for key in _URL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    if attributes.get("url.query"):
        span.set_attribute("url.query", "")


def _server_request_hook(span: Any, scope: Any) -> None:
    # The ASGI middleware sets the request's attributes again after the span starts, then calls this.
    if span is not None and span.is_recording():
        _scrub_query_strings(span)


def _make_scrubber() -> Any:
    from opentelemetry.sdk.trace import Span, SpanProcessor

    class _ScrubQueryStrings(SpanProcessor):
        """Scrubs client spans (httpx, the JWKS fetch) as they start: their instrumentation sets URL
        attributes once, at the start, so on_start sees them while the span can still be changed."""

        def on_start(self, span: Span, parent_context: object = None) -> None:
            _scrub_query_strings(span)

    return _ScrubQueryStrings()


class _ExportTroubleNotice(logging.Handler):
    """Turns the exporter's stream of transmission warnings into one line per worker.

    An unreachable or refusing ingestion endpoint makes the exporter warn on every export (every few
    seconds); the service itself is unaffected (exports run on the exporter's own thread, their queue is
    bounded and drops when full). The log says so once, then stays quiet.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.said:
            return
        self.said = True
        logger.warning(
            "Application Insights export failing; requests are served as usual, telemetry is retried "
            "and dropped when its buffer is full (logged once per worker)",
            extra={"exporter_message": record.getMessage()[:300]},
        )


def start(connection_string: str | None) -> bool:
    """Configure the distro for this process when a connection string is given; return whether it did.

    Call once per process, after any fork and before the app is created (`create_app` instruments
    itself when telemetry is on).
    """
    global _active, _get_current_span
    if not connection_string or _active:
        return _active
    for name, value in _ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)

    exporter_logger = logging.getLogger(_EXPORTER_LOGGER)
    # Never through the root logger: that one is exported too, so a failing export would feed itself.
    exporter_logger.propagate = False
    exporter_logger.setLevel(logging.WARNING)
    exporter_logger.addHandler(_ExportTroubleNotice())

    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import trace
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    configure_azure_monitor(
        connection_string=connection_string,
        logger_name=EXPORTED_LOGGER,
        # Live metrics keeps a polling connection per worker and a processor on every span; performance
        # counters add two more processors and a psutil poll. App Service's own metrics cover CPU and
        # memory; what this service needs from Application Insights is requests and dependencies.
        enable_live_metrics=False,
        enable_performance_counters=False,
        instrumentation_options={name: {"enabled": False} for name in _DISTRO_INSTRUMENTATIONS_OFF},
        span_processors=[_make_scrubber()],
    )
    # psycopg 3 is not among the distro's instrumentations (it has psycopg2). Statement text only:
    # capture_parameters stays False, so no value a query binds is ever recorded.
    PsycopgInstrumentor().instrument(skip_dep_check=True)
    _get_current_span = trace.get_current_span
    _active = True
    logger.info("Application Insights telemetry on", extra={"sampler": os.environ.get("OTEL_TRACES_SAMPLER")})
    return True


def instrument_app(app: FastAPI) -> None:
    """Record every request to `app` (no-op when telemetry is off)."""
    if not _active:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", EXCLUDED_URLS),
        # One span per request, not one more per ASGI message: those would be billed as dependencies.
        exclude_spans=["receive", "send"],
        server_request_hook=_server_request_hook,
    )


def flush_and_stop(timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> None:
    """Push what is buffered and stop the exporter threads, within about `timeout_millis` per signal."""
    global _active, _get_current_span
    if not _active:
        return
    from opentelemetry import metrics, trace
    from opentelemetry._logs import get_logger_provider

    for provider in (trace.get_tracer_provider(), get_logger_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            try:
                force_flush(timeout_millis)
            except Exception:  # a failing flush must not turn a clean exit into a crash
                logger.warning("telemetry flush failed", exc_info=True)
        shutdown = getattr(provider, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # as above
                logger.warning("telemetry shutdown failed", exc_info=True)
    _active = False
    _get_current_span = None
