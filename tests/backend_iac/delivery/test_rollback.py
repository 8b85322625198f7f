"""Rollback, end to end on this machine: two commits' deterministic artifacts, a "site" that is a directory
plus a process started with the stack's startup command, the same Python sequence deploy.yml runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend_iac.package import PackagingError, build
from backend_iac.rollback import DeployError, Outcome, roll_back, run_rollback, serving
from backend_iac.verify import Observation, verify
from tests.backend_iac.delivery.commands import REPO_ROOT, backend_iac
from tests.backend_iac.delivery.conftest import app_service_environment, install_fresh_venv
from tests.support.issuer import LocalIssuer
from tests.support.service_process import ServiceProcess, free_port

pytestmark = pytest.mark.slow

GOOD_EDIT = "\n# a harmless change: a second good commit\n"
CRASH_EDIT = '\nraise RuntimeError("broken on purpose: this commit cannot start")\n'


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip


def _commit_edit(root: Path, edit: str, message: str) -> str:
    main = root / "service" / "main.py"
    main.write_text(main.read_text() + edit)
    _git(root, "commit", "--quiet", "-am", message)
    commit = _git(root, "rev-parse", "HEAD")
    _git(root, "checkout", "--quiet", "HEAD~1")  # each edit branches from the good commit
    return commit


@dataclass(frozen=True)
class Commits:
    repository: Path
    good: str  # serving before the deploy
    other_good: str  # a good commit that never gets deployed
    crashing: str  # fails at import: the app never starts


@pytest.fixture(scope="module")
def commits(tmp_path_factory: pytest.TempPathFactory) -> Commits:
    root = tmp_path_factory.mktemp("rollback-repo")
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", "HEAD", "service", "pyproject.toml", "uv.lock"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True, timeout=60)
    _git(root, "init", "--quiet")
    _git(root, "add", "-A")
    _git(root, "commit", "--quiet", "-m", "good")
    good = _git(root, "rev-parse", "HEAD")
    other_good = _commit_edit(root, GOOD_EDIT, "another good commit")
    crashing = _commit_edit(root, CRASH_EDIT, "a commit that cannot start")
    return Commits(root, good, other_good, crashing)


@pytest.fixture(scope="module")
def venv_bin(commits: Commits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Oryx's virtualenv, built once from the artifact's own requirements.txt (both commits pin the same)."""
    work = tmp_path_factory.mktemp("rollback-venv")
    artifact = build(root=commits.repository, ref=commits.good, output=work / "a.zip")
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(work / "unpacked")
    return install_fresh_venv(work / "unpacked", work / "antenv", sys.executable) / "bin"


