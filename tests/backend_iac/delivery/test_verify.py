"""`backend-iac verify`: exit 0 only when the expected commit serves and is ready; otherwise the exit
code and the message name the failing layer. Every case is bounded by a small --timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from backend_iac.verify import Outcome
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac
from tests.backend_iac.delivery.conftest import Deployment, app_service_environment
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import free_port
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.slow

OTHER_COMMIT = "0" * 40


def verify(
    url: str, commit: str, *extra: str, timeout: float = 3.0, env: dict[str, str] | None = None
) -> Any:
    started = time.monotonic()
    result = backend_iac(
        "verify", "--url", url, "--commit", commit, "--timeout", str(timeout), *extra, env=env
    )
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result


@pytest.fixture
def front_end() -> Iterator[dict[str, Any]]:
    """A stand-in for App Service's front end while the container is down: status and page are settable."""
    state: dict[str, Any] = {"status": 503, "body": b"<html><h1>:( Application Error</h1></html>"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"])
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(state["body"])))
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_verified_when_the_expected_commit_serves_and_is_ready(
    artifact_service: ServiceProcess, deployment: Deployment
) -> None:
    """Exit 0, promptly, when /version reports the expected commit and /readyz is 200."""
    result = verify(artifact_service.url, deployment.commit, timeout=20)
    assert result.returncode == Outcome.VERIFIED, result.stdout + result.stderr
    assert f"serves commit {deployment.commit}" in result.stdout
    assert result.elapsed < 10


