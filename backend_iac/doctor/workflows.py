"""The GitHub Actions workflows as the doctor sees them: jobs, steps, Azure sign-ins, OIDC subjects.

A job's OIDC subject (the token's `sub` claim, which Entra compares literally with a federated
credential's subject) follows from the workflow's triggers and the job's `environment:`:

- a job with `environment: E` presents `repo:O/R:environment:E`, whatever the event;
- otherwise pull_request events present `repo:O/R:pull_request`;
- a push to branch B presents `repo:O/R:ref:refs/heads/B`, a tag T `repo:O/R:ref:refs/tags/T`;
- `repo:O/R` is GitHub's rendering of the repository: with immutable subject claims it carries ids
  (`repo:O@123/R@456`), which the stack config's githubSubjectPrefix supplies;
- workflow_dispatch runs on the branch it is dispatched from (assumed: the default branch), schedule
  and most other events on the default branch.

Jobs of a reusable workflow (`uses: ./.github/workflows/x.yml`) run with their caller's event and ref.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from backend_iac.doctor.documents import MarkedDict, MarkedList, load_mapping, relative
from stack.github_subjects import subject_prefix_for

WORKFLOWS_DIR: Final = Path(".github") / "workflows"
DEFAULT_BRANCH: Final = "main"

PULL_REQUEST_EVENTS: Final = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
# Events whose ref is a tag or a merge-queue branch GitHub names at run time: no exact subject exists.
_UNKNOWN_REF_EVENTS: Final[Mapping[str, str]] = {
    "release": "refs/tags/*",
    "create": "refs/**",
    "delete": "refs/**",
    "merge_group": "refs/heads/gh-readonly-queue/**",
}
_GLOB_CHARACTERS: Final = frozenset("*?[]!+")

LoginKind = Literal["azure/login", "pulumi", "az-cli"]


def as_text(value: Any) -> str | None:
    """A scalar as the workflow runner sees it (YAML true -> "true"); None for mappings and lists."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mapping(value: Any) -> MarkedDict:
    return value if isinstance(value, MarkedDict) else MarkedDict()


def _line(container: Any, key: Any) -> int | None:
    return container.line_of(key) if isinstance(container, MarkedDict) else None


def _string_env(value: Any) -> dict[str, str]:
    return {str(k): text for k, v in _mapping(value).items() if (text := as_text(v)) is not None}


@dataclass(frozen=True)
class Step:
    index: int
    line: int | None
    raw: MarkedDict
    env: Mapping[str, str]

    @property
    def uses(self) -> str | None:
        return as_text(self.raw.get("uses"))

    @property
    def run(self) -> str | None:
        return as_text(self.raw.get("run"))

    @property
    def id(self) -> str | None:
        return as_text(self.raw.get("id"))

    @property
    def condition(self) -> str | None:
        return as_text(self.raw.get("if"))

    @property
    def inputs(self) -> MarkedDict:
        return _mapping(self.raw.get("with"))

    def uses_action(self, action: str) -> bool:
        """True for `uses: <action>@<ref>`, compared case-insensitively as GitHub resolves it."""
        uses = self.uses
        return uses is not None and uses.split("@", 1)[0].lower() == action.lower()


@dataclass(frozen=True)
class Job:
    id: str
    line: int | None
    raw: MarkedDict
    steps: tuple[Step, ...]
    env: Mapping[str, str]

    @property
    def needs(self) -> tuple[str, ...]:
        needs = self.raw.get("needs")
        if isinstance(needs, str):
            return (needs,)
        return tuple(str(n) for n in needs) if isinstance(needs, list) else ()

    @property
    def condition(self) -> str | None:
        return as_text(self.raw.get("if"))

    @property
    def uses(self) -> str | None:
        """The reusable workflow this job calls, if it is a caller job."""
        return as_text(self.raw.get("uses"))

    @property
    def environment(self) -> str | None:
        environment = self.raw.get("environment")
        if isinstance(environment, dict):
            return as_text(environment.get("name"))
        return as_text(environment)

    @property
    def environment_line(self) -> int | None:
        return _line(self.raw, "environment")

    @property
    def permissions(self) -> Any:
        return self.raw.get("permissions")

    @property
    def declares_permissions(self) -> bool:
        return "permissions" in self.raw

    @property
    def outputs(self) -> MarkedDict:
        return _mapping(self.raw.get("outputs"))


