"""Identity: every Azure sign-in's OIDC subject against the federated credentials the stack declares."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from backend_iac.doctor.findings import Finding, Severity
from backend_iac.doctor.repository import Credential, Repository
from backend_iac.doctor.workflows import (
    JobRun,
    Login,
    PresentedSubject,
    as_text,
    effective_env,
    glob_regex,
    job_runs,
    login_of,
    presented_subjects,
)
from stack.github_subjects import GITHUB_ISSUER, TOKEN_EXCHANGE_AUDIENCE

_VARIABLE = re.compile(r"\bvars\.([A-Za-z0-9_]+)")
_ENV_REFERENCE = re.compile(r"^\$\{\{\s*env\.([A-Za-z0-9_]+)\s*\}\}$")


def _finding(code: str, severity: Severity, file: str, line: int | None, message: str, fix: str) -> Finding:
    return Finding(code, severity, "identity", file, line, message, fix)


@dataclass(frozen=True)
class _SignIn:
    run: JobRun
    login: Login
    presented: list[PresentedSubject]

    @property
    def who(self) -> str:
        via = "".join(f" (called from {w.path} job `{j.id}`)" for w, j in self.run.callers)
        return f"job `{self.run.job.id}` in {self.run.workflow.path}{via}"


def _sign_ins(repository: Repository, name: str) -> Iterator[_SignIn]:
    """Every Azure sign-in, once per trigger context it runs in, with the subjects it presents."""
    prefix = repository.subject_prefix
    for run in job_runs(repository.workflows):
        environment = run.job.environment
        for step in run.job.steps:
            login = login_of(run.workflow, run.job, step)
            if login is None:
                continue
            conditions = run.conditions + ((step.condition,) if step.condition else ())
            yield _SignIn(
                run,
                login,
                presented_subjects(
                    name,
                    run.triggers,
                    environment=environment if environment and "${{" not in environment else None,
                    conditions=conditions,
                    default_branch=repository.default_branch,
                    subject_prefix=prefix,
                ),
            )


def _purpose_of_client(sign_in: _SignIn) -> str | None:
    """deploy or preview, from the variable the client id comes from (AZURE_PREVIEW_CLIENT_ID...)."""
    value = sign_in.login.client.value or ""
    if match := _ENV_REFERENCE.match(value.strip()):
        env = effective_env(sign_in.run.workflow, sign_in.run.job, sign_in.login.step)
        value = env.get(match.group(1), "")
    variable = _VARIABLE.search(value)
    if variable is None:
        return None
    return "preview" if "PREVIEW" in variable.group(1).upper() else "deploy"


def _purpose_of_identity(identity: str) -> str:
    return "preview" if "preview" in identity.lower() else "deploy"


def _fix_for(subject: str, repository: Repository) -> str:
    stack_file = repository.stack_file_name
    kind = subject.split(":", 3)[-1] if subject.count(":") >= 2 else subject
    if ":environment:" in subject:
        name = subject.rsplit(":environment:", 1)[1]
        return (
            f"add {name!r} to githubEnvironments in {stack_file} and run `pulumi up`, or drop the job's "
            "`environment:` if it should sign in as its branch"
        )
    if ":ref:refs/heads/" in subject:
        name = subject.rsplit(":ref:refs/heads/", 1)[1]
        return (
            f"add {name!r} to githubBranches in {stack_file} and run `pulumi up`, or restrict the "
            "workflow's triggers to the branches the stack trusts"
        )
    if ":ref:refs/tags/" in subject:
        name = subject.rsplit(":ref:refs/tags/", 1)[1]
        return f"add {name!r} to githubTags in {stack_file} and run `pulumi up`"
    if subject.endswith(":pull_request"):
        return f"set githubPullRequests: true in {stack_file} and run `pulumi up`"
    return f"declare a credential for {kind!r} in the stack, or stop signing in from this job"


def check(repository: Repository) -> list[Finding]:
    name = repository.repository
    if repository.evaluation is None or not name:
        return []  # the config layer reports why the program could not be evaluated
    credentials = repository.credentials
    by_subject: dict[str, list[Credential]] = {}
    for credential in credentials:
        by_subject.setdefault(credential.subject, []).append(credential)
    findings: list[Finding] = []
    seen: set[tuple[str, ...]] = set()
    used: set[str] = set()

    def report(key: tuple[str, ...], finding: Finding) -> None:
        if key not in seen:
            seen.add(key)
            findings.append(finding)

    for sign_in in _sign_ins(repository, name):
        login, run = sign_in.login, sign_in.run
        where = run.workflow.path
        audience = as_text(login.step.inputs.get("audience")) if login.kind == "azure/login" else None
        if audience is not None and audience != TOKEN_EXCHANGE_AUDIENCE:
            report(
                (where, str(login.line), "audience"),
                _finding(
                    "oidc-login-audience",
                    "error",
                    where,
                    login.step.inputs.line_of("audience"),
                    f"{sign_in.who} asks GitHub for a token with audience {audience!r}; the stack's "
                    f"credentials accept {TOKEN_EXCHANGE_AUDIENCE!r}: Entra fails with AADSTS700212",
                    "remove azure/login's `audience` input (its default is api://AzureADTokenExchange)",
                ),
            )
        environment = run.job.environment
        if environment and "${{" in environment:
            report(
                (where, run.job.id, "environment-expression"),
                _finding(
                    "oidc-subject-unresolved",
                    "warning",
                    where,
                    run.job.environment_line,
                    f"{sign_in.who} signs in with `environment: {environment}`, an expression: its subject "
                    f"`{repository.subject_prefix}:environment:<value>` is only known at run time",
                    "make sure every value it can take is in githubEnvironments, or name the environment "
                    "literally so the doctor can check it",
                ),
            )
            continue
        key_base = (where, run.job.id, *(w.path + j.id for w, j in run.callers))
        line = run.job.environment_line if environment else login.line
        for presented in sign_in.presented:
            note = f" ({presented.assumption})" if presented.assumption else ""
            if presented.subject is None:
                pattern = presented.pattern or ""
                ref_glob = glob_regex(pattern)
                covered = sorted(s for s in by_subject if ref_glob.fullmatch(s))
                used.update(covered)
                if covered:
                    report(
                        (*key_base, pattern),
                        _finding(
                            "oidc-subject-pattern",
                            "warning",
                            where,
                            line,
                            f"{sign_in.who} signs in on {presented.event} for refs matching {pattern!r}; "
                            f"Entra matches subjects exactly, so only {', '.join(covered)} can sign in and "
                            f"every other ref fails with AADSTS700213{note}",
                            "narrow the trigger to the exact branches or tags the stack declares "
                            "(githubBranches, githubTags), or guard the job with "
                            "`if: github.ref == 'refs/heads/<branch>'`",
                        ),
                    )
                else:
                    report(
                        (*key_base, pattern),
                        _finding(
                            "oidc-subject-unmatched",
                            "error",
                            where,
                            line,
                            f"{sign_in.who} signs in on {presented.event} for refs matching {pattern!r}, "
                            f"and no federated credential of stack {repository.stack} matches any of them: "
                            f"every run fails with AADSTS700213{note}",
                            "name the exact branches or tags in the trigger and add them to "
                            f"githubBranches / githubTags in {repository.stack_file_name}, then `pulumi up`",
                        ),
                    )
                continue

            subject = presented.subject
            matches = by_subject.get(subject, [])
            if matches:
                used.add(subject)
                wanted = _purpose_of_client(sign_in)
                if wanted is not None and all(_purpose_of_identity(c.identity) != wanted for c in matches):
                    holders = ", ".join(sorted({c.identity for c in matches}))
                    report(
                        (*key_base, subject, "identity"),
                        _finding(
                            "oidc-subject-wrong-identity",
                            "error",
                            where,
                            login.client.line,
                            f"{sign_in.who} presents {subject!r} with the {wanted} identity's client id "
                            f"({login.client.value}), but that subject's credential is on {holders}: "
                            "Entra looks only at the client id's credentials and fails with AADSTS700213",
                            "sign in with the client id of the identity that holds the credential "
                            "(pull requests: AZURE_PREVIEW_CLIENT_ID = ci_preview_identity_client_id; "
                            "branches, tags, environments: AZURE_CLIENT_ID = ci_identity_client_id)",
                        ),
                    )
                continue
            folded = [s for s in by_subject if s.casefold() == subject.casefold()]
            if folded:
                used.update(folded)
                report(
                    (*key_base, subject),
                    _finding(
                        "oidc-subject-case",
                        "error",
                        where,
                        line,
                        f"{sign_in.who} presents {subject!r} on {presented.event}; the stack declares "
                        f"{folded[0]!r}, which differs only in letter case: Entra compares subjects "
                        f"case-sensitively and fails with AADSTS7002138{note}",
                        "spell githubRepository, branches and environments in "
                        f"{repository.stack_file_name} exactly as GitHub does, then `pulumi up`",
                    ),
                )
                continue
            report(
                (*key_base, subject),
                _finding(
                    "oidc-subject-unmatched",
                    "error",
                    where,
                    line,
                    f"{sign_in.who} presents {subject!r} on {presented.event}, and no federated credential "
                    f"of stack {repository.stack} has that subject: Entra fails the sign-in with "
                    f"AADSTS700213{note}",
                    _fix_for(subject, repository),
                ),
            )

    findings.extend(_issuer_and_audience(repository, credentials))
    findings.extend(_unused(repository, credentials, used))
    findings.extend(_remote(repository, name))
    return findings


def _issuer_and_audience(repository: Repository, credentials: list[Credential]) -> Iterator[Finding]:
    """Every credential must trust GitHub's issuer and the token-exchange audience, exactly."""
    where = "stack/components/github_oidc.py"
    for credential in credentials:
        if credential.issuer != GITHUB_ISSUER:
            yield _finding(
                "oidc-credential-issuer",
                "error",
                where,
                None,
                f"the federated credential {credential.resource_name} trusts issuer {credential.issuer!r}, "
                f"not GitHub's {GITHUB_ISSUER!r} (no trailing slash): every sign-in fails with AADSTS700211",
                f"set the credential's issuer to {GITHUB_ISSUER}",
            )
        if TOKEN_EXCHANGE_AUDIENCE not in credential.audiences:
            yield _finding(
                "oidc-credential-audience",
                "error",
                where,
                None,
                f"the federated credential {credential.resource_name} accepts audiences "
                f"{list(credential.audiences)}, not {TOKEN_EXCHANGE_AUDIENCE!r}, the audience azure/login and "
                "the Azure provider request: every sign-in fails with AADSTS700212",
                f"set the credential's audiences to [{TOKEN_EXCHANGE_AUDIENCE!r}]",
            )


