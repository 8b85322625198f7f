"""The site's own account of a failed deploy: the last lines of its container log and of the latest
deployment (Oryx build) log, read through Azure Resource Manager with an Entra bearer token.

Basic-auth publishing is off on this stack, so Kudu's basic-auth endpoints are closed; ARM accepts the
deploy identity's Entra token (audience https://management.azure.com/). The two operations:

- container log: `POST .../providers/Microsoft.Web/sites/{name}/containerlogs` (WebApps_GetWebSiteContainerLogs,
  "Gets the last lines of docker logs for the given site"; the body is the log's bytes, 204 when empty);
- deployment log: `GET .../sites/{name}/deployments` (the newest first) then
  `GET .../sites/{name}/deployments/{id}/log` (WebApps_ListDeploymentLog), whose entries carry
  `properties.message`.

Sources: learn.microsoft.com, .NET SDK reference `WebSiteResource.GetWebSiteContainerLogs` and
`SiteDeploymentResource.GetDeploymentLog` (request paths, operation ids, default api-version 2025-05-01),
and the REST reference for WebAppsGetWebSiteContainerLogs200Response/204Response. The order of
`deployments` (newest first) is unchecked: the newest is picked by `properties.start_time`.

Every line is redacted before it is printed (anything that looks like a token, a password or a connection
string) and the output is bounded: at most MAX_LINES lines of at most MAX_LINE_CHARS characters, from at
most MAX_BYTES read.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import httpx

MANAGEMENT_URL: Final = "https://management.azure.com"
API_VERSION: Final = "2025-05-01"
# The workflow puts the deploy identity's ARM token here (az account get-access-token), masked in the log.
TOKEN_ENV: Final = "AZURE_MANAGEMENT_TOKEN"  # noqa: S105 - the variable's name, not a token
SUBSCRIPTION_ENV: Final = "AZURE_SUBSCRIPTION_ID"
MAX_LINES: Final = 40
MAX_LINE_CHARS: Final = 400
MAX_BYTES: Final = 2_000_000
REQUEST_TIMEOUT_SECONDS: Final = 20.0
REDACTED: Final = "[redacted]"

_SECRETS: Final = (
    # JSON Web Tokens (Entra access tokens, GitHub OIDC assertions)
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Authorization headers
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # key=value pairs whose key says secret (connection strings, query strings, env dumps)
    re.compile(
        r"(?i)\b([\w.-]*(password|passwd|pwd|secret|token|accountkey|sharedaccesskey|apikey|api_key|sig)[\w.-]*)"
        r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s;,&\"']+)"
    ),
    # user:password@ in URLs (postgresql://app:pw@host/db)
    re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(@)"),
)


@dataclass(frozen=True)
class Evidence:
    """The bounded, redacted tails, or why each could not be read."""

    container_log: tuple[str, ...]
    deployment_log: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def markdown(self) -> str:
        parts = []
        for title, lines in (
            ("Container log (last lines)", self.container_log),
            ("Deployment (Oryx build) log (last lines)", self.deployment_log),
        ):
            body = "\n".join(lines) if lines else "(nothing read)"
            parts.append(f"#### {title}\n\n```\n{body}\n```\n")
        if self.problems:
            parts.append("\n".join(f"- {problem}" for problem in self.problems) + "\n")
        return "\n".join(parts)

    def text(self) -> str:
        sections = []
        for title, lines in (("container log", self.container_log), ("deployment log", self.deployment_log)):
            sections.append(f"--- {title} (last {len(lines)} lines) ---")
            sections.extend(lines or ["(nothing read)"])
        sections.extend(f"note: {problem}" for problem in self.problems)
        return "\n".join(sections)


def redact(line: str) -> str:
    """The line with anything that looks like a token, a password or a connection-string secret replaced."""
    line = _SECRETS[0].sub(REDACTED, line)
    line = _SECRETS[1].sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    line = _SECRETS[2].sub(lambda m: f"{m.group(1)}{m.group(3)}{REDACTED}", line)
    return _SECRETS[3].sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", line)


def tail(lines: Iterable[str], *, limit: int = MAX_LINES) -> tuple[str, ...]:
    """The last `limit` non-empty lines, each cut to MAX_LINE_CHARS and redacted."""
    kept = [line.rstrip() for line in lines if line.strip()][-limit:]
    return tuple(redact(line[:MAX_LINE_CHARS]) for line in kept)


def container_log_lines(body: bytes) -> list[str]:
    """The container log's lines, whether ARM returned plain text or a zip of log files."""
    body = body[-MAX_BYTES:] if not body.startswith(b"PK") else body[:MAX_BYTES]
    if body.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                members = sorted(archive.infolist(), key=lambda member: member.date_time)
                text = b"".join(archive.read(member)[-MAX_BYTES:] for member in members[-2:])
        except zipfile.BadZipFile:
            text = body
    else:
        text = body
    return text.decode("utf-8", errors="replace").splitlines()