def test_waits_for_a_service_that_is_still_starting(
    deployment: Deployment, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """Nothing listens when verify starts; the service comes up seconds later: verify waits, then exits 0."""
    port = free_port()
    command = [
        sys.executable, "-m", "backend_iac.cli", "verify", "--url", f"http://127.0.0.1:{port}",
        "--commit", deployment.commit, "--timeout", "40",
    ]  # fmt: skip
    waiting = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(2)
        assert waiting.poll() is None, "verify gave up before the deadline"
        env = app_service_environment(issuer, tmp_path, deployment.bin_dir)
        with ServiceProcess(
            env=env, cwd=deployment.site, python_bin=deployment.bin_dir, workers=1, port=port
        ):
            stdout, stderr = waiting.communicate(timeout=40)
    finally:
        waiting.kill()
    assert waiting.returncode == Outcome.VERIFIED, stdout + stderr
    assert "not reachable: connection:" in stdout  # what it saw first
    assert f"verified: http://127.0.0.1:{port} serves commit {deployment.commit}" in stdout


def test_old_commit_is_diagnosed_with_both_commits_and_the_log_stream(
    artifact_service: ServiceProcess, deployment: Deployment, tmp_path: Path
) -> None:
    """Another commit serving: exit 5 naming served and expected commits, how to tail the logs, and the
    same diagnosis in the GitHub job summary."""
    summary = tmp_path / "summary.md"
    result = verify(
        artifact_service.url, OTHER_COMMIT, "--app-name", "app-x", "--resource-group", "rg-x",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.returncode == Outcome.OLD_COMMIT, result.stdout + result.stderr
    assert "old commit still serving" in result.stderr
    assert deployment.commit in result.stderr
    assert OTHER_COMMIT in result.stderr
    assert "old commit still serving" in summary.read_text()
    assert "az webapp" not in result.stderr  # a loopback URL is no App Service: no Azure hints
    assert result.elapsed < 10


def test_a_short_commit_matches_the_served_commit_by_prefix(
    artifact_service: ServiceProcess, deployment: Deployment
) -> None:
    """The 12 characters in the zip's name (or git's 7) verify the commit they start, promptly."""
    for prefix in (deployment.commit[:12], deployment.commit[:7].upper()):
        result = verify(artifact_service.url, prefix, timeout=20)
        assert result.returncode == Outcome.VERIFIED, result.stdout + result.stderr
        assert "matched by prefix" in result.stdout
        assert f"serves commit {deployment.commit}" in result.stdout
        assert result.elapsed < 10


def test_it_says_at_start_what_it_waits_for_and_until_when(artifact_service: ServiceProcess) -> None:
    """The first line names the URL, the commit and the deadline (clock time and seconds)."""
    result = verify(artifact_service.url, OTHER_COMMIT, timeout=1)
    first = result.stdout.splitlines()[0]
    assert first.startswith("waiting until "), first
    assert "UTC (at most 1 s)" in first
    assert artifact_service.url in first
    assert OTHER_COMMIT in first


@pytest.mark.parametrize(
    ("url", "commit", "complaint"),
    [
        ("127.0.0.1:8000", OTHER_COMMIT, "not an http(s) URL"),
        ("ftp://example.invalid", OTHER_COMMIT, "not an http(s) URL"),
        ("http://127.0.0.1:9", "abc12", "not a commit SHA"),
        ("http://127.0.0.1:9", "main", "not a commit SHA"),
        ("http://127.0.0.1:9", "g" * 40, "not a commit SHA"),
    ],
)
def test_a_url_without_scheme_or_a_bad_commit_is_a_usage_error_at_once(
    url: str, commit: str, complaint: str
) -> None:
    """Exit 2 (usage) before any request, naming what is wrong; never minutes of retries."""
    result = verify(url, commit, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert complaint in result.stderr
    assert result.elapsed < 5


def test_azure_hints_only_for_app_service_hosts() -> None:
    """`az webapp` advice belongs to *.azurewebsites.net (and App Service Environments), not other hosts."""
    from backend_iac.verify import is_app_service_url

    assert is_app_service_url("https://app-backend-iac-dev.azurewebsites.net")
    assert is_app_service_url("https://APP.AZUREWEBSITES.NET/")
    assert is_app_service_url("https://app.ase-1.appserviceenvironment.net")
    assert not is_app_service_url("http://127.0.0.1:8000")
    assert not is_app_service_url("https://azurewebsites.net.example.com")


def test_failing_readiness_names_the_dependency(
    deployment: Deployment, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """The new commit runs but its database is down: exit 6 naming `database` from the problem document."""
    dead = f"postgresql://backend:unused@127.0.0.1:{free_port()}/backend"
    # Short database waits: a refused connection is known at once, and the start-up and readiness checks
    # each wait DATABASE_POOL_TIMEOUT for it (3 s by default) before saying so.
    env = app_service_environment(
        issuer, tmp_path, deployment.bin_dir, DATABASE_URL=dead, DATABASE_POOL_TIMEOUT="1"
    )
    with ServiceProcess(env=env, cwd=deployment.site, python_bin=deployment.bin_dir, workers=1) as service:
        result = verify(service.url, deployment.commit, timeout=4)
    assert result.returncode == Outcome.NOT_READY, result.stdout + result.stderr
    assert "dependency 'database' is failing" in result.stderr
    assert result.elapsed < 20


def test_closed_port_is_unreachable() -> None:
    """Nothing listening: exit 3, a connection diagnosis, within the timeout."""
    result = verify(f"http://127.0.0.1:{free_port()}", OTHER_COMMIT, timeout=2)
    assert result.returncode == Outcome.UNREACHABLE, result.stderr
    assert "connection:" in result.stderr
    assert "refused" in result.stderr
    assert result.elapsed < 10


def test_tls_to_a_plain_http_server_is_unreachable(artifact_service: ServiceProcess) -> None:
    """https:// to a server that speaks plain HTTP: exit 3 with a TLS diagnosis."""
    result = verify(artifact_service.url.replace("http://", "https://"), OTHER_COMMIT, timeout=1)
    assert result.returncode == Outcome.UNREACHABLE, result.stderr
    assert "TLS:" in result.stderr


def test_unresolvable_host_is_unreachable() -> None:
    """A host name that cannot resolve (.invalid is reserved): exit 3 with a DNS diagnosis."""
    result = verify("http://backend-iac.invalid", OTHER_COMMIT, timeout=1)
    assert result.returncode == Outcome.UNREACHABLE, result.stderr
    assert "DNS:" in result.stderr


def test_application_error_page_is_a_start_up_error(front_end: dict[str, Any]) -> None:
    """A 503 HTML 'Application Error' page instead of the service's JSON: exit 4, start-up error."""
    result = verify(front_end["url"], OTHER_COMMIT, timeout=2)
    assert result.returncode == Outcome.START_UP_ERROR, result.stderr
    assert "Application Error" in result.stderr
    assert "The log stream says which" in result.stderr


def test_bare_gateway_error_is_a_start_up_error(front_end: dict[str, Any]) -> None:
    """A 502 with no JSON (the container did not answer the front end): exit 4."""
    front_end.update(status=502, body=b"Bad Gateway")
    result = verify(front_end["url"], OTHER_COMMIT, timeout=1)
    assert result.returncode == Outcome.START_UP_ERROR, result.stderr
    assert "HTTP 502" in result.stderr


def test_platform_default_page_is_a_start_up_error(front_end: dict[str, Any]) -> None:
    """A 200 HTML page that is not the service (the platform's default site): exit 4, not verified."""
    front_end.update(status=200, body=b"<html>Your web app is running and waiting for your content</html>")
    result = verify(front_end["url"], OTHER_COMMIT, timeout=1)
    assert result.returncode == Outcome.START_UP_ERROR, result.stderr
    assert "default page" in result.stderr


def test_stopped_app_status_is_unreachable(front_end: dict[str, Any]) -> None:
    """HTTP 403 from the platform (a stopped app): exit 3 with the status and a hint."""
    front_end.update(status=403, body=b"<html>Error 403 - This web app is stopped.</html>")
    result = verify(front_end["url"], OTHER_COMMIT, timeout=1)
    assert result.returncode == Outcome.UNREACHABLE, result.stderr
    assert "HTTP 403" in result.stderr
    assert "stopped" in result.stderr


def test_right_token_makes_the_authenticated_call(
    artifact_service: ServiceProcess, deployment: Deployment, issuer: LocalIssuer
) -> None:
    """--token-env with a token the service accepts (items.read, right audience): exit 0, the call is 200."""
    token = issuer.mint(scopes="items.read")
    result = verify(
        artifact_service.url, deployment.commit, "--token-env", "GATE_TOKEN", timeout=20,
        env={"GATE_TOKEN": token},
    )  # fmt: skip
    assert result.returncode == Outcome.VERIFIED, result.stdout + result.stderr
    assert "GET /api/v1/items?limit=1 with the token is 200" in result.stdout
    assert "skipped" not in result.stdout
    assert token not in result.stdout + result.stderr


def test_wrong_audience_token_is_refused_with_exit_7_and_the_reason(
    artifact_service: ServiceProcess, deployment: Deployment, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """--token-command printing a token for another API: exit 7, the service's reason and challenge, no token."""
    token = issuer.mint(scopes="items.read", audience="api://another-api")
    (tmp_path / "token").write_text(token + "\n")
    summary = tmp_path / "summary.md"
    result = verify(
        artifact_service.url, deployment.commit, "--token-command", f"cat {tmp_path / 'token'}",
        timeout=20, env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.returncode == Outcome.AUTH_REFUSED, result.stdout + result.stderr
    assert "authenticated call refused" in result.stderr
    assert f"expected {AUDIENCE}" in result.stderr  # the service's problem detail names the audience
    assert 'WWW-Authenticate: Bearer realm="backend-iac", error="invalid_token"' in result.stderr
    assert token not in result.stdout + result.stderr + summary.read_text()
    assert result.elapsed < 15  # a refusal ends the wait at once


def test_read_only_scope_missing_is_refused_with_403(
    artifact_service: ServiceProcess, deployment: Deployment, issuer: LocalIssuer
) -> None:
    """A valid token without items.read: 403 insufficient_scope, exit 7."""
    token = issuer.mint(scopes="other.scope")
    result = verify(
        artifact_service.url, deployment.commit, "--token-env", "GATE_TOKEN", timeout=20,
        env={"GATE_TOKEN": token},
    )  # fmt: skip
    assert result.returncode == Outcome.AUTH_REFUSED, result.stdout + result.stderr
    assert "answered 403" in result.stderr
    assert "insufficient_scope" in result.stderr


def test_without_a_token_the_authenticated_step_is_skipped_and_said(
    artifact_service: ServiceProcess, deployment: Deployment
) -> None:
    """No token option: verified as before, and the output says the authenticated call was skipped."""
    result = verify(artifact_service.url, deployment.commit, timeout=20)
    assert result.returncode == Outcome.VERIFIED, result.stdout + result.stderr
    assert "authenticated call skipped" in result.stdout


def test_failing_token_command_shows_its_stderr_and_exits_2(
    artifact_service: ServiceProcess, deployment: Deployment
) -> None:
    """The token command fails: exit 2 with its exit status and stderr (never its stdout)."""
    command = "sh -c 'echo SECRET-ISH-STDOUT; echo Please run az login >&2; exit 3'"
    result = verify(artifact_service.url, deployment.commit, "--token-command", command, timeout=20)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "exited with 3" in result.stderr
    assert "Please run az login" in result.stderr
    assert "SECRET-ISH-STDOUT" not in result.stdout + result.stderr


def test_token_command_is_bounded_in_time() -> None:
    """A token command that hangs is stopped after its limit with a clear message."""
    from backend_iac.verify import TokenError, token_from_command

    started = time.monotonic()
    with pytest.raises(TokenError, match="did not finish within 1 s"):
        token_from_command("sleep 30", timeout=1)
    assert time.monotonic() - started < 10


def test_unset_token_variable_exits_2(artifact_service: ServiceProcess, deployment: Deployment) -> None:
    """--token-env naming an empty or unset variable: exit 2 naming it."""
    result = verify(artifact_service.url, deployment.commit, "--token-env", "NO_SUCH_TOKEN_VAR", timeout=20)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--token-env NO_SUCH_TOKEN_VAR holds no token" in result.stderr


def test_exit_codes_are_distinct_and_documented() -> None:
    """Each diagnosis has its own exit code, clear of 1 (a crash) and 2 (usage), and docs/deploy.md lists them."""
    import backend_iac.verify

    codes = {outcome.name: int(outcome) for outcome in Outcome}
    assert codes == {
        "VERIFIED": 0,
        "UNREACHABLE": 3,
        "START_UP_ERROR": 4,
        "OLD_COMMIT": 5,
        "NOT_READY": 6,
        "AUTH_REFUSED": 7,
    }
    documented = (Path(__file__).resolve().parents[3] / "docs" / "deploy.md").read_text()
    for code in codes.values():
        assert f"\n    {code}  " in (backend_iac.verify.__doc__ or "")
        assert f"| {code} |" in documented
