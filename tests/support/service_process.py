"""The service as App Service runs it: the real start command (gunicorn + uvicorn workers) on loopback.

The command is `service.startup.STARTUP_COMMAND`, unchanged; the bind address comes from
GUNICORN_CMD_ARGS (which gunicorn ranks above its config file) so tests listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.startup import STARTUP_COMMAND
from tests.support.postgres import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def production_env(issuer_url: str, audience: str, home: Path, **extra: str) -> dict[str, str]:
    """What App Service gives the service (the stack's app settings, HOME), pointed at a local issuer."""
    return {
        "APP_ENV": "production",
        "AUTH_ISSUER": issuer_url,
        "AUTH_AUDIENCE": audience,
        "HOME": str(home),
        **extra,
    }


@dataclass
class ServiceProcess:
    env: Mapping[str, str]
    cwd: Path = REPO_ROOT
    workers: int = 2
    port: int = field(default_factory=free_port)
    command: str = STARTUP_COMMAND
    python_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="backend-iac-service-", suffix=".log")[1])
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> ServiceProcess:
        env = {
            "PATH": f"{self.python_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.workers),
            **self.env,
            # Extra gunicorn arguments given in env come after the loopback bind, never instead of it.
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port} {self.env.get('GUNICORN_CMD_ARGS', '')}".strip(),
        }
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            shlex.split(self.command), cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                msg = f"service exited with {self.process.returncode} during start-up:\n{self.logs()[-4000:]}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        msg = f"service not healthy within {timeout}s:\n{self.logs()[-4000:]}"
        raise TimeoutError(msg)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM the gunicorn master (as App Service does) and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()
