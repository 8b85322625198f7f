"""`backend-iac verify`: the runtime gate. Green only when the expected commit is serving and ready.

Each attempt walks the layers in order, /healthz (is anything of ours answering?), /version (is it the
new code?), /readyz (can it reach its database?), and stops at the first that fails. Attempts repeat with
backoff until the deadline (no attempt starts after it; each request may take REQUEST_TIMEOUT_SECONDS);
the last observation is the diagnosis, and its exit code names the layer:

    0  verified      the expected commit serves /version and /readyz is 200
    3  unreachable   DNS, TLS, connection, or an HTTP status that is not the app (403 stopped, 404 no app)
    4  start-up      the front end answers but the app does not (502/503/504 without our JSON, an
                     "Application Error" page, the platform's default page): the container is starting
                     or crashed while starting
    5  old commit    the app answers with another commit: the deploy was not picked up or the restart
                     is still pending
    6  not ready     the new commit runs but /readyz is 503; the problem document names the dependency

(1 is left to Python itself for an unexpected crash, 2 to argparse for a usage error.)
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from service.startup import HEALTH_PATH

INITIAL_DELAY_SECONDS: Final = 1.0
MAX_DELAY_SECONDS: Final = 15.0
BACKOFF_FACTOR: Final = 1.6
REQUEST_TIMEOUT_SECONDS: Final = 10.0


class Outcome(IntEnum):
    VERIFIED = 0
    UNREACHABLE = 3
    START_UP_ERROR = 4
    OLD_COMMIT = 5
    NOT_READY = 6


LABELS: Final = {
    Outcome.VERIFIED: "verified",
    Outcome.UNREACHABLE: "not reachable",
    Outcome.START_UP_ERROR: "start-up error",
    Outcome.OLD_COMMIT: "old commit still serving",
    Outcome.NOT_READY: "readiness failing",
}


@dataclass(frozen=True)
class Observation:
    """What one attempt saw: the layer it stopped at, a one-line summary and what to do about it."""

    outcome: Outcome
    summary: str
    advice: str = ""


def run_verify(
    *, url: str, commit: str, timeout: float, app_name: str | None, resource_group: str | None
) -> int:
    """The `verify` command: probe until verified or the deadline; the exit code names the layer."""
    until = datetime.now(UTC) + timedelta(seconds=timeout)
    print(
        f"waiting until {until:%H:%M:%S} UTC (at most {timeout:g} s) for {url} to serve commit "
        f"{commit} ({'the full SHA' if len(commit) == 40 else 'matched by prefix'}) and answer "
        "/readyz 200",
        flush=True,
    )
    observation = verify(
        url=url,
        commit=commit,
        timeout=timeout,
        report=lambda elapsed, seen: print(
            f"[{elapsed:6.1f}s] {LABELS[seen.outcome]}: {seen.summary}", flush=True
        ),
    )
    if observation.outcome is Outcome.VERIFIED:
        print(f"verified: {observation.summary}")
        _github_summary(f"### Runtime gate: verified\n\n{observation.summary}\n")
        return int(Outcome.VERIFIED)

    logs = (
        log_stream_hint(app_name=app_name, resource_group=resource_group) if is_app_service_url(url) else ""
    )
    print(
        f"\nverify FAILED: {LABELS[observation.outcome]} (exit {int(observation.outcome)})\n"
        f"  {observation.summary}\n"
        f"  {observation.advice}\n" + (f"\n{logs}" if logs else ""),
        file=sys.stderr,
    )
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(
            f"::error title=Runtime gate: {LABELS[observation.outcome]}::{observation.summary}",
            file=sys.stderr,
        )
    _github_summary(
        f"### Runtime gate: {LABELS[observation.outcome]} (exit {int(observation.outcome)})\n\n"
        f"{observation.summary}\n\n{observation.advice}\n" + (f"\n```\n{logs}\n```\n" if logs else "")
    )
    return int(observation.outcome)


def verify(
    *,
    url: str,
    commit: str,
    timeout: float,
    initial_delay: float = INITIAL_DELAY_SECONDS,
    report: Callable[[float, Observation], None] | None = None,
) -> Observation:
    """Probe until verified or the deadline passes; return the final observation."""
    base = url.rstrip("/")
    started = time.monotonic()
    deadline = started + timeout
    delay = initial_delay
    last_summary = None
    with httpx.Client(follow_redirects=True, headers={"user-agent": "backend-iac-verify"}) as client:
        while True:
            # Each request keeps its full timeout even near the deadline: a slow 503 from /readyz is a
            # better diagnosis than a time-out we caused ourselves.
            observation = probe(client, base, commit, request_timeout=REQUEST_TIMEOUT_SECONDS)
            if report is not None and observation.summary != last_summary:
                report(time.monotonic() - started, observation)
                last_summary = observation.summary
            remaining = deadline - time.monotonic()
            if observation.outcome is Outcome.VERIFIED or remaining <= 0:
                return observation
            time.sleep(min(delay, remaining))
            delay = min(delay * BACKOFF_FACTOR, MAX_DELAY_SECONDS)


def probe(client: httpx.Client, base: str, commit: str, *, request_timeout: float) -> Observation:
    """One attempt through the layers: liveness, then the serving commit, then readiness."""
    expected = commit.strip().lower()
    try:
        health = client.get(f"{base}{HEALTH_PATH}", timeout=request_timeout)
        not_ours = _not_the_app(health, HEALTH_PATH)
        if not_ours is not None:
            return not_ours

        version = client.get(f"{base}/version", timeout=request_timeout)
        not_ours = _not_the_app(version, "/version")
        if not_ours is not None:
            return not_ours
        served = _json(version) or {}
        serving = str(served.get("commit", "unknown")).lower()
        # A prefix (the 12 characters in the zip's name, git's 7) names the commit it starts; "unknown"
        # or an empty commit never matches.
        if not (len(serving) >= len(expected) and serving.startswith(expected)):
            return Observation(
                Outcome.OLD_COMMIT,
                f"{base} serves commit {serving} (started {served.get('started_at', '?')}), expected {expected}",
                "The deploy has not been picked up or the restart is still pending: check the deployment "
                + (
                    "(`az webapp log deployment show`), then restart the app (`az webapp restart`) if it stays old."
                    if is_app_service_url(base)
                    else "log, then restart the service if it stays old."
                ),
            )

        ready = client.get(f"{base}/readyz", timeout=request_timeout)
    except httpx.TransportError as error:
        return _transport_failure(base, error)

    if ready.status_code == 200:
        return Observation(Outcome.VERIFIED, f"{base} serves commit {serving} and /readyz is 200")
    problem = _json(ready)
    if problem is not None and ready.status_code == 503:
        dependency = problem.get("dependency", "unnamed")
        return Observation(
            Outcome.NOT_READY,
            f"/readyz is 503: dependency {dependency!r} is failing: {problem.get('detail', '')}".rstrip(": "),
            f"The new code runs, but its {dependency} does not answer: check the server exists and runs, its "
            "firewall admits App Service, and the DATABASE_URL / DATABASE_AUTH app settings and identity.",
        )
    return _start_up_failure(ready, "/readyz")


# Hosts of App Service apps (multi-tenant, and App Service Environments); the `az webapp` hints only make
# sense there.
_APP_SERVICE_HOST_SUFFIXES: Final = (".azurewebsites.net", ".appserviceenvironment.net")


def is_app_service_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(_APP_SERVICE_HOST_SUFFIXES)


def log_stream_hint(*, app_name: str | None, resource_group: str | None) -> str:
    name = app_name or "<web_app_name>"
    group = resource_group or "<resource_group>"
    return (
        "Read the log stream (stdout of gunicorn and the container's start-up):\n"
        f"  az webapp log tail --name {name} --resource-group {group}\n"
        "Deployment (Oryx build) log:\n"
        f"  az webapp log deployment show --name {name} --resource-group {group}\n"
        "(app and group names: `pulumi stack output web_app_name` / `pulumi stack output resource_group`)"
    )


def _not_the_app(response: httpx.Response, path: str) -> Observation | None:
    """None when the response is our service's JSON; otherwise the layer that answered instead."""
    if response.status_code == 200 and _json(response) is not None:
        return None
    if response.status_code >= 500 or response.status_code == 200:
        return _start_up_failure(response, path)
    hints = {
        403: "the web app may be stopped (`az webapp start`) or access-restricted",
        404: "no web app answers at this host, or it serves something else: check the URL (stack output `url`)",
        401: "something in front of the app demands authentication (App Service Authentication?)",
    }
    return Observation(
        Outcome.UNREACHABLE,
        f"GET {path} answered HTTP {response.status_code}, not the service",
        hints.get(response.status_code, "the host answers, but not with this service: check the URL"),
    )


