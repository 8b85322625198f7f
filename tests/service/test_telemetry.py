"""Application Insights: the service under gunicorn exporting to a loopback ingestion sink (issue 13).

The sink (tests/support/ingestion_sink.py) speaks the exporter's protocol: the Azure Monitor exporter
POSTs its envelopes to `{IngestionEndpoint}/v2.1/track`, and the connection string points it here.
The export interval is shortened with the OpenTelemetry SDK's documented OTEL_BSP_SCHEDULE_DELAY and
OTEL_BLRP_SCHEDULE_DELAY, so every wait below is a few seconds at most.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import ConfigurationError, load_settings
from tests.support.ingestion_sink import Envelope, IngestionSink, base_data
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import APP_PASSWORD, PostgresServer, free_port
from tests.support.service_process import REPO_ROOT, ServiceProcess, production_env

pytestmark = pytest.mark.slow

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
QUERY_SECRET = "query-secret-4711"


def _telemetry_env(issuer: LocalIssuer, home: Path, connection_string: str, **extra: str) -> dict[str, str]:
    return production_env(
        issuer.url,
        AUDIENCE,
        home,
        APPLICATIONINSIGHTS_CONNECTION_STRING=connection_string,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        # Every request, not the distro's default of 5 traces a second: the assertions count them.
        OTEL_TRACES_SAMPLER="microsoft.fixed_percentage",
        OTEL_TRACES_SAMPLER_ARG="1.0",
        # The exporter's retry files live under the temp dir: keep them in the test's own.
        TMPDIR=str(home),
        **extra,
    )


def _of(envelopes: list[Envelope], base_type: str) -> list[dict[str, Any]]:
    return [
        base_data(e) | {"_tags": e.get("tags", {})} for e in envelopes if e["data"]["baseType"] == base_type
    ]


@contextmanager
def _started(service: ServiceProcess) -> Iterator[ServiceProcess]:
    """Start (a worker that loads the distro boots slower on a loaded machine), always terminate."""
    try:
        yield service.start(timeout=60)
    finally:
        service.terminate()


@pytest.fixture
def sink() -> Iterator[IngestionSink]:
    with IngestionSink() as started:
        yield started


@pytest.mark.postgres
def test_requests_and_dependencies_arrive_named_by_route_with_the_callers_trace(
    issuer: LocalIssuer, postgres_server: PostgresServer, sink: IngestionSink, tmp_path: Path
) -> None:
    """Requests by route template with status; PostgreSQL and JWKS dependencies; traceparent continued."""
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    env = _telemetry_env(issuer, tmp_path, sink.connection_string, DATABASE_URL=url)
    token = issuer.mint()
    headers = {"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT}
    with _started(ServiceProcess(env, workers=1)) as service:
        created = httpx.post(f"{service.url}/api/v1/items", json={"name": "traced"}, headers=headers)
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        read = httpx.get(f"{service.url}{location}?access_token={QUERY_SECRET}", headers=headers)
        assert read.status_code == 200, read.text
        missing = httpx.get(f"{service.url}/api/v1/items/{uuid.uuid4()}", headers=headers)
        assert missing.status_code == 404, missing.text
        assert httpx.get(f"{service.url}/api/v1/items").status_code == 401

        expected = {
            ("POST /api/v1/items", "201"),
            ("GET /api/v1/items/{item_id}", "200"),
            ("GET /api/v1/items/{item_id}", "404"),
            ("GET /api/v1/items", "401"),
        }
        envelopes = sink.wait_for(
            lambda found: (
                expected <= {(r["name"], r["responseCode"]) for r in _of(found, "RequestData")}
                and any(d.get("type") == "postgresql" for d in _of(found, "RemoteDependencyData"))
            )
        )
        logs = service.logs()

    requests = _of(envelopes, "RequestData")
    by_code = {(r["name"], r["responseCode"]) for r in requests}
    assert ("GET /api/v1/items/{item_id}", "200") in by_code, by_code
    assert ("GET /api/v1/items/{item_id}", "404") in by_code, by_code
    assert ("POST /api/v1/items", "201") in by_code, by_code
    assert ("GET /api/v1/items", "401") in by_code, by_code
    # One request each: FastAPI's native telemetry defers to the instrumentation, nothing is doubled.
    assert sum(r["name"] == "POST /api/v1/items" for r in requests) == 1, requests
    item_id = location.rsplit("/", 1)[1]
    assert not any(item_id in r["name"] for r in requests), "a request is named by its raw id"
    read_request = next(r for r in requests if r["responseCode"] == "200")
    assert read_request["_tags"]["ai.operation.id"] == TRACE_ID
    assert read_request["_tags"]["ai.operation.parentId"] == PARENT_SPAN_ID
    assert read_request["url"].endswith(location), read_request["url"]
    assert read_request["duration"].startswith("0.00:00:"), read_request["duration"]
    assert not any(r["name"] in ("GET /healthz",) for r in requests), "health probes are billed as requests"

    dependencies = _of(envelopes, "RemoteDependencyData")
    database = [d for d in dependencies if d.get("type") == "postgresql"]
    # The read's own statement, inside the caller's trace, parented by a span of this service.
    in_trace = [d for d in database if d["_tags"].get("ai.operation.id") == TRACE_ID]
    assert in_trace, database
    assert any("SELECT" in d.get("data", "").upper() for d in in_trace), in_trace
    jwks = [
        d
        for d in dependencies
        if d.get("type") == "HTTP" and issuer.jwks_url.endswith(d["name"].split(" ")[-1])
    ]
    assert jwks, dependencies
    assert jwks[0]["resultCode"] == "200", jwks

    everything = b"".join(sink.raw_bodies()).decode()
    for secret in (token, token.split(".")[2], "Bearer", QUERY_SECRET, "access_token", APP_PASSWORD):
        assert secret not in everything, f"{secret[:12]}... reached Application Insights"

    # The JSON access line of the traced read carries the same trace id.
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    access = [
        line for line in lines if line.get("logger") == "backend_iac.access" and line.get("status") == 200
    ]
    traced = [line for line in access if line["path"] == location]
    assert traced, access
    assert traced[0]["trace_id"] == TRACE_ID, traced
    assert len(traced[0]["span_id"]) == 16, traced


def test_the_service_serves_and_says_so_once_when_the_sink_is_down(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    """Nothing listens at the ingestion endpoint: every request still succeeds; one log line per worker."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    connection_string = f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={nowhere}/"
    env = _telemetry_env(issuer, tmp_path, connection_string)
    headers = {"Authorization": f"Bearer {issuer.mint()}"}
    notice = "Application Insights export failing"
    with _started(ServiceProcess(env, workers=1)) as service:
        statuses = []
        for index in range(20):
            created = httpx.post(f"{service.url}/api/v1/items", json={"name": f"n{index}"}, headers=headers)
            statuses.append(created.status_code)
        assert statuses == [201] * 20
        # Bounded wait for the exporter's first failed export (its retries included).
        deadline = 30.0
        waited = 0.0
        while notice not in service.logs() and waited < deadline:
            subprocess.run(["sleep", "0.25"], check=True)
            waited += 0.25
        for _ in range(5):
            assert httpx.get(f"{service.url}/api/v1/items", headers=headers).status_code == 200
        # A few more export rounds fail after the first notice; none of them logs again.
        subprocess.run(["sleep", "2"], check=True)
        logs = service.logs()
    assert logs.count(notice) == 1, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]


