"""`backend-iac doctor [--root DIR] [--stack NAME] [--format text|json] [explain CODE]`.

Exit codes: 0 no error-level finding, 1 at least one, 2 an input cannot be read (the message names the
file and line) or the command line is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from backend_iac.doctor.findings import DoctorInputError, Finding, has_errors, to_json, to_text

if TYPE_CHECKING:
    from backend_iac.evaluation_cache import EvaluationCache


def diagnose(root: Path, stack: str, *, cache: EvaluationCache | None = None) -> list[Finding]:
    """Every finding for `root` and `stack` (the program evaluated through `cache` when given);
    DoctorInputError when an input cannot be read."""
    from backend_iac.doctor.checks import config, identity, pipeline, runtime
    from backend_iac.doctor.repository import load_repository

    repository = load_repository(root, stack, cache=cache)
    return [
        *identity.check(repository),
        *pipeline.check(repository),
        *runtime.check(repository),
        *config.check(repository),
    ]


def explain_code(code: str, *, root: Path, stack: str, out: TextIO, err: TextIO) -> int:
    """`doctor explain CODE`: what an Entra error code means, with this stack's subjects; exit 2 unknown."""
    from backend_iac.doctor.entra_errors import explain, known_codes

    repository: str | None = None
    prefix: str | None = None
    subjects: list[str] = []
    try:
        from backend_iac.evaluation_cache import EvaluationCache

        evaluation = EvaluationCache.for_user().evaluate_stack(root, stack)
        if evaluation.config is not None:
            repository = evaluation.config.github_repository
            prefix = evaluation.config.subject_prefix
        subjects = list(evaluation.federated_subjects)
    except Exception:  # noqa: S110 - the explanation stands without this stack's facts
        pass
    try:
        jobs = job_subjects(root, repository=repository or "<githubRepository>", prefix=prefix)
    except DoctorInputError:
        jobs = []
    text = explain(code, repository=repository, subjects=subjects, prefix=prefix, jobs=jobs)
    if text is None:
        print(f"backend-iac doctor: unknown code {code!r}; known: {', '.join(known_codes())}", file=err)
        return 2
    out.write(text)
    return 0


def _print_styled(text: str, out: TextIO) -> None:
    """The text report with its severities, layers and fixes coloured, for a person at a terminal."""
    import re

    from rich.markup import escape

    from backend_iac.terminal import console_for

    console = console_for(out)
    for number, line in enumerate(text.splitlines()):
        styled = escape(line)
        if number == 0 or line.startswith("no findings"):
            styled = f"[bold]{styled}[/bold]"
        styled = re.sub(r"^(  )(error)\b", r"\1[bold red]\2[/bold red]", styled)
        styled = re.sub(r"^(  )(warning)\b", r"\1[yellow]\2[/yellow]", styled)
        styled = re.sub(r"^(\s+)(fix:)", r"\1[green]\2[/green]", styled)
        if line in ("identity", "pipeline", "runtime", "config"):
            styled = f"[bold]{styled}[/bold]"
        console.print(styled)


def job_subjects(root: Path, *, repository: str, prefix: str | None) -> list[str]:
    """Each job that signs in, the exact subject(s) it presents, and which credential answers it: what an
    Entra federated credential or a Pulumi Cloud issuer policy must allow, and nothing broader."""
    from backend_iac.doctor.workflows import (
        PULL_REQUEST_EVENTS,
        job_runs,
        login_of,
        needs_id_token,
        presented_subjects,
        read_workflows,
    )

    lines: dict[str, list[str]] = {}
    for run in job_runs(read_workflows(root)):
        steps = run.job.steps
        if not any(login_of(run.workflow, run.job, step) or needs_id_token(step) for step in steps):
            continue
        for presented in presented_subjects(
            repository,
            run.triggers,
            environment=run.job.environment,
            conditions=run.conditions,
            subject_prefix=prefix,
        ):
            subject = presented.subject or f"{presented.pattern} (a pattern: no exact credential can match)"
            pull_request = presented.event in PULL_REQUEST_EVENTS and run.job.environment is None
            who = "Azure preview identity (Reader)" if pull_request else "Azure deploy identity (Contributor)"
            if any(needs_id_token(step) for step in steps):
                who += (
                    "; Pulumi Cloud: team token of the read-only preview team"
                    if pull_request
                    else "; Pulumi Cloud: organization token"
                )
            key = f"{run.workflow.path} job `{run.job.id}`: {subject}"
            lines.setdefault(key, [who]).append(presented.event)
    return [f"{key} on {', '.join(sorted(set(events[1:])))} -> {events[0]}" for key, events in lines.items()]


def run_doctor(
    *, root: Path, stack: str, output_format: Literal["text", "json"], out: TextIO, err: TextIO
) -> int:
    """The `doctor` command: every finding as text or JSON; exit 0 clean, 1 an error, 2 unreadable input."""
    try:
        from backend_iac.evaluation_cache import EvaluationCache

        findings = diagnose(root, stack, cache=EvaluationCache.for_user())
    except DoctorInputError as error:
        print(f"backend-iac doctor: cannot read {error}", file=err)
        return 2
    if output_format == "json":
        out.write(to_json(findings) + "\n")
    else:
        text = to_text(findings, header=f"backend-iac doctor: stack {stack} in {root}")
        from backend_iac.terminal import is_styled

        if is_styled(out):
            _print_styled(text, out)
        else:
            out.write(text)
    return 1 if has_errors(findings) else 0