def _start_up_failure(response: httpx.Response, path: str) -> Observation:
    text = response.text[:4000].lower()
    if "application error" in text:
        seen = "App Service's 'Application Error' page"
    elif "waiting for your content" in text or "hostingstart" in text:
        seen = "the platform's default page (the startup command did not start the service)"
    elif response.status_code >= 500:
        seen = f"HTTP {response.status_code} from the front end without the service's JSON"
    else:
        seen = f"HTTP {response.status_code} with a body that is not the service's JSON"
    return Observation(
        Outcome.START_UP_ERROR,
        f"GET {path}: {seen}",
        "The platform answers but the app does not: the container is still starting, or it crashed while "
        "starting (ModuleNotFoundError from a missing requirement, a wrong startup command, settings "
        "refused at start-up). The log stream says which.",
    )


def _transport_failure(base: str, error: httpx.TransportError) -> Observation:
    causes = _causes(error)
    if any(isinstance(cause, socket.gaierror) for cause in causes) or "name or service not known" in str(
        error
    ):
        return Observation(
            Outcome.UNREACHABLE,
            f"DNS: the host of {base} does not resolve ({error})",
            "Check the URL (stack output `url`) and that the web app exists (`pulumi stack output`).",
        )
    if any(isinstance(cause, ssl.SSLError) for cause in causes) or "ssl" in str(error).lower():
        return Observation(
            Outcome.UNREACHABLE,
            f"TLS: the handshake with {base} failed ({error})",
            "Check the scheme and host (App Service serves https on *.azurewebsites.net with its certificate).",
        )
    if isinstance(error, httpx.TimeoutException):
        return Observation(
            Outcome.UNREACHABLE,
            f"connection: {base} did not answer in time ({type(error).__name__})",
            "Nothing answered: check the URL, access restrictions and that the app is running.",
        )
    return Observation(
        Outcome.UNREACHABLE,
        f"connection: {base} refused or dropped the connection ({error})",
        "Nothing accepts connections at this address: check the URL and that the app is running.",
    )


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _github_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown)
