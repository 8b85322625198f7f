"""`make bench-tools`: how long the offline tools take on this repository, in fresh processes.

Budgets: the whole program under Pulumi's mocks in under 3 s (issue 3), `backend-iac plan` and `doctor`
in under 1 s (issue 19; the doctor's earlier budget was 2 s, issue 5), `plan --base` within 2x a single
`plan` (issue 14), both first runs. Each is measured from process
start, imports included, as a user runs it; the median of several runs is printed with the spread, and
the exit code says whether the budgets were met.

plan and doctor are timed twice. "first run": every run with an empty evaluation cache
(backend_iac/evaluation_cache.py), as on a fresh machine or after any input changed, so the program is
evaluated under the mocks. "again": the same inputs as the run before, the evaluation read back from the
cache. The evaluation alone (the library call, which never caches) keeps its own line. `plan --base HEAD`
evaluates the working tree and HEAD's archive; on a clean tree the two have the same content, so the
second is read from the cache the first filled (with local changes it is evaluated too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend_iac.evaluation_cache import CACHE_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
EVALUATE = (
    "from pathlib import Path; from backend_iac.evaluate import evaluate_stack; "
    f"evaluate_stack(Path({str(REPO)!r}), 'dev')"
)
TIMEOUT_SECONDS = 120


def _run(argv: list[str], cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        env={**os.environ, CACHE_DIR_ENV: str(cache)},
    )
    return time.perf_counter() - started


def _first_runs(argv: list[str], runs: int, scratch: Path) -> list[float]:
    """Each run with a cache directory of its own, empty."""
    return [_run(argv, Path(tempfile.mkdtemp(dir=scratch))) for _ in range(runs)]


def _again_runs(argv: list[str], runs: int, scratch: Path) -> list[float]:
    """One untimed run fills the cache; the timed runs read it."""
    cache = Path(tempfile.mkdtemp(dir=scratch))
    _run(argv, cache)
    return [_run(argv, cache) for _ in range(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    tool = str(Path(sys.executable).parent / "backend-iac")
    plan, doctor = [tool, "plan", "--stack", "dev"], [tool, "doctor", "--stack", "dev"]
    diff = [tool, "plan", "--stack", "dev", "--base", "HEAD"]
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as directory:
        scratch = Path(directory)
        measured = {
            "evaluate the dev stack under mocks": (
                _first_runs([sys.executable, "-c", EVALUATE], args.runs, scratch),
                3.0,
            ),
            "backend-iac plan --stack dev, first run": (_first_runs(plan, args.runs, scratch), 1.0),
            "backend-iac plan --stack dev, again": (_again_runs(plan, args.runs, scratch), 1.0),
            "backend-iac doctor, first run": (_first_runs(doctor, args.runs, scratch), 1.0),
            "backend-iac doctor, again": (_again_runs(doctor, args.runs, scratch), 1.0),
            "backend-iac plan --base HEAD, first run": (_first_runs(diff, args.runs, scratch), None),
        }
    missed = []
    for name, (seconds, budget) in measured.items():
        median = statistics.median(seconds)
        verdict = "" if budget is None else f"budget {budget:.1f} s: {'met' if median < budget else 'MISSED'}"
        print(
            f"{name:<42} median {median:5.2f} s  min {min(seconds):5.2f}  max {max(seconds):5.2f}  {verdict}"
        )
        if budget is not None and median >= budget:
            missed.append(name)
    # Issue 14: the diff (two evaluations, the base from a git archive) within 2x a single plan.
    ratio = statistics.median(measured["backend-iac plan --base HEAD, first run"][0]) / statistics.median(
        measured["backend-iac plan --stack dev, first run"][0]
    )
    print(f"plan --base / plan (first runs): {ratio:.2f}x  budget 2.0x: {'met' if ratio < 2.0 else 'MISSED'}")
    if ratio >= 2.0:
        missed.append("plan --base")
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