@dataclass(frozen=True)
class Workflow:
    path: str  # relative to the repository root
    raw: MarkedDict
    jobs: Mapping[str, Job]

    @property
    def triggers(self) -> dict[str, Any]:
        """`on:` normalised to event -> its settings (None when it has none).

        `on` may be a string, a list or a map; YAML 1.1 reads an unquoted `on` key as the boolean True.
        """
        on = self.raw.get("on", self.raw.get(True))
        if isinstance(on, str):
            return {on: None}
        if isinstance(on, list):
            return {str(event): None for event in on}
        if isinstance(on, dict):
            return {str(event): settings for event, settings in on.items()}
        return {}

    @property
    def triggers_line(self) -> int | None:
        return self.raw.line_of("on") if "on" in self.raw else self.raw.line_of(True)

    @property
    def env(self) -> Mapping[str, str]:
        return _string_env(self.raw.get("env"))

    @property
    def permissions(self) -> Any:
        return self.raw.get("permissions")

    @property
    def declares_permissions(self) -> bool:
        return "permissions" in self.raw

    @property
    def dispatch_inputs(self) -> MarkedDict:
        return _mapping(_mapping(self.triggers.get("workflow_dispatch")).get("inputs"))


def read_workflow(root: Path, path: Path) -> Workflow:
    raw = load_mapping(root, path)
    jobs: dict[str, Job] = {}
    jobs_raw = _mapping(raw.get("jobs"))
    for job_id, job_raw in jobs_raw.items():
        job_map = _mapping(job_raw)
        steps_raw = job_map.get("steps")
        steps: list[Step] = []
        if isinstance(steps_raw, MarkedList):
            for index, (step_raw, line) in enumerate(zip(steps_raw, steps_raw.item_lines, strict=True)):
                step_map = _mapping(step_raw)
                steps.append(Step(index, line, step_map, _string_env(step_map.get("env"))))
        jobs[str(job_id)] = Job(
            str(job_id),
            jobs_raw.line_of(job_id),
            job_map,
            tuple(steps),
            _string_env(job_map.get("env")),
        )
    return Workflow(relative(root, path), raw, jobs)


def read_workflows(root: Path) -> list[Workflow]:
    """Every workflow file, sorted by path; DoctorInputError on the first malformed one."""
    directory = root / WORKFLOWS_DIR
    if not directory.is_dir():
        return []
    paths = sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    return [read_workflow(root, path) for path in paths]


# --- Azure sign-ins -------------------------------------------------------------------------------

_PULUMI_COMMAND = re.compile(r"(?:^|[\s;&|(])pulumi\s+(?!version\b|about\b|plugin\b)[a-z]", re.MULTILINE)
_AZ_FEDERATED_LOGIN = re.compile(r"\baz\s+login\b[^\n]*--federated-token")


@dataclass(frozen=True)
class LoginInput:
    """One of the three ids a sign-in needs: the expression it is set from, and where."""

    name: str  # as written: client-id, ARM_CLIENT_ID...
    value: str | None
    line: int | None


@dataclass(frozen=True)
class Login:
    """A step that signs in to Azure with GitHub's OIDC token."""

    workflow: Workflow
    job: Job
    step: Step
    kind: LoginKind
    client: LoginInput
    tenant: LoginInput
    subscription: LoginInput | None  # None: the sign-in does not need one (allow-no-subscriptions)

    @property
    def line(self) -> int | None:
        return self.step.line


def effective_env(workflow: Workflow, job: Job, step: Step) -> dict[str, str]:
    return {**workflow.env, **job.env, **step.env}


def _env_input(name: str, workflow: Workflow, job: Job, step: Step) -> LoginInput:
    for container, raw in ((step.env, step.raw), (job.env, job.raw), (workflow.env, workflow.raw)):
        if name in container:
            return LoginInput(name, container[name], _line(raw.get("env"), name))
    return LoginInput(name, None, step.line)