def test_what_is_buffered_is_sent_when_the_service_stops(
    issuer: LocalIssuer, sink: IngestionSink, tmp_path: Path
) -> None:
    """A minute-long export interval, one request, SIGTERM: the request still reaches the sink."""
    env = _telemetry_env(issuer, tmp_path, sink.connection_string)
    env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"
    service = ServiceProcess(env, workers=1)
    with _started(service):
        response = httpx.get(
            f"{service.url}/api/v1/items", headers={"Authorization": f"Bearer {issuer.mint()}"}
        )
        assert response.status_code == 200, response.text
    # Terminated (gracefully) on leaving the block: the worker's exit flushed the batch.
    envelopes = sink.wait_for(
        lambda found: any(r["name"] == "GET /api/v1/items" for r in _of(found, "RequestData")), timeout=10
    )
    assert [r["responseCode"] for r in _of(envelopes, "RequestData") if r["name"] == "GET /api/v1/items"] == [
        "200"
    ]
    assert service.process is not None
    assert service.process.returncode == 0, service.logs()[-2000:]


def test_without_a_connection_string_the_distro_is_never_imported() -> None:
    """Local runs and the test suite pay nothing: the app and the worker hooks load no SDK, exporter or
    instrumentation (FastAPI itself imports the small OpenTelemetry API for its native telemetry)."""
    code = (
        "import sys\n"
        "import service.gunicorn_conf as conf\n"
        "conf.post_fork(None, None)\n"
        "import service.main\n"
        "conf.worker_exit(None, None)\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'azure.monitor', 'psutil')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": str(Path(sys.executable).parent), "APP_ENV": "development", "HOME": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (
            {"applicationinsights_connection_string": "IngestionEndpoint=https://x/"},
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
        ),
        (
            {
                "applicationinsights_connection_string": f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint=http://example.com/"
            },
            "APPLICATIONINSIGHTS_CONNECTION_STRING: IngestionEndpoint must be an https:// URL",
        ),
        ({"otel_traces_sampler": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        (
            {"otel_traces_sampler": "microsoft.fixed_percentage", "otel_traces_sampler_arg": 5},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        ({"otel_traces_sampler_arg": -1}, "OTEL_TRACES_SAMPLER_ARG"),
    ],
)
def test_bad_telemetry_settings_refuse_start_up_naming_the_setting(
    overrides: dict[str, object], named: str
) -> None:
    """A connection string without a key, a plain-HTTP endpoint or a bad sampler: start-up refused."""
    with pytest.raises(ConfigurationError, match=named):
        load_settings(**overrides)


def test_good_telemetry_settings_are_accepted() -> None:
    """The connection string Azure shows (with its extra keys) and a documented sampler pass."""
    settings = load_settings(
        applicationinsights_connection_string=(
            f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
            "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=abc"
        ),
        otel_traces_sampler="microsoft.rate_limited",
        otel_traces_sampler_arg=20,
    )
    assert settings.otel_traces_sampler_arg == 20
