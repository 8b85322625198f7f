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
    7  refused       authenticated call refused: with a token (--token-command or --token-env),
                     GET /api/v1/items?limit=1 answered 401 or 403; the service's problem detail and
                     WWW-Authenticate header say why (wrong audience, issuer, missing scope, ...)

(1 is left to Python itself for an unexpected crash, 2 to argparse for a usage error and to a token that
could not be obtained: the command failed, timed out or printed nothing, or the variable is unset.)

With a token, the authenticated call is the last layer: after /readyz passes, the API must answer a real
call as the deployed clients will make it. The token is read once, when /readyz first passes (a token
command's token is then as fresh as it can be), and is never printed.
"""

from __future__ import annotations

import functools
import os
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
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
# A token command (e.g. `az account get-access-token`) gets this long; its output is read up to the limit.
TOKEN_COMMAND_TIMEOUT_SECONDS: Final = 60.0
MAX_TOKEN_BYTES: Final = 16 * 1024  # the service refuses larger tokens unread (service/auth.py)
MAX_STDERR_SHOWN: Final = 4000
AUTHENTICATED_PATH: Final = "/api/v1/items?limit=1"


class Outcome(IntEnum):
    VERIFIED = 0
    UNREACHABLE = 3
    START_UP_ERROR = 4
    OLD_COMMIT = 5
    NOT_READY = 6
    AUTH_REFUSED = 7


LABELS: Final = {
    Outcome.VERIFIED: "verified",
    Outcome.UNREACHABLE: "not reachable",
    Outcome.START_UP_ERROR: "start-up error",
    Outcome.OLD_COMMIT: "old commit still serving",
    Outcome.NOT_READY: "readiness failing",
    Outcome.AUTH_REFUSED: "authenticated call refused",
}
USAGE_ERROR: Final = 2


class TokenError(Exception):
    """No token could be obtained (the message says why; it never contains the token)."""


TokenSource = Callable[[], str]


def _token_source(*, token_command: str | None, token_env: str | None) -> TokenSource | None:
    """The token option given (the CLI keeps them mutually exclusive), as a deferred call, or None."""
    if token_command is not None:
        return functools.partial(token_from_command, token_command)
    if token_env is not None:
        return functools.partial(token_from_environment, token_env)
    return None


def token_from_command(command: str, *, timeout: float = TOKEN_COMMAND_TIMEOUT_SECONDS) -> str:
    """Run `command` (split like a shell would, not run by one); its stdout, stripped, is the token.

    Bounded: the command gets `timeout` seconds, and only the first MAX_TOKEN_BYTES (+1, to notice
    more) of its output are read. On failure the message carries the command's stderr, never its stdout.
    """
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise TokenError(f"--token-command cannot be parsed: {error}") from None
    if not argv:
        raise TokenError("--token-command is empty")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            completed = subprocess.run(  # noqa: S603 - the operator's own command, run without a shell
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise TokenError(f"--token-command: {argv[0]!r} was not found on PATH") from None
        except subprocess.TimeoutExpired:
            raise TokenError(f"--token-command did not finish within {timeout:.0f} s") from None
        out.seek(0)
        token = out.read(MAX_TOKEN_BYTES + 1).decode("utf-8", "replace").strip()
        err.seek(0)
        stderr = err.read(MAX_STDERR_SHOWN).decode("utf-8", "replace").strip()
    if completed.returncode != 0:
        raise TokenError(
            f"--token-command exited with {completed.returncode}"
            + (f"; its stderr:\n{stderr}" if stderr else " and printed nothing on stderr")
        )
    return _checked_token(token, "--token-command printed")


def token_from_environment(name: str) -> str:
    """The token held by environment variable `name`."""
    return _checked_token(os.environ.get(name, "").strip(), f"--token-env {name} holds")


def _checked_token(token: str, source: str) -> str:
    if not token:
        raise TokenError(f"{source} no token (empty)")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError(f"{source} more than {MAX_TOKEN_BYTES} bytes, which is no bearer token")
    if any(character.isspace() for character in token):
        raise TokenError(
            f"{source} text with whitespace inside, not one bearer token (print only the token, e.g. "
            "`--query accessToken --output tsv`)"
        )
    return token


@dataclass(frozen=True)
class Observation:
    """What one attempt saw: the layer it stopped at, a one-line summary and what to do about it."""

    outcome: Outcome
    summary: str
    advice: str = ""


def run_verify(
    *,
    url: str,
    commit: str,
    timeout: float,
    app_name: str | None,
    resource_group: str | None,
    token_command: str | None = None,
    token_env: str | None = None,
) -> int:
    """The `verify` command: probe until verified or the deadline; the exit code names the layer."""
    until = datetime.now(UTC) + timedelta(seconds=timeout)
    print(
        f"waiting until {until:%H:%M:%S} UTC (at most {timeout:g} s) for {url} to serve commit "
        f"{commit} ({'the full SHA' if len(commit) == 40 else 'matched by prefix'}) and answer "
        "/readyz 200",
        flush=True,
    )
    token_source = _token_source(token_command=token_command, token_env=token_env)
    try:
        observation = verify(
            url=url,
            commit=commit,
            timeout=timeout,
            token=token_source,
            report=lambda elapsed, seen: print(
                f"[{elapsed:6.1f}s] {LABELS[seen.outcome]}: {seen.summary}", flush=True
            ),
        )
    except TokenError as error:
        print(
            f"\nverify FAILED: no token for the authenticated call (exit {USAGE_ERROR})\n  {error}",
            file=sys.stderr,
        )
        _github_summary(f"### Runtime gate: no token for the authenticated call\n\n{error}\n")
        return USAGE_ERROR
    if observation.outcome is Outcome.VERIFIED:
        print(f"verified: {observation.summary}")
        if token_source is None:
            print(
                "authenticated call skipped: no --token-command or --token-env given, so "
                f"GET {AUTHENTICATED_PATH} was not tried"
            )
        _github_summary(f"### Runtime gate: verified\n\n{observation.summary}\n")
        return int(Outcome.VERIFIED)

    logs = (
        log_stream_hint(app_name=app_name, resource_group=resource_group) if is_app_service_url(url) else ""
    )
    if logs and app_name and resource_group:
        from backend_iac.evidence import fetch

        # The site's own account, bounded and redacted (AZURE_MANAGEMENT_TOKEN: the deploy identity's).
        logs += "\n\n" + fetch(app_name=app_name, resource_group=resource_group).text()
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
    token: TokenSource | None = None,
) -> Observation:
    """Probe until verified or the deadline passes; return the final observation.

    With `token`, verified also means an authenticated GET of the items answered 200; the token is
    obtained once, the first time /readyz passes (TokenError propagates: there is nothing to retry).
    A 401/403 ends the wait at once: a refusal is the service's answer, not a state it is passing through.
    """
    base = url.rstrip("/")
    started = time.monotonic()
    deadline = started + timeout
    delay = initial_delay
    last_summary = None
    bearer: str | None = None
    with httpx.Client(follow_redirects=True, headers={"user-agent": "backend-iac-verify"}) as client:
        while True:
            # Each request keeps its full timeout even near the deadline: a slow 503 from /readyz is a
            # better diagnosis than a time-out we caused ourselves.
            observation = probe(client, base, commit, request_timeout=REQUEST_TIMEOUT_SECONDS)
            if observation.outcome is Outcome.VERIFIED and token is not None:
                if bearer is None:
                    bearer = token()
                observation = authenticated_call(
                    client, base, bearer, ready=observation, request_timeout=REQUEST_TIMEOUT_SECONDS
                )
            if report is not None and observation.summary != last_summary:
                report(time.monotonic() - started, observation)
                last_summary = observation.summary
            remaining = deadline - time.monotonic()
            if observation.outcome in (Outcome.VERIFIED, Outcome.AUTH_REFUSED) or remaining <= 0:
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


def authenticated_call(
    client: httpx.Client, base: str, token: str, *, ready: Observation, request_timeout: float
) -> Observation:
    """GET the items with the bearer token: 200 verified, 401/403 refused (with the service's reasons)."""
    try:
        response = client.get(
            f"{base}{AUTHENTICATED_PATH}",
            headers={"authorization": f"Bearer {token}"},
            timeout=request_timeout,
        )
    except httpx.TransportError as error:
        return _transport_failure(base, error)
    if response.status_code == 200 and _json(response) is not None:
        return Observation(
            Outcome.VERIFIED, f"{ready.summary}, and GET {AUTHENTICATED_PATH} with the token is 200"
        )
    if response.status_code in (401, 403):
        problem = _json(response) or {}
        detail = str(problem.get("detail") or problem.get("title") or "(no problem document)")
        challenge = response.headers.get("www-authenticate", "(none)")
        return Observation(
            Outcome.AUTH_REFUSED,
            f"GET {AUTHENTICATED_PATH} with the token answered {response.status_code}: {detail}; "
            f"WWW-Authenticate: {challenge}",
            "The service runs but refuses the token the gate was given. 401: the token does not verify "
            "(its aud must be AUTH_AUDIENCE and its iss AUTH_ISSUER: compare with the stack outputs "
            "auth_audience and auth_issuer; an Entra v1.0 token means the app registration's "
            "requestedAccessTokenVersion is not 2). 403: it verifies but lacks the items.read scope or "
            "app role (the deploy identity's app role assignment, stack output api_client_id).",
        )
    if response.status_code >= 500 or _json(response) is None:
        return _start_up_failure(response, AUTHENTICATED_PATH)
    problem = _json(response) or {}
    return Observation(
        Outcome.START_UP_ERROR,
        f"GET {AUTHENTICATED_PATH} with the token answered {response.status_code}: "
        f"{problem.get('detail', '')}".rstrip(": "),
        "The service answered the authenticated call with neither 200 nor a refusal: read its log stream.",
    )


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