def login_of(workflow: Workflow, job: Job, step: Step) -> Login | None:
    """The Azure sign-in this step performs, if any."""
    if step.uses_action("azure/login"):
        inputs = step.inputs

        def read(name: str) -> LoginInput:
            return LoginInput(name, as_text(inputs.get(name)), _line(inputs, name) or step.line)

        no_subscription = (as_text(inputs.get("allow-no-subscriptions")) or "").lower() == "true"
        return Login(
            workflow,
            job,
            step,
            "azure/login",
            read("client-id"),
            read("tenant-id"),
            None if no_subscription else read("subscription-id"),
        )
    env = effective_env(workflow, job, step)
    runs_pulumi = (step.uses_action("pulumi/actions") and "command" in step.inputs) or bool(
        step.run and _PULUMI_COMMAND.search(step.run)
    )
    if runs_pulumi and env.get("ARM_USE_OIDC", "").lower() == "true":
        return Login(
            workflow,
            job,
            step,
            "pulumi",
            _env_input("ARM_CLIENT_ID", workflow, job, step),
            _env_input("ARM_TENANT_ID", workflow, job, step),
            _env_input("ARM_SUBSCRIPTION_ID", workflow, job, step),
        )
    if step.run and _AZ_FEDERATED_LOGIN.search(step.run):
        unknown = LoginInput("--username", "(in the az login command line)", step.line)
        return Login(workflow, job, step, "az-cli", unknown, unknown, None)
    return None


def needs_id_token(step: Step) -> bool:
    """Steps other than Azure sign-ins that request GitHub's OIDC token (Pulumi Cloud's token exchange)."""
    return step.uses_action("pulumi/auth-actions")


# --- Where jobs run: reusable workflows run in their caller's context --------------------------------


@dataclass(frozen=True)
class JobRun:
    """A job as it runs: its own definition, and the trigger context of the workflow that started it."""

    workflow: Workflow  # where the job is defined
    job: Job
    trigger_workflow: Workflow  # whose `on:` started the run (the outermost caller)
    triggers: Mapping[str, Any]
    conditions: tuple[str, ...]  # `if:` of the caller jobs and of the job itself
    callers: tuple[tuple[Workflow, Job], ...] = field(default=())  # outermost first


def _local_workflow(uses: str) -> str | None:
    if uses.startswith("./"):
        return uses.removeprefix("./").split("@", 1)[0]
    return None


def job_runs(workflows: Sequence[Workflow]) -> Iterator[JobRun]:
    """Every (job, trigger context) pair: direct jobs, and called jobs once per local caller."""
    by_path = {workflow.path: workflow for workflow in workflows}

    def expand(
        workflow: Workflow,
        trigger_workflow: Workflow,
        triggers: Mapping[str, Any],
        conditions: tuple[str, ...],
        callers: tuple[tuple[Workflow, Job], ...],
    ) -> Iterator[JobRun]:
        for job in workflow.jobs.values():
            job_conditions = conditions + ((job.condition,) if job.condition else ())
            called = _local_workflow(job.uses or "")
            if called is not None:
                callee = by_path.get(called)
                if (
                    callee is not None
                    and len(callers) < 10
                    and callee.path not in {w.path for w, _ in callers}
                ):
                    yield from expand(
                        callee, trigger_workflow, triggers, job_conditions, (*callers, (workflow, job))
                    )
                continue
            yield JobRun(workflow, job, trigger_workflow, triggers, job_conditions, callers)

    for workflow in workflows:
        triggers = {event: s for event, s in workflow.triggers.items() if event != "workflow_call"}
        if triggers:
            yield from expand(workflow, workflow, triggers, (), ())


# --- Subjects ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresentedSubject:
    """What a job's token carries for one trigger: an exact subject, or a pattern no credential can match."""

    event: str
    subject: str | None  # exact, or None when only `pattern` is known
    pattern: str | None = None  # e.g. "repo:O/R:ref:refs/heads/release/*" (glob filters, unknown refs)
    assumption: str | None = None  # what the doctor had to assume (the branch a dispatch runs from)


def is_glob(pattern: str) -> bool:
    return any(character in _GLOB_CHARACTERS for character in pattern)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter globs: `**` crosses '/', `*` does not; everything else is literal here."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append(".?")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class _Narrowing:
    """What simple `if:` conditions say about the event and the ref (only `&&`-joined equalities)."""

    events: frozenset[str] | None = None
    excluded_events: frozenset[str] = frozenset()
    ref: str | None = None


_EVENT_TEST = re.compile(r"github\.event_name\s*(==|!=)\s*'([^']+)'")
_REF_TEST = re.compile(r"github\.ref\s*==\s*'([^']+)'")
_REF_NAME_TEST = re.compile(r"github\.ref_name\s*==\s*'([^']+)'")


