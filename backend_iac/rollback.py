"""Roll production back to the commit that was serving when the runtime gate fails the new one.

A B1 plan has no deployment slots, so the way back is the way forward: rebuild the previous commit's
artifact (`backend-iac package --ref <sha>`: deterministic, the same bytes that served before), zip-deploy
it, and verify it serves and is ready. The decision and the sequence live here, driven by injectable
`deploy` and `verify` steps, so the same code runs in deploy.yml (az webapp deploy, the live site) and in
the tests (a directory and a process started with the stack's startup command).

Two commands:

- `backend-iac serving --url URL`: which commit serves and is ready, as JSON
  (`{"url", "commit", "ready", "diagnosis"}`); exit 0 when a ready commit serves, else the verify exit
  code of what was seen (3 unreachable, 4 start-up, 6 not ready). In GitHub Actions it also writes
  `commit=<sha or empty>` to $GITHUB_OUTPUT. Run before the deploy: it is what a rollback returns to.
- `backend-iac rollback --url URL --commit NEW --previous SHA ...`: the sequence below, its report on
  stdout and in $GITHUB_STEP_SUMMARY; exit 0 only when the previous commit serves again, verified.

What a rollback does not undo: the infrastructure. `pulumi up` ran before the deploy and its changes
(app settings, plan, database, identities) stay as applied; only the code goes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import httpx

from backend_iac.verify import (
    LABELS,
    REQUEST_TIMEOUT_SECONDS,
    Observation,
    Outcome,
    _json,
    _not_the_app,
    _start_up_failure,
    _transport_failure,
    verify,
)

ZIP_DEPLOY_TIMEOUT_SECONDS: Final = 1200.0
SERVING_TIMEOUT_SECONDS: Final = 60.0
NOT_ROLLED_BACK: Final = (
    "Not rolled back: the infrastructure. `pulumi up` ran before the deploy and everything it changed "
    "(app settings, the plan, the database, identities) stays as applied; only the code went back. If the "
    "failure comes from that change, revert the commit and let the next deploy apply the revert."
)

Deploy = Callable[[str], None]  # puts the artifact of this commit live; raises DeployError
Verify = Callable[[str], Observation]  # waits until this commit serves and is ready (or gives up)
Status = Literal["verified", "failed", "first-deploy", "same-commit", "new-commit-verifies"]


class DeployError(Exception):
    """A deploy step failed before anything could be verified; the message says why."""


@dataclass(frozen=True)
class Serving:
    """What the live site serves: the commit when it is healthy and ready, else None and why."""

    url: str
    commit: str | None
    outcome: Outcome
    diagnosis: str

    @property
    def ready(self) -> bool:
        return self.commit is not None

    def as_json(self) -> dict[str, object]:
        return {"url": self.url, "commit": self.commit, "ready": self.ready, "diagnosis": self.diagnosis}


def probe_serving(
    client: httpx.Client, base: str, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS
) -> Serving:
    """One look: /healthz, then /version's commit, then /readyz; a commit only when all three say yes."""
    try:
        for path in ("/healthz", "/version"):
            response = client.get(f"{base}{path}", timeout=request_timeout)
            not_ours = _not_the_app(response, path)
            if not_ours is not None:
                return Serving(base, None, not_ours.outcome, not_ours.summary)
        commit = str((_json(response) or {}).get("commit", "")).strip().lower()
        ready = client.get(f"{base}/readyz", timeout=request_timeout)
    except httpx.TransportError as error:
        seen = _transport_failure(base, error)
        return Serving(base, None, seen.outcome, seen.summary)
    if ready.status_code == 200 and commit and commit != "unknown":
        return Serving(base, commit, Outcome.VERIFIED, f"{base} serves commit {commit} and /readyz is 200")
    if ready.status_code == 503 and _json(ready) is not None:
        return Serving(
            base, None, Outcome.NOT_READY, f"commit {commit or 'unknown'} serves but /readyz is 503"
        )
    if ready.status_code == 200:
        return Serving(base, None, Outcome.START_UP_ERROR, "/version names no commit")
    seen = _start_up_failure(ready, "/readyz")
    return Serving(base, None, seen.outcome, seen.summary)


def serving(url: str, *, timeout: float = SERVING_TIMEOUT_SECONDS, delay: float = 2.0) -> Serving:
    """Look until a ready commit serves or `timeout` passes (a site mid-restart gets a second look)."""
    base = url.rstrip("/")
    deadline = time.monotonic() + timeout
    with httpx.Client(follow_redirects=True, headers={"user-agent": "backend-iac-serving"}) as client:
        while True:
            seen = probe_serving(client, base)
            remaining = deadline - time.monotonic()
            if seen.ready or remaining <= 0:
                return seen
            time.sleep(min(delay, remaining))


