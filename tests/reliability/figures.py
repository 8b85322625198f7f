"""Figures the reliability suites print, one greppable line per suite: `FIGURES <suite>: key=value ...`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Every line reported in this run; tests/conftest.py prints them again in the session summary, where
# they show even though pytest captures the output of passing tests.
REPORTED: list[str] = []


def report(suite: str, **values: object) -> str:
    """Print (and return) one FIGURES line; floats get three decimals, mappings become `k:v,k:v`."""
    line = f"FIGURES {suite}: {' '.join(f'{key}={_format(value)}' for key, value in values.items())}"
    print(line, flush=True)
    REPORTED.append(line)
    return line


def backend(database_url: str) -> str:
    """ "postgres" or "sqlite", for a figures line's suite name."""
    return "postgres" if database_url.startswith(("postgresql://", "postgres://")) else "sqlite"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of the samples (0.0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping):
        return ",".join(f"{key}:{_format(item)}" for key, item in value.items()) or "none"
    return str(value)