def narrowing_of(conditions: Sequence[str]) -> _Narrowing:
    events: set[str] | None = None
    excluded: set[str] = set()
    ref: str | None = None
    for condition in conditions:
        if "||" in condition or "!(" in condition.replace(" ", ""):
            continue  # a disjunction or negation: too much logic to follow, assume it may run
        for operator, event in _EVENT_TEST.findall(condition):
            if operator == "==":
                events = {event} if events is None else events & {event}
            else:
                excluded.add(event)
        if match := _REF_TEST.search(condition):
            ref = match.group(1)
        elif match := _REF_NAME_TEST.search(condition):
            ref = f"refs/heads/{match.group(1)}"
    return _Narrowing(frozenset(events) if events is not None else None, frozenset(excluded), ref)


def _names(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return None


def _push_refs(settings: Any) -> list[str]:
    """The ref patterns a push trigger fires for ('refs/heads/**' when unfiltered)."""
    settings = settings if isinstance(settings, dict) else {}
    branches = _names(settings.get("branches"))
    tags = _names(settings.get("tags"))
    branch_filter = branches is not None or "branches-ignore" in settings
    tag_filter = tags is not None or "tags-ignore" in settings
    refs: list[str] = []
    # GitHub: with only a branch filter, tags do not trigger, and the other way round.
    if branch_filter or not tag_filter:
        if branches is None:
            refs.append("refs/heads/**")
        else:
            refs.extend(f"refs/heads/{b}" for b in branches if not b.startswith("!"))
    if tag_filter or not branch_filter:
        if tags is None:
            refs.append("refs/tags/**")
        else:
            refs.extend(f"refs/tags/{t}" for t in tags if not t.startswith("!"))
    return refs


def presented_subjects(
    repository: str,
    triggers: Mapping[str, Any],
    *,
    environment: str | None,
    conditions: Sequence[str] = (),
    default_branch: str = DEFAULT_BRANCH,
    subject_prefix: str | None = None,
) -> list[PresentedSubject]:
    """Every subject a job presents, one entry per (event, ref) it can run for.

    `subject_prefix` (githubSubjectPrefix) replaces `repo:<repository>` when the repository's tokens
    carry GitHub's immutable ids.
    """
    prefix = subject_prefix_for(repository, subject_prefix or "")
    narrowing = narrowing_of(conditions)
    presented: list[PresentedSubject] = []

    def ref_subject(event: str, ref: str, assumption: str | None = None) -> None:
        if narrowing.ref is not None:
            if ref != narrowing.ref and not (is_glob(ref) and glob_regex(ref).fullmatch(narrowing.ref)):
                return  # the job's `if:` never lets this ref through
            ref = narrowing.ref
            assumption = None
        if environment is not None:
            presented.append(PresentedSubject(event, f"{prefix}:environment:{environment}"))
        elif is_glob(ref):
            presented.append(
                PresentedSubject(event, None, pattern=f"{prefix}:ref:{ref}", assumption=assumption)
            )
        else:
            presented.append(PresentedSubject(event, f"{prefix}:ref:{ref}", assumption=assumption))

    default_ref = f"refs/heads/{default_branch}"
    for event, settings in triggers.items():
        if event == "workflow_call":
            continue
        if narrowing.events is not None and event not in narrowing.events:
            continue
        if event in narrowing.excluded_events:
            continue
        if event in PULL_REQUEST_EVENTS:
            if environment is not None:
                presented.append(PresentedSubject(event, f"{prefix}:environment:{environment}"))
            else:
                presented.append(PresentedSubject(event, f"{prefix}:pull_request"))
        elif event == "push":
            for ref in _push_refs(settings):
                ref_subject(event, ref)
        elif event == "workflow_dispatch":
            ref_subject(
                event,
                default_ref,
                assumption=(
                    f"workflow_dispatch runs on the branch it is dispatched from: assumed the default "
                    f"branch `{default_branch}`; a dispatch from another branch presents that branch"
                ),
            )
        elif event in _UNKNOWN_REF_EVENTS:
            ref_subject(event, _UNKNOWN_REF_EVENTS[event])
        else:
            # schedule, workflow_run, issues, repository_dispatch...: the default branch.
            ref_subject(event, default_ref)
    return presented
