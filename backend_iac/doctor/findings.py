"""Findings: what the doctor reports, how they sort, and the two forms it prints them in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Final, Literal

Severity = Literal["error", "warning"]
Layer = Literal["identity", "pipeline", "runtime", "config"]

LAYERS: Final[tuple[Layer, ...]] = ("identity", "pipeline", "runtime", "config")
_SEVERITY_RANK: Final = {"error": 0, "warning": 1}


@dataclass(frozen=True, slots=True)
class Finding:
    """One mismatch: where it is (file relative to the root, line of the offending key or None), and its fix."""

    code: str
    severity: Severity
    layer: Layer
    file: str
    line: int | None
    message: str
    fix: str


class DoctorInputError(Exception):
    """An input the doctor needs cannot be read (missing file, malformed YAML or TOML): exit 2."""

    def __init__(self, file: str, line: int | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}")


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors before warnings, then by file and line, so the output is stable run to run."""
    return sorted(
        findings,
        key=lambda f: (_SEVERITY_RANK[f.severity], f.file, f.line if f.line is not None else 0, f.code),
    )


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(finding.severity == "error" for finding in findings)


def to_json(findings: Sequence[Finding]) -> str:
    """`{"findings": [...]}`, findings in the same order as the text form."""
    ordered = [finding for layer in _layer_order(findings) for finding in _in_layer(findings, layer)]
    return json.dumps({"findings": [asdict(finding) for finding in ordered]}, indent=2)


def _in_layer(findings: Sequence[Finding], layer: Layer) -> list[Finding]:
    return sort_findings(finding for finding in findings if finding.layer == layer)


def _layer_order(findings: Sequence[Finding]) -> list[Layer]:
    """Layers holding an error first, then layers holding only warnings; each group in LAYERS order."""
    present = [layer for layer in LAYERS if any(f.layer == layer for f in findings)]
    return sorted(present, key=lambda layer: 0 if has_errors(f for f in findings if f.layer == layer) else 1)


def to_text(findings: Sequence[Finding], *, header: str) -> str:
    """Grouped by layer, most severe first; every finding with its location and its fix."""
    lines = [header]
    if not findings:
        lines.append("no findings: identity, pipeline, runtime and config agree.")
        return "\n".join(lines) + "\n"
    for layer in _layer_order(findings):
        lines.append("")
        lines.append(f"{layer}")
        for finding in _in_layer(findings, layer):
            where = f"{finding.file}:{finding.line}" if finding.line is not None else finding.file
            lines.append(f"  {finding.severity:<7} {finding.code}  {where}")
            lines.append(f"          {finding.message}")
            lines.append(f"          fix: {finding.fix}")
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    lines.append("")
    lines.append(
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n".join(lines) + "\n"
