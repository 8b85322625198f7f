"""`backend-iac doctor [--root DIR] [--stack NAME] [--format text|json] [explain CODE]`.

Exit codes: 0 no error-level finding, 1 at least one, 2 an input cannot be read (the message names the
file and line) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from backend_iac.doctor.findings import DoctorInputError, Finding, has_errors, to_json, to_text

_CHECKOUT = Path(__file__).resolve().parents[2]


def default_root() -> Path:
    """This checkout when the package runs from one; otherwise the current directory."""
    return _CHECKOUT if (_CHECKOUT / "Pulumi.yaml").is_file() else Path.cwd()


def diagnose(root: Path, stack: str) -> list[Finding]:
    """Every finding for `root` and `stack`; DoctorInputError when an input cannot be read."""
    from backend_iac.doctor.checks import config, identity, pipeline, runtime
    from backend_iac.doctor.repository import load_repository

    repository = load_repository(root, stack)
    return [
        *identity.check(repository),
        *pipeline.check(repository),
        *runtime.check(repository),
        *config.check(repository),
    ]


def _explain(code: str, root: Path, stack: str, out: TextIO, err: TextIO) -> int:
    from backend_iac.doctor.entra_errors import explain, known_codes

    repository: str | None = None
    prefix: str | None = None
    subjects: list[str] = []
    try:
        from backend_iac.evaluate import evaluate_stack, stack_config_values

        values = stack_config_values(root, stack)
        repository = values.get("backend-iac:githubRepository")
        prefix = values.get("backend-iac:githubSubjectPrefix") or None
        subjects = list(evaluate_stack(root, stack).federated_subjects)
    except Exception:  # noqa: S110 - the explanation stands without this stack's facts
        pass
    text = explain(code, repository=repository, subjects=subjects, prefix=prefix)
    if text is None:
        print(f"backend-iac doctor: unknown code {code!r}; known: {', '.join(known_codes())}", file=err)
        return 2
    out.write(text)
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    root = Path(args.root).resolve() if args.root else default_root()
    stack = str(args.stack)
    words = list(getattr(args, "explain", None) or [])
    if words:
        if words[0] != "explain" or len(words) != 2:
            print("backend-iac doctor: usage: backend-iac doctor [options] explain CODE", file=err)
            return 2
        return _explain(words[1], root, stack, out, err)
    try:
        findings = diagnose(root, stack)
    except DoctorInputError as error:
        print(f"backend-iac doctor: cannot read {error}", file=err)
        return 2
    if args.format == "json":
        out.write(to_json(findings) + "\n")
    else:
        out.write(to_text(findings, header=f"backend-iac doctor: stack {stack} in {root}"))
    return 1 if has_errors(findings) else 0
