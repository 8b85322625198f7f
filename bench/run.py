"""`make bench`: the service under its production command, driven by wrk on loopback, beside a bare app.

Prints requests/s, p50/p99 latency and errors for /healthz, an authenticated item read on SQLite and the
same on PostgreSQL, each as a ratio to the bare FastAPI app measured in the same run, plus worker RSS.
The PostgreSQL read is also compared with what a user would write by hand (bench/bare_postgres_app.py: a
bare FastAPI app reading the same row through psycopg's async pool, same server, same run).
Targets (issue 19): /healthz >= 0.85x bare; authenticated SQLite read >= 0.45x bare; authenticated
PostgreSQL read >= 0.8x the bare psycopg app; zero errors; worker RSS < 100 MiB.
The cost of observing (issue 13): the PostgreSQL read again with Application Insights on, every request
sampled and exported to a loopback ingestion sink, beside the same read with telemetry off, in the same
run; target >= 0.85x of telemetry off. `--telemetry-only` runs just that pair.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ingestion_sink import IngestionSink
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import PostgresServer
from tests.support.service_process import ServiceProcess, production_env

# Telemetry on as deployed: the distro's default sampler (rate-limited, 5 traces a second per process).
TELEMETRY_ON = "service GET item (Postgres, telemetry on)"
# Every request recorded and exported: what a sampling ratio of 1.0 costs (informational, no target).
TELEMETRY_ALL = "service GET item (Postgres, telemetry, all sampled)"
FULL_SAMPLING = {"OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage", "OTEL_TRACES_SAMPLER_ARG": "1.0"}
TELEMETRY_TARGET = 0.85  # issue 13: within 15% of telemetry off
BARE_COMMAND = "gunicorn --config python:service.gunicorn_conf bench.bare_app:app"
BARE_POSTGRES_COMMAND = "gunicorn --config python:service.gunicorn_conf bench.bare_postgres_app:app"
HEALTHZ = "service /healthz"
SQLITE_READ = "service GET item (SQLite, auth)"
POSTGRES_READ = "service GET item (Postgres, auth)"
BARE_POSTGRES_READ = "bare psycopg GET item (Postgres)"
# Issue 19: each measured against its reference in the same run.
TARGETS = {HEALTHZ: 0.85, SQLITE_READ: 0.45}
POSTGRES_TARGET = 0.8
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self, baseline: WrkResult | None) -> str:
        ratio = (
            f"{self.requests_per_second / baseline.requests_per_second:5.2f}x bare"
            if baseline
            else "  baseline"
        )
        return (
            f"{self.name:<34} {self.requests_per_second:9.0f} req/s  {ratio}  p50 {self.p50_ms:7.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  requests {self.requests:7d}  errors {self.errors}"
        )


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not match:
        msg = f"cannot read wrk latency {value!r}"
        raise ValueError(msg)
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    name: str, url: str, *, seconds: int, connections: int, headers: dict[str, str] | None = None
) -> WrkResult:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    output = subprocess.run(
        [*command, url], check=True, capture_output=True, text=True, timeout=seconds + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_2xx.group(1))
    if socket := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(part) for part in socket.groups())
    return WrkResult(name, rps, p50, p99, requests, errors)


def worker_rss_mib(service: ServiceProcess) -> list[float]:
    assert service.process is not None
    master = service.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            sizes.append(int(match.group(1)) / 1024)
    return sizes


def _create_item(service: ServiceProcess, token: str) -> str:
    response = httpx.post(
        f"{service.url}/api/v1/items", json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    return str(response.headers["location"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (App Service B1 has 1 vCPU)")
    parser.add_argument(
        "--telemetry-only",
        action="store_true",
        help="only the PostgreSQL read with telemetry off and on (the cost of observing)",
    )
    parser.add_argument(
        "--no-telemetry",
        action="store_true",
        help="skip the telemetry pair (the request-path targets only, for quicker iterations)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: run `make bench` (it installs Debian's wrk package)", file=sys.stderr)
        return 2

    issuer = LocalIssuer().start()
    token = issuer.mint(ttl=3600)
    auth = {"Authorization": f"Bearer {token}"}
    home = Path(tempfile.mkdtemp(prefix="backend-iac-bench-"))
    env = production_env(issuer.url, AUDIENCE, home)
    postgres = PostgresServer()
    results: list[WrkResult] = []
    rss: dict[str, list[float]] = {}
    try:
        postgres.init()
        postgres.start()
        postgres_url = postgres.create_database("bench")

        print(
            f"wrk: {args.connections} connections, {args.seconds} s per run, {args.workers} workers, loopback"
        )

        def measure(name: str, url: str, headers: dict[str, str] | None = None) -> WrkResult:
            return run_wrk(name, url, seconds=args.seconds, connections=args.connections, headers=headers)

        baseline: WrkResult | None = None
        if not args.telemetry_only:
            with ServiceProcess(env, command=BARE_COMMAND, workers=args.workers) as bare:
                run_wrk("warm-up", f"{bare.url}/healthz", seconds=2, connections=args.connections)
                baseline = measure("bare FastAPI /healthz", f"{bare.url}/healthz")
                rss["bare"] = worker_rss_mib(bare)

            with ServiceProcess(env, workers=args.workers) as service:
                item = _create_item(service, token)
                run_wrk("warm-up", f"{service.url}/healthz", seconds=2, connections=args.connections)
                results.append(measure(HEALTHZ, f"{service.url}/healthz"))
                results.append(measure(SQLITE_READ, service.url + item, auth))
                rss["service on SQLite"] = worker_rss_mib(service)

        with ServiceProcess({**env, "DATABASE_URL": postgres_url}, workers=args.workers) as service:
            item = _create_item(service, token)
            run_wrk("warm-up", service.url + item, seconds=2, connections=args.connections, headers=auth)
            results.append(measure(POSTGRES_READ, service.url + item, auth))
            rss["service on Postgres"] = worker_rss_mib(service)

        # The same row, the same server, read by the app a user would write (no token: it checks none).
        bare_env = {**env, "DATABASE_URL": postgres_url}
        with ServiceProcess(bare_env, command=BARE_POSTGRES_COMMAND, workers=args.workers) as bare:
            run_wrk("warm-up", bare.url + item, seconds=2, connections=args.connections)
            postgres_baseline = measure(BARE_POSTGRES_READ, bare.url + item)
            rss["bare psycopg"] = worker_rss_mib(bare)

        exported = 0
        if not args.no_telemetry:
            with IngestionSink() as sink:
                for name, sampler in ((TELEMETRY_ON, {}), (TELEMETRY_ALL, FULL_SAMPLING)):
                    observed_env = {
                        **env,
                        "DATABASE_URL": postgres_url,
                        "APPLICATIONINSIGHTS_CONNECTION_STRING": sink.connection_string,
                        "TMPDIR": str(home),
                        **sampler,
                    }
                    with ServiceProcess(observed_env, workers=args.workers) as service:
                        item = _create_item(service, token)
                        run_wrk(
                            "warm-up",
                            service.url + item,
                            seconds=2,
                            connections=args.connections,
                            headers=auth,
                        )
                        results.append(measure(name, service.url + item, auth))
                        rss[name.removeprefix("service GET item ")] = worker_rss_mib(service)
                exported = len(sink.envelopes("RequestData"))
    finally:
        postgres.destroy()
        issuer.stop()
        shutil.rmtree(home, ignore_errors=True)

    if baseline is not None:
        print(baseline.line(None))
    print(postgres_baseline.line(None))
    for result in results:
        print(result.line(baseline))
    by_name = {result.name: result for result in results}
    postgres_read = by_name[POSTGRES_READ]
    postgres_ratio = postgres_read.requests_per_second / postgres_baseline.requests_per_second
    print(
        f"{POSTGRES_READ}: {postgres_ratio:.2f}x the bare psycopg app (req/s), "
        f"p50 {postgres_read.p50_ms:.2f} vs {postgres_baseline.p50_ms:.2f} ms, "
        f"p99 {postgres_read.p99_ms:.2f} vs {postgres_baseline.p99_ms:.2f} ms"
    )
    for name, sizes in rss.items():
        print(f"worker RSS {name:<22} " + ", ".join(f"{size:.1f} MiB" for size in sizes))
    failures = []
    if not args.no_telemetry:
        telemetry_off, telemetry_on = by_name[POSTGRES_READ], by_name[TELEMETRY_ON]
        observed_ratio = telemetry_on.requests_per_second / telemetry_off.requests_per_second
        for name in (TELEMETRY_ON, TELEMETRY_ALL):
            on = by_name[name]
            print(
                f"cost of observing, {name.removeprefix('service GET item (Postgres, ').rstrip(')')}: "
                f"{on.requests_per_second / telemetry_off.requests_per_second:.2f}x of telemetry off (req/s), "
                f"p50 {on.p50_ms:.2f} vs {telemetry_off.p50_ms:.2f} ms, "
                f"p99 {on.p99_ms:.2f} vs {telemetry_off.p99_ms:.2f} ms"
            )
        print(f"{exported} requests reached the ingestion sink")
        if observed_ratio < TELEMETRY_TARGET:
            failures.append(f"telemetry on: {observed_ratio:.2f}x of off < {TELEMETRY_TARGET}x")
        if exported == 0:
            failures.append("telemetry on: no request reached the ingestion sink")

    if baseline is not None:
        failures += [
            f"{result.name}: {result.requests_per_second / baseline.requests_per_second:.2f}x < "
            f"{TARGETS[result.name]}x bare"
            for result in results
            if result.name in TARGETS
            and result.requests_per_second / baseline.requests_per_second < TARGETS[result.name]
        ]
    if postgres_ratio < POSTGRES_TARGET:
        failures.append(f"{POSTGRES_READ}: {postgres_ratio:.2f}x < {POSTGRES_TARGET}x the bare psycopg app")
    failures += [
        f"{result.name}: {result.errors} errors"
        for result in [*([baseline] if baseline else []), postgres_baseline, *results]
        if result.errors
    ]
    failures += [
        f"worker RSS {name}: {max(sizes):.1f} MiB >= 100"
        for name, sizes in rss.items()
        # Issue 2's budget is the service's own; the distro's share with telemetry on is printed above.
        if max(sizes) >= 100 and "telemetry" not in name
    ]
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