@dataclass
class Site:
    """/home/site/wwwroot and the container: a zip deploy replaces the directory and restarts the process."""

    root: Path
    repository: Path
    bin_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: ServiceProcess | None = None
    deployed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def deploy(self, commit: str) -> None:
        """The injectable deploy step: `package --ref <commit>`, unzip over wwwroot, restart."""
        self.deployed.append(commit)
        try:
            artifact = build(root=self.repository, ref=commit, output=self.root / f"{commit[:12]}.zip")
        except PackagingError as error:
            raise DeployError(f"cannot rebuild its artifact ({error})") from None
        self.stop()
        wwwroot = self.root / "wwwroot"
        shutil.rmtree(wwwroot, ignore_errors=True)
        with zipfile.ZipFile(artifact.path) as archive:
            archive.extractall(wwwroot)
        self.process = ServiceProcess(env=self.env, cwd=wwwroot, python_bin=self.bin_dir, port=self.port)
        self.process.start(wait=False)

    def verify(self, commit: str, timeout: float = 30.0) -> Observation:
        return verify(url=self.url, commit=commit, timeout=timeout, initial_delay=0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(timeout=20)
            self.process = None


@pytest.fixture
def site(commits: Commits, venv_bin: Path, issuer: LocalIssuer, tmp_path: Path) -> Iterator[Site]:
    home = tmp_path / "home"
    home.mkdir()
    running = Site(tmp_path, commits.repository, venv_bin, app_service_environment(issuer, home, venv_bin))
    yield running
    running.stop()


def _live(site: Site, commit: str) -> None:
    """Deploy and verify a commit: the state before the deploy under test."""
    site.deploy(commit)
    assert site.verify(commit).outcome is Outcome.VERIFIED


def test_a_commit_that_cannot_start_is_rolled_back_to_the_serving_one(site: Site, commits: Commits) -> None:
    """good serves; crashing is deployed and fails the gate; the sequence redeploys good and verifies it."""
    _live(site, commits.good)
    before = serving(site.url, timeout=10)
    assert before.commit == commits.good

    site.deploy(commits.crashing)
    gate = site.verify(commits.crashing, timeout=5)
    assert gate.outcome is not Outcome.VERIFIED
    report = roll_back(
        new_commit=commits.crashing,
        gate=gate,
        previous=before.commit,
        deploy=site.deploy,
        verify_commit=site.verify,
    )

    assert report.status == "verified", report
    assert serving(site.url, timeout=10).commit == commits.good
    assert site.deployed == [commits.good, commits.crashing, commits.good]
    text = report.markdown()
    assert f"rolled back to {commits.good}: verified" in text
    assert gate.summary in text
    assert "Not rolled back: the infrastructure" in text


def test_a_deploy_that_leaves_the_old_commit_serving_is_redeployed_and_verified(
    site: Site, commits: Commits
) -> None:
    """The gate sees the previous commit still serving (exit 5); the rollback makes that state verified."""
    _live(site, commits.good)
    gate = site.verify(commits.other_good, timeout=1)  # the zip never took: good still answers
    assert gate.outcome is Outcome.OLD_COMMIT
    report = roll_back(
        new_commit=commits.other_good,
        gate=gate,
        previous=commits.good,
        deploy=site.deploy,
        verify_commit=site.verify,
    )
    assert report.status == "verified"
    assert "old commit still serving (exit 5)" in report.markdown()


def test_a_rollback_that_fails_reports_both_diagnoses(site: Site, commits: Commits, tmp_path: Path) -> None:
    """A checkout without the previous commit (shallow) cannot rebuild it: both diagnoses are reported."""
    _live(site, commits.good)
    site.deploy(commits.crashing)
    gate = site.verify(commits.crashing, timeout=5)
    shallow = tmp_path / "shallow"
    _git(commits.repository, "branch", "-f", "crash", commits.crashing)
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", "--branch", "crash", f"file://{commits.repository}", str(shallow)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site.repository = shallow

    report = roll_back(
        new_commit=commits.crashing,
        gate=gate,
        previous=commits.good,
        deploy=site.deploy,
        verify_commit=site.verify,
    )

    assert report.status == "failed"
    text = report.markdown()
    assert f"rollback failed: redeploying {commits.good}: cannot rebuild its artifact" in text
    assert gate.summary in text
    assert (
        serving(site.url, timeout=2).commit is None
    )  # nothing healthy: the crashing commit is what is there


def test_a_rollback_whose_commit_does_not_verify_names_why(site: Site, commits: Commits) -> None:
    """Rolling 'back' to a commit that itself cannot start: rollback failed, with that commit's diagnosis."""
    _live(site, commits.good)
    gate = site.verify(commits.other_good, timeout=1)
    report = roll_back(
        new_commit=commits.other_good,
        gate=gate,
        previous=commits.crashing,
        deploy=site.deploy,
        verify_commit=lambda commit: site.verify(commit, timeout=5),
    )
    assert report.status == "failed"
    assert report.rollback_diagnosis is not None
    assert report.rollback_diagnosis.startswith(f"{commits.crashing} does not verify: ")


def test_first_deploy_says_so_and_deploys_nothing(site: Site, commits: Commits) -> None:
    """Nothing serves before: `serving` exits non-zero with commit null, and the sequence does not guess."""
    before = serving(site.url, timeout=1)
    assert before.commit is None
    assert before.outcome is Outcome.UNREACHABLE
    calls: list[str] = []
    report = roll_back(
        new_commit=commits.crashing,
        gate=Observation(Outcome.START_UP_ERROR, "GET /healthz: Application Error"),
        previous=before.commit,
        deploy=calls.append,
        verify_commit=site.verify,
    )
    assert report.status == "first-deploy"
    assert calls == []
    assert "nothing verified was serving before this deploy" in report.markdown()
    assert "no guess" in report.markdown()


def test_serving_command_prints_the_commit_as_json_and_records_it(
    site: Site, commits: Commits, tmp_path: Path
) -> None:
    """`backend-iac serving` exits 0 with the ready commit, writes commit=<sha> to $GITHUB_OUTPUT; with
    nothing serving it exits 3 with commit null and an empty output."""
    output = tmp_path / "github_output"
    idle = backend_iac("serving", "--url", site.url, "--timeout", "1", env={"GITHUB_OUTPUT": str(output)})
    assert idle.returncode == 3, idle.stderr
    assert json.loads(idle.stdout)["commit"] is None
    assert output.read_text() == "commit=\n"

    _live(site, commits.good)
    output.unlink()
    live = backend_iac("serving", "--url", site.url, "--timeout", "10", env={"GITHUB_OUTPUT": str(output)})
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout) == {
        "url": site.url,
        "commit": commits.good,
        "ready": True,
        "diagnosis": f"{site.url} serves commit {commits.good} and /readyz is 200",
    }
    assert output.read_text() == f"commit={commits.good}\n"


