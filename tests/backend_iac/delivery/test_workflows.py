"""The delivery contract, read from .github/workflows: static security audit, schema, and the shape the
issue asks for (triggers, permissions, pins, credentials, time limits, job order, concurrency)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backend_iac.delivery.commands import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Actions that sign in to Azure or to a Pulumi backend by OIDC, and therefore need an id-token.
LOGIN_ACTIONS = ("azure/login@", "pulumi/auth-actions@")


def load(name: str) -> dict[str, Any]:
    """A workflow as a dict; YAML 1.1 reads the key `on` as True, so it is put back under "on"."""
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return load(name)["jobs"]  # type: ignore[no-any-return]


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_name, job) for path in WORKFLOW_FILES for job_name, job in jobs(path.name).items()
    ]


def logs_in(job: dict[str, Any]) -> bool:
    """A job logs in when it uses a login action or runs Pulumi's Azure provider with ARM_USE_OIDC."""
    uses = [str(step.get("uses", "")) for step in job.get("steps", [])]
    return (
        any(use.startswith(LOGIN_ACTIONS) for use in uses) or job.get("env", {}).get("ARM_USE_OIDC") == "true"
    )


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed (dev dependency group)"
    return found


def test_the_three_workflows_exist() -> None:
    """ci.yml, deploy.yml and destroy.yml, and nothing else that could run unchecked."""
    assert [path.name for path in WORKFLOW_FILES] == ["ci.yml", "deploy.yml", "destroy.yml"]
    assert not list(WORKFLOWS.glob("*.yaml"))


def test_zizmor_finds_nothing_at_medium_or_higher() -> None:
    """zizmor, offline, reports zero findings of medium severity or more."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json", str(WORKFLOWS)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    findings = json.loads(result.stdout or "[]")
    summary = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"]) for f in findings
    ]
    assert findings == [], summary
    assert result.returncode == 0, result.stderr


def test_every_workflow_matches_the_github_workflow_schema() -> None:
    """check-jsonschema validates each workflow against its bundled GitHub workflow schema (no download)."""
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOW_FILES)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_on_pull_requests_and_pushes() -> None:
    """ci: every pull request and every push to main."""
    triggers = load("ci.yml")["on"]
    assert set(triggers) == {"pull_request", "push"}


def test_ci_lints_types_tests_and_plans() -> None:
    """ci runs ruff, mypy, `make test`, zizmor and the offline plan written to the job summary."""
    runs = "\n".join(str(step.get("run", "")) for job in jobs("ci.yml").values() for step in job["steps"])
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "make test",
        "zizmor --offline",
        "backend-iac plan",
    ):
        assert command in runs, command
    assert "GITHUB_STEP_SUMMARY" in runs


def test_ci_previews_same_repository_pull_requests_and_comments() -> None:
    """The preview job runs only for same-repository pull requests, and posts to the pull request."""
    preview = jobs("ci.yml")["preview"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["if"]
    step = next(step for step in preview["steps"] if str(step.get("uses", "")).startswith("pulumi/actions@"))
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert preview["permissions"]["pull-requests"] == "write"


def test_fork_pull_requests_get_the_offline_plan_and_are_told_so() -> None:
    """Fork pull requests (no id-token) see the offline plan with a note saying why, instead of a failure."""
    plan = jobs("ci.yml")["plan"]
    assert "if" not in plan
    text = (WORKFLOWS / "ci.yml").read_text()
    assert "github.event.pull_request.head.repo.full_name != github.repository" in text
    assert "comes from a fork" in text


def test_deploy_runs_on_main_and_by_hand_one_at_a_time() -> None:
    """deploy: push to main and workflow_dispatch; one deploy at a time, never cancelled half-way."""
    workflow = load("deploy.yml")
    assert set(workflow["on"]) == {"push", "workflow_dispatch"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_deploy_order_is_test_up_deploy_gate() -> None:
    """deploy needs test and up; the gate runs after the deploy; up needs test."""
    deploy_jobs = jobs("deploy.yml")
    assert set(deploy_jobs) == {"test", "up", "deploy", "gate", "rollback"}
    assert deploy_jobs["up"]["needs"] == "test"
    assert {"test", "up"} <= set(deploy_jobs["deploy"]["needs"])
    assert "deploy" in deploy_jobs["gate"]["needs"]
    assert any("make test" in str(step.get("run", "")) for step in deploy_jobs["test"]["steps"])


def test_deploy_targets_come_from_stack_outputs() -> None:
    """App name, resource group and URL come from `pulumi up`'s outputs, never literals."""
    deploy_jobs = jobs("deploy.yml")
    outputs = deploy_jobs["up"]["outputs"]
    assert set(outputs) == {"web_app_name", "resource_group", "url", "api_identifier_uri"}
    for name, expression in outputs.items():
        assert expression == f"${{{{ steps.up.outputs.{name} }}}}"
    stack_source = (REPO_ROOT / "stack" / "program.py").read_text()
    for name in outputs:
        assert f'"{name}"' in stack_source, f"the stack exports no {name!r}"
    deploy_step = next(
        step for step in deploy_jobs["deploy"]["steps"] if "az webapp deploy" in str(step.get("run"))
    )
    assert deploy_step["env"]["APP_NAME"] == "${{ needs.up.outputs.web_app_name }}"
    assert deploy_step["env"]["RESOURCE_GROUP"] == "${{ needs.up.outputs.resource_group }}"


