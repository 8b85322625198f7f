"""The command line as a person meets it: --help that explains, --version, tables and colour on a
terminal only (never in pipes, with NO_COLOR, or in JSON)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from backend_iac.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "backend_iac.cli"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_has_a_description_exit_codes_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backend-iac COMMAND --help` says what it is for, how it exits and how to call it."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:\n  0 " in text
    assert f"example:\n  ./backend-iac {command}" in text or f"./backend-iac {command}" in text
    description = text.split("\n\n")[1]
    assert len(description) > 60, description


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`backend-iac --version` prints the installed version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("backend-iac 0.")


def _on_a_terminal(args: list[str], **env: str) -> str:
    """Run the CLI with stdout on a pseudo-terminal (as a person's shell would) and return what it wrote."""
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    environment.update({"TERM": "xterm-256color", "COLUMNS": "160", **env})
    process = subprocess.Popen(
        [*CLI, *args], cwd=REPO, stdout=follower, stderr=subprocess.PIPE, env=environment
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    process.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_plan_draws_tables_with_colour_on_a_terminal_and_plain_text_otherwise() -> None:
    """On a terminal: box-drawn tables and ANSI colour; with NO_COLOR or through a pipe: the plain text."""
    styled = _on_a_terminal(["plan", "--stack", "dev"])
    assert "\x1b[" in styled
    assert "┃" in styled or "│" in styled
    assert "Monthly cost estimate" in styled
    plain = _on_a_terminal(["plan", "--stack", "dev"], NO_COLOR="1")
    assert "\x1b[" not in plain
    assert "azure-native:web:WebApp  app-site" in plain
    piped = subprocess.run(
        [*CLI, "plan", "--stack", "dev"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert "\x1b[" not in piped.stdout
    assert "azure-native:web:WebApp  app-site" in piped.stdout


@pytest.mark.slow
def test_json_is_unchanged_on_a_terminal() -> None:
    """--format json on a terminal is still exactly JSON: no colour, no tables."""
    output = _on_a_terminal(["doctor", "--format", "json"])
    assert "\x1b[" not in output
    assert "findings" in json.loads(output)


@pytest.mark.slow
def test_doctor_colours_its_findings_on_a_terminal(tmp_path: Path) -> None:
    """The doctor's text report on a terminal is coloured; the words are the same as in a pipe."""
    styled = _on_a_terminal(["doctor"])
    piped = subprocess.run([*CLI, "doctor"], cwd=REPO, capture_output=True, text=True, check=False)
    assert "\x1b[" in styled
    assert "backend-iac doctor: stack dev" in styled
    assert "\x1b[" not in piped.stdout
