"""Everything the checks read, loaded once: workflows, the stack files, the evaluated program, the remote.

Each file is read once: Pulumi.yaml and Pulumi.<stack>.yaml are parsed here (with the line of every
key, for findings) and the program is evaluated with the config built from those same documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from backend_iac.doctor.documents import MarkedDict, load_mapping, load_toml
from backend_iac.doctor.workflows import DEFAULT_BRANCH, Workflow, read_workflows
from backend_iac.evaluate import DeclaredResource, Evaluation
from stack.config import StackConfig, config_key, short_key

if TYPE_CHECKING:
    from backend_iac.evaluation_cache import EvaluationCache

PROJECT_FILE: Final = "Pulumi.yaml"
FEDERATED_CREDENTIAL: Final = "azure-native:managedidentity:FederatedIdentityCredential"
WEB_APP: Final = "azure-native:web:WebApp"
APP_SERVICE_PLAN: Final = "azure-native:web:AppServicePlan"
POSTGRES_SERVER: Final = "azure-native:dbforpostgresql:Server"

_GITHUB_REMOTE = re.compile(
    r"^(?:https?://(?:[^@/]+@)?github\.com/|git@github\.com:|ssh://git@github\.com(?::\d+)?/)"
    r"(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$"
)


@dataclass(frozen=True)
class Credential:
    """A federated identity credential the program declares: its subject and the identity it sits on."""

    subject: str
    resource_name: str  # the Pulumi logical name, e.g. github-deploy-branch-main
    identity: str  # the user-assigned identity's name, e.g. github-deploy
    issuer: str = ""
    audiences: tuple[str, ...] = ()


@dataclass
class Repository:
    root: Path
    stack: str
    workflows: list[Workflow]
    project_file: MarkedDict
    stack_file: MarkedDict
    pyproject: dict[str, Any]
    evaluation: Evaluation | None
    # Why the program could not be evaluated: qualified config key (or "") -> problem.
    evaluation_problems: dict[str, str] = field(default_factory=dict)
    origin: str | None = None  # "owner/name" of a GitHub `origin` remote, when there is one
    default_branch: str = DEFAULT_BRANCH  # origin's HEAD when the checkout knows it

    @property
    def stack_file_name(self) -> str:
        return f"Pulumi.{self.stack}.yaml"

    @property
    def config(self) -> StackConfig | None:
        """The validated stack config the program ran with; None when it could not be evaluated."""
        return self.evaluation.config if self.evaluation is not None else None

    @property
    def repository(self) -> str | None:
        return self.config.github_repository if self.config is not None else None

    @property
    def subject_prefix(self) -> str | None:
        """What the workflows' subjects start with (StackConfig.subject_prefix's rule)."""
        return self.config.subject_prefix if self.config is not None else None

    def config_location(self, key: str) -> tuple[str, int | None]:
        """Where a config key (`pythonVersion`, or qualified `azure-native:location`) is set: the stack
        file if it sets it, else its declaration in Pulumi.yaml."""
        short = short_key(key)
        qualified = key if ":" in key else config_key(key)
        stack_config = self.stack_file.get("config")
        if isinstance(stack_config, MarkedDict):
            for candidate in (qualified, short):
                if candidate in stack_config:
                    return self.stack_file_name, stack_config.line_of(candidate)
        project_config = self.project_file.get("config")
        if isinstance(project_config, MarkedDict) and short in project_config:
            return PROJECT_FILE, project_config.line_of(short)
        return self.stack_file_name, None

    def resources(self, resource_type: str) -> list[DeclaredResource]:
        return self.evaluation.of_type(resource_type) if self.evaluation is not None else []

    @property
    def credentials(self) -> list[Credential]:
        return [
            Credential(
                subject=str(resource.inputs.get("subject")),
                resource_name=resource.name,
                identity=str(resource.inputs.get("resourceName") or ""),
                issuer=str(resource.inputs.get("issuer") or ""),
                audiences=tuple(str(a) for a in resource.inputs.get("audiences") or ()),
            )
            for resource in self.resources(FEDERATED_CREDENTIAL)
        ]

    @property
    def web_app(self) -> DeclaredResource | None:
        apps = self.resources(WEB_APP)
        return apps[0] if apps else None

    @property
    def app_settings(self) -> dict[str, str]:
        app = self.web_app
        if app is None:
            return {}
        pairs = (app.inputs.get("siteConfig") or {}).get("appSettings") or []
        return {str(p.get("name")): str(p.get("value")) for p in pairs if isinstance(p, dict)}


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.removeprefix("gitdir:").strip()).resolve()
            common = git_dir / "commondir"
            if common.is_file():
                return (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
            return git_dir
    return None


def github_origin(root: Path) -> str | None:
    """owner/name of the `origin` remote when it is on GitHub, as spelled in the remote URL.

    Read from .git/config rather than by running git (a process start costs more than the whole check),
    and only at the root itself: an enclosing repository is not this checkout's remote.
    """
    git_dir = _git_dir(root)
    if git_dir is None:
        return None
    try:
        text = (git_dir / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    in_origin = False
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("["):
            in_origin = re.fullmatch(r'\[remote\s+"origin"\]', line) is not None
        elif in_origin and re.match(r"url\s*=", line):
            match = _GITHUB_REMOTE.match(line.split("=", 1)[1].strip())
            return f"{match.group('owner')}/{match.group('name')}" if match else None
    return None


def origin_default_branch(root: Path) -> str:
    """The branch origin's HEAD points at (`git clone` records it), else `main`."""
    git_dir = _git_dir(root)
    try:
        text = (
            (git_dir / "refs" / "remotes" / "origin" / "HEAD").read_text(encoding="utf-8") if git_dir else ""
        )
    except OSError:
        text = ""
    prefix = "ref: refs/remotes/origin/"
    return text.strip().removeprefix(prefix) if text.startswith(prefix) else DEFAULT_BRANCH


def load_repository(root: Path, stack: str, *, cache: EvaluationCache | None = None) -> Repository:
    """Read every input (the program evaluated through `cache` when given); DoctorInputError (exit 2)
    when a file is missing or malformed."""
    from backend_iac.doctor.findings import DoctorInputError
    from backend_iac.evaluate import ProgramError, StackFileError, config_values, evaluate_program
    from stack.config import StackConfigError

    project_file = load_mapping(root, root / PROJECT_FILE)
    stack_file = load_mapping(root, root / f"Pulumi.{stack}.yaml")
    workflows = read_workflows(root)
    pyproject = load_toml(root, root / "pyproject.toml")

    if not (root / "stack" / "__main__.py").is_file():
        raise DoctorInputError("stack/__main__.py", None, "not found: the checkout has no Pulumi program")
    problems: dict[str, str] = {}
    evaluation: Evaluation | None = None
    try:
        values = config_values(project_file, stack_file)
        evaluate = cache.evaluate_program if cache is not None else evaluate_program
        evaluation = evaluate(root, stack, values)
    except StackConfigError as error:
        problems = dict(error.problems)
    except (StackFileError, ProgramError) as error:  # the program failed: report it, check the rest
        problems = {"": str(error)}
    return Repository(
        root=root,
        stack=stack,
        workflows=workflows,
        project_file=project_file,
        stack_file=stack_file,
        pyproject=pyproject,
        evaluation=evaluation,
        evaluation_problems=problems,
        origin=github_origin(root),
        default_branch=origin_default_branch(root),
    )