def deployment_log_lines(entries: Any) -> list[str]:
    """`value[].properties.message` of a deployment log, in order; [] for anything else."""
    values = entries.get("value") if isinstance(entries, dict) else None
    lines: list[str] = []
    for entry in values if isinstance(values, list) else []:
        properties = entry.get("properties") if isinstance(entry, dict) else None
        message = properties.get("message") if isinstance(properties, dict) else None
        if isinstance(message, str):
            lines.extend(message.splitlines())
    return lines


def newest_deployment_id(listing: Any) -> str | None:
    values = listing.get("value") if isinstance(listing, dict) else None
    candidates = []
    for entry in values if isinstance(values, list) else []:
        properties = entry.get("properties") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(properties, dict) and isinstance(name, str):
            candidates.append((str(properties.get("start_time") or ""), name.rsplit("/", 1)[-1]))
    return max(candidates)[1] if candidates else None


def fetch(
    *,
    app_name: str,
    resource_group: str,
    subscription: str | None = None,
    token: str | None = None,
    base_url: str = MANAGEMENT_URL,
) -> Evidence:
    """Read both tails with the bearer token (from TOKEN_ENV unless given); never raises for HTTP trouble."""
    token = token or os.environ.get(TOKEN_ENV)
    subscription = subscription or os.environ.get(SUBSCRIPTION_ENV)
    if not token or not subscription:
        missing = TOKEN_ENV if not token else SUBSCRIPTION_ENV
        return Evidence(
            (), (), (f"{missing} is not set, so the logs were not read (see the commands above)",)
        )
    site = (
        f"{base_url.rstrip('/')}/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Web/sites/{app_name}"
    )
    params = {"api-version": API_VERSION}
    problems: list[str] = []
    container: tuple[str, ...] = ()
    deployment: tuple[str, ...] = ()
    headers = {"authorization": f"Bearer {token}", "user-agent": "backend-iac-evidence"}
    with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        try:
            response = client.post(f"{site}/containerlogs", params=params)
            if response.status_code == 200:
                container = tail(container_log_lines(response.content))
            elif response.status_code != 204:
                problems.append(f"container log: HTTP {response.status_code} from ARM")
            listing = client.get(f"{site}/deployments", params=params)
            newest = newest_deployment_id(listing.json()) if listing.status_code == 200 else None
            if listing.status_code != 200:
                problems.append(f"deployments: HTTP {listing.status_code} from ARM")
            elif newest is None:
                problems.append("deployments: none listed")
            else:
                log = client.get(f"{site}/deployments/{newest}/log", params=params)
                if log.status_code == 200:
                    deployment = tail(deployment_log_lines(log.json()))
                else:
                    problems.append(f"deployment log: HTTP {log.status_code} from ARM")
        except (httpx.HTTPError, ValueError) as error:
            problems.append(f"logs not read: {type(error).__name__}")
    return Evidence(container, deployment, tuple(problems))