def test_rollback_command_writes_the_run_summary(
    site: Site, commits: Commits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command deploy.yml runs: the new commit's diagnosis, the outcome, what was not rolled back,
    and the evidence section (here without a management token, which it says)."""
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("AZURE_MANAGEMENT_TOKEN", raising=False)
    _live(site, commits.good)
    site.deploy(commits.crashing)
    assert site.verify(commits.crashing, timeout=5).outcome is not Outcome.VERIFIED

    status = run_rollback(
        root=commits.repository,
        url=site.url,
        new_commit=commits.crashing,
        previous=commits.good,
        app_name="app-backend-iac-dev",
        resource_group="rg-backend-iac-dev",
        timeout=30,
        deploy=site.deploy,
    )

    assert status == 0
    text = summary.read_text()
    assert f"### Deploy of {commits.crashing} failed the runtime gate" in text
    assert f"rolled back to {commits.good}: verified" in text
    assert "Not rolled back: the infrastructure" in text
    assert "AZURE_MANAGEMENT_TOKEN is not set" in text


# --- Evidence: bounded, redacted -------------------------------------------------------------------------


def test_evidence_lines_are_redacted() -> None:
    """Tokens, passwords and connection-string secrets never reach the summary."""
    from backend_iac.evidence import REDACTED, redact

    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmNkZWZnaCJ9.c2lnbmF0dXJlLXZhbHVl"
    cases = {
        f"token {jwt} seen": jwt,
        "Authorization: Bearer abcdefghijklmnop": "abcdefghijklmnop",
        "DATABASE_URL=postgresql://app:s3cr3t-pw@db.example:5432/app": "s3cr3t-pw",
        "Server=x;Password=hunter22;Database=y": "hunter22",
        "AccountKey=QUJDREVGR0hJSktMTU5PUA==;EndpointSuffix=core": "QUJDREVGR0hJSktMTU5PUA==",
        "client_secret: 'abc123def456'": "abc123def456",
        "https://x.blob.core.windows.net/c?sv=2024&sig=AbCdEf123%3D": "AbCdEf123%3D",
    }
    for line, secret in cases.items():
        redacted = redact(line)
        assert secret not in redacted, (line, redacted)
        assert REDACTED in redacted
    assert redact("Booting worker with pid: 42") == "Booting worker with pid: 42"


def test_evidence_is_bounded() -> None:
    """At most MAX_LINES lines of at most MAX_LINE_CHARS characters, the last ones, blank lines dropped."""
    from backend_iac.evidence import MAX_LINE_CHARS, MAX_LINES, tail

    lines = [f"line {n} " + "x" * 1000 for n in range(500)] + ["", "   "]
    kept = tail(lines)
    assert len(kept) == MAX_LINES
    assert kept[-1].startswith("line 499 ")
    assert all(len(line) <= MAX_LINE_CHARS for line in kept)


def test_deployment_log_and_container_log_shapes() -> None:
    """ARM's deployment log entries (properties.message) and a container log as text or as a zip."""
    import io

    from backend_iac.evidence import container_log_lines, deployment_log_lines, newest_deployment_id

    entries = {
        "value": [{"properties": {"message": "Running oryx build..."}}, {"properties": {"message": "Done."}}]
    }
    assert deployment_log_lines(entries) == ["Running oryx build...", "Done."]
    assert deployment_log_lines({"unexpected": 1}) == []
    listing = {
        "value": [
            {"name": "app/deployments/old", "properties": {"start_time": "2026-11-28T10:00:00Z"}},
            {"name": "app/deployments/new", "properties": {"start_time": "2026-11-29T10:00:00Z"}},
        ]
    }
    assert newest_deployment_id(listing) == "new"
    assert container_log_lines(b"a\nb\n") == ["a", "b"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("2026_11_29_default_docker.log", "ModuleNotFoundError: No module named 'x'\n")
    assert container_log_lines(buffer.getvalue()) == ["ModuleNotFoundError: No module named 'x'"]