@dataclass(frozen=True)
class RollbackReport:
    new_commit: str
    gate: Observation  # the new commit's diagnosis
    previous: str | None
    status: Status
    rollback_diagnosis: str | None = None

    @property
    def restored(self) -> bool:
        return self.status == "verified"

    def outcome_line(self) -> str:
        if self.status == "verified":
            return f"rolled back to {self.previous}: verified"
        if self.status == "failed":
            return f"rollback failed: {self.rollback_diagnosis}"
        if self.status == "first-deploy":
            return (
                "no rollback: nothing verified was serving before this deploy (a first deploy, or the site "
                "was already down), so there is no commit to return to; no guess was made"
            )
        if self.status == "same-commit":
            return (
                f"no rollback: {self.previous} was already the serving commit; redeploying it changes nothing"
            )
        return f"no rollback: the new commit {self.new_commit} verifies on a second look (the gate gave up early)"

    def markdown(self, evidence: str = "") -> str:
        gate = f"{LABELS[self.gate.outcome]} (exit {int(self.gate.outcome)}): {self.gate.summary}"
        lines = [
            f"### Deploy of {self.new_commit} failed the runtime gate",
            "",
            f"- **New commit {self.new_commit}:** {gate}",
            f"- **{self.outcome_line()}**",
            f"- {NOT_ROLLED_BACK}",
            "",
        ]
        if self.gate.advice:
            lines += [self.gate.advice, ""]
        return "\n".join(lines) + (f"\n{evidence}\n" if evidence else "")


def roll_back(
    *, new_commit: str, gate: Observation, previous: str | None, deploy: Deploy, verify_commit: Verify
) -> RollbackReport:
    """Decide, and if there is a commit to return to, redeploy it and verify it."""
    previous = (previous or "").strip().lower() or None
    new_commit = new_commit.strip().lower()
    if gate.outcome is Outcome.VERIFIED:
        return RollbackReport(new_commit, gate, previous, "new-commit-verifies")
    if previous is None:
        return RollbackReport(new_commit, gate, None, "first-deploy")
    if previous == new_commit:
        return RollbackReport(new_commit, gate, previous, "same-commit")
    try:
        deploy(previous)
    except DeployError as error:
        return RollbackReport(new_commit, gate, previous, "failed", f"redeploying {previous}: {error}")
    seen = verify_commit(previous)
    if seen.outcome is Outcome.VERIFIED:
        return RollbackReport(new_commit, gate, previous, "verified")
    diagnosis = (
        f"{previous} does not verify: {LABELS[seen.outcome]} (exit {int(seen.outcome)}): {seen.summary}"
    )
    return RollbackReport(new_commit, gate, previous, "failed", diagnosis)


# The workflow's steps -------------------------------------------------------------------------------------


def zip_deploy(*, root: Path, app_name: str, resource_group: str) -> Deploy:
    """Build the commit's artifact and `az webapp deploy` it (the deploy job's own command)."""
    from backend_iac.package import PackagingError, build

    def deploy(commit: str) -> None:
        with tempfile.TemporaryDirectory(prefix="backend-iac-rollback-") as scratch:
            try:
                artifact = build(root=root, output=Path(scratch) / "rollback.zip", ref=commit)
            except PackagingError as error:
                msg = (
                    f"cannot rebuild its artifact ({error}); is the commit in this checkout (fetch-depth: 0)?"
                )
                raise DeployError(msg) from None
            command = (
                "az", "webapp", "deploy", "--name", app_name, "--resource-group", resource_group,
                "--src-path", str(artifact.path), "--type", "zip", "--track-status", "false",
            )  # fmt: skip
            try:
                result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                    command, capture_output=True, text=True, timeout=ZIP_DEPLOY_TIMEOUT_SECONDS, check=False
                )
            except FileNotFoundError:
                raise DeployError("the Azure CLI (az) is not on PATH") from None
            except subprocess.TimeoutExpired:
                raise DeployError(
                    f"az webapp deploy did not finish in {ZIP_DEPLOY_TIMEOUT_SECONDS:.0f} s"
                ) from None
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["(no output)"])[-1][:400]
                raise DeployError(f"az webapp deploy exited {result.returncode}: {last}")

    return deploy


def run_serving(*, url: str, timeout: float) -> int:
    """The `serving` command."""
    import json

    seen = serving(url, timeout=timeout)
    print(json.dumps(seen.as_json(), sort_keys=True))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"commit={seen.commit or ''}\n")
    if not seen.ready:
        print(f"backend-iac serving: nothing healthy serves: {seen.diagnosis}", file=sys.stderr)
        return int(seen.outcome)
    return 0


def run_rollback(
    *,
    root: Path,
    url: str,
    new_commit: str,
    previous: str | None,
    app_name: str,
    resource_group: str,
    timeout: float,
    deploy: Deploy | None = None,
) -> int:
    """The `rollback` command: the new commit's diagnosis now, the rollback, the evidence, the summary."""
    from backend_iac import evidence

    gate = verify(url=url, commit=new_commit, timeout=0.0)
    report = roll_back(
        new_commit=new_commit,
        gate=gate,
        previous=previous,
        deploy=deploy or zip_deploy(root=root, app_name=app_name, resource_group=resource_group),
        verify_commit=lambda commit: verify(url=url, commit=commit, timeout=timeout),
    )
    logs = evidence.fetch(app_name=app_name, resource_group=resource_group)
    text = report.markdown(logs.markdown())
    print(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        level = "notice" if report.restored else "error"
        print(f"::{level} title=Rollback::{report.outcome_line()}", file=sys.stderr)
    return 0 if report.restored else 1