def test_deploying_jobs_run_in_an_environment_the_stack_trusts() -> None:
    """up and deploy sign in from the `production` environment, a subject the dev stack declares."""
    deploy_jobs = jobs("deploy.yml")
    assert deploy_jobs["up"]["environment"] == "production"
    assert deploy_jobs["deploy"]["environment"]["name"] == "production"
    assert deploy_jobs["deploy"]["environment"]["url"] == "${{ needs.up.outputs.url }}"
    stack_config = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert "production" in stack_config["backend-iac:githubEnvironments"]


def test_gate_verifies_the_pushed_commit_with_the_log_stream_names() -> None:
    """The gate runs `backend-iac verify` for $GITHUB_SHA at the stack's URL, naming app and group."""
    gate = jobs("deploy.yml")["gate"]
    step = next(step for step in gate["steps"] if "backend-iac verify" in str(step.get("run", "")))
    assert '--commit "$GITHUB_SHA"' in step["run"]
    assert step["env"]["URL"] == "${{ needs.up.outputs.url }}"
    assert "--app-name" in step["run"]
    assert "--resource-group" in step["run"]


def test_gate_calls_the_api_with_the_deploy_identitys_app_only_token() -> None:
    """The gate signs in as the deploy identity (OIDC, its environment's subject) and hands verify an
    `az account get-access-token --resource <identifier URI>` token command; the token is never echoed."""
    gate = jobs("deploy.yml")["gate"]
    assert gate["permissions"] == {"contents": "read", "id-token": "write"}
    assert gate["environment"] == "production"
    steps = gate["steps"]
    login = next(i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("azure/login@"))
    assert steps[login]["with"]["client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
    verify = next(i for i, step in enumerate(steps) if "backend-iac verify" in str(step.get("run", "")))
    assert login < verify
    step = steps[verify]
    assert step["env"]["API_IDENTIFIER_URI"] == "${{ needs.up.outputs.api_identifier_uri }}"
    assert "--token-command" in step["run"]
    assert "az account get-access-token --resource $API_IDENTIFIER_URI" in step["run"]
    assert "--query accessToken --output tsv" in step["run"]
    assert "echo" not in step["run"]


def test_deploy_signs_in_again_just_before_the_zip_deploy() -> None:
    """The deploy job signs in after building the artifact, right before `az webapp deploy` (AADSTS700024)."""
    steps = jobs("deploy.yml")["deploy"]["steps"]
    login = next(i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("azure/login@"))
    package = next(i for i, step in enumerate(steps) if "backend-iac package" in str(step.get("run", "")))
    deploy = next(i for i, step in enumerate(steps) if "az webapp deploy" in str(step.get("run", "")))
    assert package < login < deploy
    assert deploy == login + 1


def test_destroy_is_manual_only_with_a_required_confirmation() -> None:
    """destroy: workflow_dispatch only, a required confirmation that must equal the stack name first."""
    workflow = load("destroy.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["confirm"]["required"] is True
    assert inputs["stack"]["required"] is True
    (job,) = workflow["jobs"].values()
    first = job["steps"][0]
    assert first["env"]["CONFIRM"] == "${{ inputs.confirm }}"
    assert '"$CONFIRM" != "$STACK"' in first["run"]
    assert job["env"]["STACK"] == "${{ inputs.stack }}"


def test_destroy_proves_nothing_billable_is_left() -> None:
    """After `pulumi destroy`, the resource group is gone or empty, or the job fails."""
    (job,) = jobs("destroy.yml").values()
    runs = [str(step.get("run", "")) for step in job["steps"]]
    destroy = next(i for i, run in enumerate(runs) if "pulumi destroy" in run)
    proof = next(i for i, run in enumerate(runs) if "az resource list" in run)
    assert destroy < proof
    assert "az group exists" in runs[proof]
    assert "exit 1" in runs[proof]


@pytest.mark.parametrize(
    ("workflow", "job_name", "job"), all_jobs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_job_is_bounded_pinned_and_least_privileged(
    workflow: str, job_name: str, job: dict[str, Any]
) -> None:
    """Each job: a timeout, explicit permissions, id-token only where it logs in, pinned actions with a
    version comment, and checkouts that do not keep the token."""
    assert isinstance(job.get("timeout-minutes"), int), "timeout-minutes"
    permissions = job["permissions"]
    assert permissions.get("id-token") == ("write" if logs_in(job) else None)
    assert set(permissions.values()) <= {"read", "write"}
    assert permissions.get("contents") == "read"
    text = (WORKFLOWS / workflow).read_text()
    for step in job["steps"]:
        if "uses" not in step:
            continue
        assert PINNED.match(step["uses"]), step["uses"]
        assert re.search(re.escape(step["uses"]) + r" # v\d+(\.\d+)*\n", text), (
            f"{step['uses']}: no version comment"
        )
        if step["uses"].startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_workflows_grant_nothing_by_default(path: Path) -> None:
    """Top-level permissions are empty; each job asks for what it needs."""
    assert load(path.name)["permissions"] == {}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_azure_identity_comes_from_variables_not_secrets(path: Path) -> None:
    """No long-lived secret: client, tenant and subscription ids are repository variables."""
    text = path.read_text()
    assert "secrets." not in text
    for name in ("AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"):
        assert f"vars.{name}" in text


# --- Who can obtain what (docs/stack.md, "Who can do what") ------------------------------------------------

PULL_REQUEST_TRIGGERS = {
    "pull_request",
    "pull_request_target",
    "pull_request_review",
    "pull_request_review_comment",
}
MAIN_GATE = "github.ref == 'refs/heads/main'"


def runs_pull_request_code(workflow: str, job: dict[str, Any]) -> bool:
    """A job of a workflow a pull request triggers, unless its `if:` excludes pull requests."""
    triggers = set(load(workflow)["on"])
    condition = str(job.get("if", ""))
    return bool(triggers & PULL_REQUEST_TRIGGERS) and "github.event_name != 'pull_request'" not in condition


def pulumi_token_requests(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step.get("with", {})
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("pulumi/auth-actions@")
    ]


def azure_client_ids(job: dict[str, Any]) -> set[str]:
    """Every client id the job can sign in to Azure with (azure/login and the provider's ARM_CLIENT_ID)."""
    ids = {str(job.get("env", {}).get("ARM_CLIENT_ID"))} if logs_in(job) and "env" in job else set()
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("azure/login@"):
            ids.add(str(step["with"]["client-id"]))
    return {client for client in ids if client != "None"}


def test_no_workflow_a_pull_request_triggers_can_deploy() -> None:
    """deploy.yml and destroy.yml are never triggered by a pull request event."""
    for name in ("deploy.yml", "destroy.yml"):
        assert not set(load(name)["on"]) & PULL_REQUEST_TRIGGERS, name


@pytest.mark.parametrize(
    ("workflow", "job_name", "job"), all_jobs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_pull_request_code_gets_no_credential_that_writes_decrypts_or_deploys(
    workflow: str, job_name: str, job: dict[str, Any]
) -> None:
    """A job running pull-request code signs in, if at all, only as the Reader preview identity with a
    Pulumi Cloud *team* token (never the organization token: admin only by OIDC), never on a self-managed
    backend (its preview would need the decrypt key), never in an environment the deploy identity trusts."""
    if not runs_pull_request_code(workflow, job):
        return
    assert "environment" not in job
    assert "vars.AZURE_CLIENT_ID" not in str(job)
    assert azure_client_ids(job) <= {"${{ vars.AZURE_PREVIEW_CLIENT_ID }}"}
    if job.get("permissions", {}).get("id-token") != "write":
        assert not logs_in(job)
        return
    condition = " ".join(str(job["if"]).split())
    assert "github.event_name == 'pull_request'" in condition
    assert "vars.PULUMI_BACKEND_URL == ''" in condition, "no live preview on a self-managed backend"
    assert "vars.PULUMI_PREVIEW_TEAM != ''" in condition
    assert "PULUMI_BACKEND_URL" not in str(job.get("env", {}))
    for request in pulumi_token_requests(job):
        assert request["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
        assert request["scope"] == "team:${{ vars.PULUMI_PREVIEW_TEAM }}"
    for step in job["steps"]:
        if str(step.get("uses", "")).startswith("pulumi/actions@"):
            assert step["with"]["command"] == "preview"
            assert "cloud-url" not in step["with"]
        assert "pulumi up" not in str(step.get("run", ""))
        assert "az webapp" not in str(step.get("run", ""))


@pytest.mark.parametrize(
    ("workflow", "job_name", "job"), all_jobs(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_job_that_signs_in_outside_pull_requests_is_gated_on_main(
    workflow: str, job_name: str, job: dict[str, Any]
) -> None:
    """Whatever the trigger (workflow_dispatch runs from any branch), a job that can sign in on a
    non-pull-request run is gated on main by its own `if:`, joined with && only."""
    if not logs_in(job) or (
        runs_pull_request_code(workflow, job) and "pull_request" in str(job.get("if", ""))
    ):
        return
    condition = str(job.get("if", ""))
    assert MAIN_GATE in condition, f"{workflow} job {job_name} signs in without `if: {MAIN_GATE}`"
    assert "||" not in condition


def test_the_deploy_identity_signs_in_only_in_deploy_and_destroy() -> None:
    """vars.AZURE_CLIENT_ID (Contributor) and the organization token appear only in gated deploy jobs."""
    for workflow, job_name, job in all_jobs():
        deploys = "vars.AZURE_CLIENT_ID" in str(job) or any(
            r.get("requested-token-type") == "urn:pulumi:token-type:access_token:organization"
            for r in pulumi_token_requests(job)
        )
        if deploys:
            assert workflow in ("deploy.yml", "destroy.yml"), (workflow, job_name)
            assert MAIN_GATE in str(job.get("if", "")), (workflow, job_name)


def test_ci_says_why_when_no_live_preview_runs() -> None:
    """The offline plan's summary names each reason the live preview does not run."""
    text = (WORKFLOWS / "ci.yml").read_text()
    assert "self-managed state backend" in text
    assert "PULUMI_PREVIEW_TEAM variable is unset" in text


# --- Rollback (docs/deploy.md, "How a deploy works") ----------------------------------------------------


def test_deploy_records_the_serving_commit_before_the_zip_deploy() -> None:
    """`backend-iac serving` runs before `az webapp deploy`, never fails the job, and its commit is the
    deploy job's `previous` output."""
    deploy = jobs("deploy.yml")["deploy"]
    runs = [str(step.get("run", "")) for step in deploy["steps"]]
    recorded = next(i for i, run in enumerate(runs) if "backend-iac serving" in run)
    zip_deploy = next(i for i, run in enumerate(runs) if "az webapp deploy" in run)
    assert recorded < zip_deploy
    step = deploy["steps"][recorded]
    assert step["id"] == "serving"
    assert step["env"]["URL"] == "${{ needs.up.outputs.url }}"
    assert "|| echo" in step["run"], "nothing serving (a first deploy) must not fail the deploy"
    assert deploy["outputs"]["previous"] == "${{ steps.serving.outputs.commit }}"


def test_rollback_runs_only_when_the_gate_fails_and_uses_the_recorded_commit() -> None:
    """The rollback job: after the gate, only on its failure, on main, with the recorded commit."""
    rollback = jobs("deploy.yml")["rollback"]
    assert set(rollback["needs"]) == {"up", "deploy", "gate"}
    condition = rollback["if"]
    assert "failure()" in condition
    assert "needs.gate.result == 'failure'" in condition
    assert MAIN_GATE in condition
    assert "||" not in condition
    step = next(step for step in rollback["steps"] if "backend-iac rollback" in str(step.get("run", "")))
    assert step["env"]["PREVIOUS"] == "${{ needs.deploy.outputs.previous }}"
    assert '--previous "$PREVIOUS"' in step["run"]
    assert '--commit "$GITHUB_SHA"' in step["run"]
    for name in ("url", "web_app_name", "resource_group"):
        assert f"needs.up.outputs.{name}" in str(step["env"])


def test_rollback_keeps_least_privilege_and_the_full_history() -> None:
    """contents: read and id-token: write only; the deploy identity in `production`; full history for
    `package --ref`; the management token masked, never written to the environment file."""
    rollback = jobs("deploy.yml")["rollback"]
    assert rollback["permissions"] == {"contents": "read", "id-token": "write"}
    assert rollback["environment"] == "production"
    checkout = next(s for s in rollback["steps"] if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert checkout["with"]["persist-credentials"] is False
    login = next(s for s in rollback["steps"] if str(s.get("uses", "")).startswith("azure/login@"))
    assert login["with"]["client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
    run = next(str(s["run"]) for s in rollback["steps"] if "backend-iac rollback" in str(s.get("run", "")))
    assert "::add-mask::$AZURE_MANAGEMENT_TOKEN" in run
    assert "GITHUB_ENV" not in run
