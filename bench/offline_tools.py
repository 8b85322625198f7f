"""`make bench-tools`: how long the offline tools take on this repository, in fresh processes.

Budgets (issues 3 and 5): the whole program under Pulumi's mocks in under 3 s, `backend-iac doctor` in
under 2 s; issue 14: `plan --base` (two evaluations) within 2x a single `plan`. Each is measured from process start, imports included, as a user runs it; the median of
several runs is printed with the spread, and the exit code says whether the budgets were met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVALUATE = (
    "from pathlib import Path; from backend_iac.evaluate import evaluate_stack; "
    f"evaluate_stack(Path({str(REPO)!r}), 'dev')"
)


def _timed(argv: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True, timeout=120)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    tool = str(Path(sys.executable).parent / "backend-iac")
    measured = {
        "evaluate the dev stack under mocks": (_timed([sys.executable, "-c", EVALUATE], args.runs), 3.0),
        "backend-iac plan --stack dev": (_timed([tool, "plan", "--stack", "dev"], args.runs), None),
        "backend-iac doctor": (_timed([tool, "doctor"], args.runs), 2.0),
        "backend-iac plan --base HEAD": (_timed([tool, "plan", "--base", "HEAD"], args.runs), None),
    }
    missed = []
    for name, (seconds, budget) in measured.items():
        median = statistics.median(seconds)
        verdict = (
            "" if budget is None else f"  budget {budget:.1f} s: {'met' if median < budget else 'MISSED'}"
        )
        print(f"{name:<38} median {median:5.2f} s  min {min(seconds):5.2f}  max {max(seconds):5.2f}{verdict}")
        if budget is not None and median >= budget:
            missed.append(name)
    # Issue 14: the diff (two evaluations, the base from a git archive) within 2x a single plan.
    ratio = statistics.median(measured["backend-iac plan --base HEAD"][0]) / statistics.median(
        measured["backend-iac plan --stack dev"][0]
    )
    print(f"plan --base / plan: {ratio:.2f}x  budget 2.0x: {'met' if ratio < 2.0 else 'MISSED'}")
    if ratio >= 2.0:
        missed.append("plan --base")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