def _unused(repository: Repository, credentials: list[Credential], used: set[str]) -> Iterator[Finding]:
    for credential in credentials:
        if credential.subject in used:
            continue
        subject = credential.subject
        key = (
            "githubEnvironments"
            if ":environment:" in subject
            else "githubTags"
            if ":ref:refs/tags/" in subject
            else "githubPullRequests"
            if subject.endswith(":pull_request")
            else "githubBranches"
        )
        file, line = repository.config_location(key)
        yield _finding(
            "oidc-credential-unused",
            "warning",
            file,
            line,
            f"the stack declares a federated credential for {subject!r} ({credential.resource_name} on "
            f"{credential.identity}), but no workflow job signs in with that subject",
            f"remove it from {key} (a credential nobody uses is a door nobody watches), or add the job "
            "that needs it",
        )


def _remote(repository: Repository, name: str) -> Iterator[Finding]:
    origin = repository.origin
    # An immutable-format name (owner@123/name@456) names the same repository as owner/name.
    if origin is None or origin == re.sub(r"@\d+", "", name):
        return
    file, line = repository.config_location("githubRepository")
    if origin.casefold() == re.sub(r"@\d+", "", name).casefold():
        # GitHub resolves a repository URL whatever its letter case, so a clone's remote keeps whatever
        # spelling the user typed; the OIDC subject carries GitHub's canonical spelling of the owner and
        # name (Azure/accelerator-bootstrap-modules#135: user-typed casing vs the canonical login ->
        # AADSTS7002138). The remote therefore cannot say which of the two spellings is right.
        owner_and_name = re.sub(r"@\d+", "", name)
        yield _finding(
            "oidc-repository-case",
            "warning",
            file,
            line,
            f"githubRepository is {name!r} and the `origin` remote is github.com/{origin}: they differ only "
            "in letter case, and a remote cannot prove GitHub's spelling (GitHub accepts any case in a URL, "
            "but the OIDC subject uses its canonical spelling, which Entra compares case-sensitively: a "
            "wrong case fails every sign-in with AADSTS7002138)",
            f"check the canonical spelling: `gh api repos/{owner_and_name} --jq .full_name`, the heading of "
            "the repository's page on GitHub, or the `subject claim` azure/login prints; set githubRepository "
            f"to exactly that in {repository.stack_file_name}",
        )
        return
    consequence = "every subject names the wrong repository, and Entra fails every sign-in with AADSTS700213"
    yield _finding(
        "oidc-repository-mismatch",
        "error",
        file,
        line,
        f"githubRepository is {name!r} but the `origin` remote is github.com/{origin}: {consequence}",
        f"set githubRepository to the repository the remote names (owner/name as GitHub spells it) in "
        f"{repository.stack_file_name}, then `pulumi up`",
    )
