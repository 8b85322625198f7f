"""Pipeline: id-token where a job signs in, sign-in ids from variables, names from stack outputs, a
manual and confirmed destroy, a runtime gate after every deploy, and deploy jobs gated on the branch."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from backend_iac.doctor.findings import Finding, Severity
from backend_iac.doctor.repository import Repository
from backend_iac.doctor.workflows import (
    PULL_REQUEST_EVENTS,
    Job,
    JobRun,
    Login,
    Step,
    Workflow,
    as_text,
    effective_env,
    job_runs,
    login_of,
    narrowing_of,
    needs_id_token,
)

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_SHELL_VARIABLE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_STEP_OUTPUT = re.compile(r"\bsteps\.([A-Za-z0-9_-]+)\.outputs\.")
_JOB_OUTPUT = re.compile(r"\bneeds\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")
_ENV_VALUE = re.compile(r"\benv\.([A-Za-z0-9_]+)")
_AZ_DEPLOY = re.compile(r"\baz\s+webapp\s+(?:deploy|up|deployment\s+source\s+config-zip)\b")
_VERIFY = re.compile(r"\bbackend-iac\s+verify\b")
_PULUMI_DESTROY = re.compile(r"\bpulumi\s+destroy\b")
# Steps that build an artifact of another commit than the checked-out one: they need that commit's history.
_PACKAGE_OTHER_COMMIT = re.compile(r"\bbackend-iac\s+(?:rollback\b|package\b[^\n]*--ref\b)")
_STACK_OUTPUT = re.compile(r"\bpulumi\s+stack\s+output\b")


def _finding(code: str, severity: Severity, file: str, line: int | None, message: str, fix: str) -> Finding:
    return Finding(code, severity, "pipeline", file, line, message, fix)


def _grants_id_token(permissions: object) -> bool:
    if isinstance(permissions, str):
        return permissions == "write-all"
    if isinstance(permissions, dict):
        return as_text(permissions.get("id-token")) == "write"
    return False


def _permissions_line(workflow: Workflow, job: Job) -> int | None:
    if job.declares_permissions:
        return job.raw.line_of("permissions")
    if workflow.declares_permissions:
        return workflow.raw.line_of("permissions")
    return job.line


def _id_token(run: JobRun) -> Finding | None:
    """Each level (callers, then the job) that sets permissions must grant id-token: write; so must the top."""
    levels = [*run.callers, (run.workflow, run.job)]
    for depth, (workflow, job) in enumerate(levels):
        declared = (
            job.permissions
            if job.declares_permissions
            else workflow.permissions
            if workflow.declares_permissions
            else None
        )
        undeclared_at_top = declared is None and depth == 0
        if (declared is not None and not _grants_id_token(declared)) or undeclared_at_top:
            role = "job" if depth == len(levels) - 1 else "calling job"
            level = "job" if job.declares_permissions else "workflow"
            detail = (
                "sets no permissions, and GitHub's default token never includes id-token"
                if undeclared_at_top
                else f"has {level}-level permissions without id-token: write (job-level permissions replace "
                "the workflow's entirely)"
            )
            called = (
                f"; a called workflow's jobs get at most what the caller grants ({run.workflow.path})"
                if run.callers
                else ""
            )
            return _finding(
                "id-token-missing",
                "error",
                workflow.path,
                _permissions_line(workflow, job),
                f"{role} `{job.id}` in {workflow.path} signs in with GitHub's OIDC token but {detail}: the "
                f"sign-in fails before Entra sees it (no ACTIONS_ID_TOKEN_REQUEST_URL){called}",
                f"add `permissions: {{ id-token: write, contents: read }}` to job `{job.id}` (only to jobs "
                "that sign in)",
            )
    return None


def _classify(value: str | None, env: dict[str, str]) -> str:
    """missing | secret | literal | variable | derived."""
    if value is None or not value.strip():
        return "missing"
    value = value.strip()
    for _ in range(5):  # follow ${{ env.X }} to where X is set
        match = re.fullmatch(r"\$\{\{\s*env\.([A-Za-z0-9_]+)\s*\}\}", value)
        if match is None:
            break
        value = env.get(match.group(1), "").strip()
        if not value:
            return "missing"
    if "${{" not in value:
        return "literal"
    if "secrets." in value:
        return "secret"
    if "vars." in value:
        return "variable"
    return "derived"


def _login_inputs(login: Login) -> Iterator[Finding]:
    if login.kind == "az-cli":
        return
    env = effective_env(login.workflow, login.job, login.step)
    where = login.workflow.path
    for label, item in (
        ("client", login.client),
        ("tenant", login.tenant),
        ("subscription", login.subscription),
    ):
        if item is None:
            continue
        kind = _classify(item.value, env)
        what = f"{login.kind} in job `{login.job.id}` ({where})"
        if kind == "missing":
            yield _finding(
                "login-input-missing",
                "error",
                where,
                item.line,
                f"{what} has no {item.name}: the {label} id is required to exchange the OIDC token",
                f"set {item.name} from the repository variable, e.g. "
                f"`${{{{ vars.AZURE_{label.upper()}_ID }}}}`",
            )
        elif kind in ("secret", "literal"):
            source = "a secret" if kind == "secret" else f"a literal ({item.value!r})"
            yield _finding(
                "login-input-not-variable",
                "warning",
                where,
                item.line,
                f"{what} takes its {label} id ({item.name}) from {source}; these ids are not secrets and "
                "change when the stack is recreated",
                f"use a repository variable (`${{{{ vars.AZURE_{label.upper()}_ID }}}}`) set from the stack "
                "outputs (`pulumi stack output`)",
            )


@dataclass(frozen=True)
class _Trace:
    from_outputs: bool | None  # None: cannot tell (set at run time by a script)
    source: str


def _step_reads_outputs(step: Step) -> bool:
    return step.uses_action("pulumi/actions") or bool(step.run and _STACK_OUTPUT.search(step.run))


def _trace(value: str, workflow: Workflow, job: Job, step: Step | None, depth: int = 0) -> _Trace:
    """Where a name or URL handed to a deploy or gate step comes from."""
    value = value.strip().strip("\"'")
    if depth > 8:
        return _Trace(None, value)
    env = effective_env(workflow, job, step) if step is not None else {**workflow.env, **job.env}
    shell = _SHELL_VARIABLE.match(value)
    if shell:
        if shell.group(1) in env:
            return _trace(env[shell.group(1)], workflow, job, step, depth + 1)
        return _Trace(None, value)
    expressions = _EXPRESSION.findall(value)
    if not expressions:
        return _Trace(False, f"the literal {value!r}")
    for expression in expressions:
        if match := _STEP_OUTPUT.search(expression):
            source = next((s for s in job.steps if s.id == match.group(1)), None)
            if source is not None and _step_reads_outputs(source):
                return _Trace(True, f"step `{match.group(1)}`")
            return _Trace(False, f"step `{match.group(1)}`, which does not read the stack outputs")
        if match := _JOB_OUTPUT.search(expression):
            needed = workflow.jobs.get(match.group(1))
            output = as_text(needed.outputs.get(match.group(2))) if needed is not None else None
            if needed is None or output is None:
                return _Trace(False, f"needs.{match.group(1)}.outputs.{match.group(2)}, which is not defined")
            return _trace(output, workflow, needed, None, depth + 1)
        if (match := _ENV_VALUE.search(expression)) and match.group(1) in env:
            return _trace(env[match.group(1)], workflow, job, step, depth + 1)
        if "vars." in expression or "secrets." in expression or "inputs." in expression:
            return _Trace(False, f"`${{{{{expression.strip()}}}}}`, set by hand outside the stack")
    return _Trace(None, value)


def _arguments(run: str, options: tuple[str, ...]) -> str | None:
    """The value of the first of `options` in a shell command (continuation lines joined)."""
    for line in run.replace("\\\n", " ").splitlines():
        if not _AZ_DEPLOY.search(line):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            return None
        for index, word in enumerate(words):
            for option in options:
                if word == option and index + 1 < len(words):
                    return words[index + 1]
                if word.startswith(option + "="):
                    return word.split("=", 1)[1]
    return None


@dataclass(frozen=True)
class _Deploy:
    workflow: Workflow
    job: Job
    step: Step
    names: dict[str, str | None]  # what it is given: app name, resource group


def _deploys(workflow: Workflow) -> Iterator[_Deploy]:
    for job in workflow.jobs.values():
        for step in job.steps:
            if step.uses_action("azure/webapps-deploy"):
                yield _Deploy(workflow, job, step, {"app-name": as_text(step.inputs.get("app-name"))})
            elif step.run and _AZ_DEPLOY.search(step.run):
                yield _Deploy(
                    workflow,
                    job,
                    step,
                    {
                        "--name": _arguments(step.run, ("--name", "-n")),
                        "--resource-group": _arguments(step.run, ("--resource-group", "-g")),
                    },
                )


def _needs_closure(workflow: Workflow, job_id: str) -> set[str]:
    seen: set[str] = set()
    pending = [job_id]
    while pending:
        job = workflow.jobs.get(pending.pop())
        for needed in job.needs if job is not None else ():
            if needed not in seen:
                seen.add(needed)
                pending.append(needed)
    return seen


def _verify_steps(workflow: Workflow) -> Iterator[tuple[Job, Step]]:
    for job in workflow.jobs.values():
        for step in job.steps:
            if step.run and _VERIFY.search(step.run):
                yield job, step


def _deploy_findings(workflow: Workflow) -> Iterator[Finding]:
    verifies = list(_verify_steps(workflow))
    for deploy in _deploys(workflow):
        for option, value in deploy.names.items():
            trace = (
                _trace(value, workflow, deploy.job, deploy.step)
                if value is not None
                else _Trace(False, "nothing (the option is missing)")
            )
            if trace.from_outputs is False:
                yield _finding(
                    "deploy-name-not-from-outputs",
                    "error",
                    workflow.path,
                    deploy.step.line,
                    f"the deploy in job `{deploy.job.id}` takes {option} from {trace.source}, not from the "
                    "stack's outputs: after a rename or a re-create it deploys to the wrong app or none",
                    "read it from `pulumi stack output web_app_name` / `resource_group` (or the pulumi/actions "
                    "step's outputs), passed on through job outputs",
                )
        after = [
            (job, step)
            for job, step in verifies
            if (job.id == deploy.job.id and step.index > deploy.step.index)
            or deploy.job.id in _needs_closure(workflow, job.id)
        ]
        if not after:
            code = "gate-before-deploy" if verifies else "gate-missing"
            message = (
                "`backend-iac verify` runs in this workflow, but not after the deploy (it must be a later "
                "step of the same job, or in a job that needs the deploy job)"
                if verifies
                else "no step runs `backend-iac verify` after it: the workflow goes green when files "
                "were uploaded, not when the new commit serves"
            )
            yield _finding(
                code,
                "error",
                workflow.path,
                deploy.step.line,
                f"the deploy in job `{deploy.job.id}`: {message}",
                "add a job with `needs: [<deploy job>]` that runs `backend-iac verify --url <stack output url> "
                '--commit "$GITHUB_SHA"`',
            )
    for job, step in verifies:
        match = re.search(r"--url[= ]\s*(\S+)", (step.run or "").replace("\\\n", " "))
        if match is None:
            continue
        trace = _trace(match.group(1), workflow, job, step)
        if trace.from_outputs is False:
            yield _finding(
                "gate-url-not-from-outputs",
                "error",
                workflow.path,
                step.line,
                f"the runtime gate in job `{job.id}` checks the URL from {trace.source}, not from the stack's "
                "`url` output: it may verify another app than the one just deployed",
                "pass the `url` stack output through job outputs to the gate",
            )


def _destroy_steps(workflow: Workflow) -> Iterator[tuple[Job, Step]]:
    for job in workflow.jobs.values():
        for step in job.steps:
            pulumi_action_destroy = (
                step.uses_action("pulumi/actions") and as_text(step.inputs.get("command")) == "destroy"
            )
            if pulumi_action_destroy or (step.run and _PULUMI_DESTROY.search(step.run)):
                yield job, step


def _references_input(text: str, names: list[str]) -> bool:
    return any(re.search(rf"\binputs\.{re.escape(name)}\b", text) for name in names)


def _destroy_findings(workflow: Workflow) -> Iterator[Finding]:
    destroys = list(_destroy_steps(workflow))
    if not destroys:
        return
    events = set(workflow.triggers)
    if events != {"workflow_dispatch"}:
        others = ", ".join(sorted(events - {"workflow_dispatch"})) or "none"
        yield _finding(
            "destroy-not-manual",
            "error",
            workflow.path,
            workflow.triggers_line,
            f"{workflow.path} runs `pulumi destroy` and is triggered by {others}, not only by a person "
            "(workflow_dispatch)",
            "trigger it with `on: workflow_dispatch` and nothing else",
        )
    names = [str(name) for name in workflow.dispatch_inputs]
    for job, step in destroys:
        guards = [job.condition or "", step.condition or ""]
        earlier = [s for s in job.steps if s.index < step.index]
        earlier += [s for needed in _needs_closure(workflow, job.id) for s in workflow.jobs[needed].steps]
        confirmed = any(_references_input(guard, names) for guard in guards) or any(
            "exit" in (s.run or "")
            and _references_input(" ".join([*s.env.values(), s.run or "", s.condition or ""]), names)
            for s in earlier
        )
        if not confirmed:
            yield _finding(
                "destroy-unconfirmed",
                "error",
                workflow.path,
                step.line,
                f"`pulumi destroy` in job `{job.id}` runs without a typed confirmation: nothing compares a "
                "workflow_dispatch input before it",
                "add a required `confirm` input and stop before the destroy unless it equals the stack name "
                "(a job `if:` or an earlier step that exits 1)",
            )


def deploy_refs(repository: Repository) -> list[str]:
    """The refs a deploy may run from: the branches the deploy identity trusts (githubBranches), else main."""
    branches = list(repository.config.github_branches) if repository.config is not None else []
    return [f"refs/heads/{branch}" for branch in branches or [repository.default_branch]]


def _ungated(run: JobRun, refs: list[str]) -> Finding | None:
    """A job that signs in and can run for something other than a pull request must be gated on the ref.

    Only pull-request runs present the `pull_request` subject, which no deploying credential trusts; any
    other run (push, workflow_dispatch from any branch, schedule...) signs in with what the deploy identity
    trusts, and an `environment:` subject does not name the branch at all. So the job's own `if:` (or its
    caller's) must say `github.ref == '<deploy branch>'`, joined with `&&` only.
    """
    narrowed = narrowing_of(run.conditions)
    events = [
        event
        for event in run.triggers
        if event not in PULL_REQUEST_EVENTS
        and event not in narrowed.excluded_events
        and (narrowed.events is None or event in narrowed.events)
    ]
    if not events or narrowed.ref in refs:
        return None
    allowed = " or ".join(f"`github.ref == '{ref}'`" for ref in refs)
    seen = f"gated on {narrowed.ref}" if narrowed.ref else "not gated on the branch"
    return _finding(
        "deploy-ungated",
        "error",
        run.workflow.path,
        run.job.line,
        f"job `{run.job.id}` in {run.workflow.path} signs in for {', '.join(sorted(events))} and is {seen}: a "
        "run from any other branch (workflow_dispatch from a feature branch, a push the filters let through) "
        "gets the same credentials and can deploy; an `environment:` subject does not name the branch",
        f"add `if: github.ref == '{refs[0]}'` to job `{run.job.id}` (allowed: {allowed}; join other conditions "
        "with &&), and restrict the environment's deployment branches to the same (docs/deploy.md)",
    )


def _history_findings(workflow: Workflow) -> Iterator[Finding]:
    """A job that rebuilds another commit (`rollback`, `package --ref`) needs a checkout with full history:
    actions/checkout fetches one commit by default (`fetch-depth: 1`; 0 fetches all history)."""
    for job in workflow.jobs.values():
        rebuild = next(
            (
                step
                for step in job.steps
                if step.run and _PACKAGE_OTHER_COMMIT.search(step.run.replace("\\\n", " "))
            ),
            None,
        )
        if rebuild is None:
            continue
        checkout = next((step for step in job.steps if step.uses_action("actions/checkout")), None)
        depth = as_text(checkout.inputs.get("fetch-depth")) if checkout is not None else None
        if depth == "0":
            continue
        seen = (
            "has no actions/checkout step"
            if checkout is None
            else f"checks out with fetch-depth {depth or '1 (the default)'}"
        )
        yield _finding(
            "rollback-history-missing",
            "error",
            workflow.path,
            checkout.line if checkout is not None else job.line,
            f"job `{job.id}` rebuilds a previous commit's artifact (`backend-iac package --ref`) but {seen}: "
            "the commit that was serving is not in the checkout, so the rollback fails exactly when needed",
            f"give job `{job.id}`'s actions/checkout `fetch-depth: 0` (all history)",
        )


def check(repository: Repository) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[Finding] = set()

    def add(finding: Finding | None) -> None:
        # A job reached through several callers, or a step seen once per run, reports once.
        if finding is not None and finding not in seen:
            seen.add(finding)
            findings.append(finding)

    refs = deploy_refs(repository)
    for run in job_runs(repository.workflows):
        signs_in = False
        for step in run.job.steps:
            login = login_of(run.workflow, run.job, step)
            if login is not None:
                signs_in = True
                for finding in _login_inputs(login):
                    add(finding)
            signs_in = signs_in or needs_id_token(step)
        if signs_in:
            add(_id_token(run))
            add(_ungated(run, refs))

    deploys = False
    for workflow in repository.workflows:
        deploys = deploys or any(True for _ in _deploys(workflow))
        for finding in _deploy_findings(workflow):
            add(finding)
        for finding in _destroy_findings(workflow):
            add(finding)
        for finding in _history_findings(workflow):
            add(finding)
    if repository.workflows and not deploys:
        add(
            _finding(
                "deploy-missing",
                "warning",
                ".github/workflows",
                None,
                "no workflow deploys the service (azure/webapps-deploy or `az webapp deploy`): the stack "
                "can be created but nothing ships code to it",
                "deploy the `backend-iac package` zip after `pulumi up`, then gate it with `backend-iac verify`",
            )
        )
    if not repository.workflows:
        add(
            _finding(
                "workflows-missing",
                "warning",
                ".github/workflows",
                None,
                "no workflow files: nothing signs in, deploys or verifies, so no pipeline check could run",
                "add ci.yml, deploy.yml and destroy.yml (see the README's delivery section)",
            )
        )
    return findings
