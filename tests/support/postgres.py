"""A real PostgreSQL server for the suite, from Debian's package, run as the `postgres` user.

PostgreSQL refuses to run as root, so when the suite runs as root the data directory is handed to
`postgres` and every server command runs through `runuser`. The server listens on 127.0.0.1 only, on a
free port, with scram-sha-256 password authentication over TCP (the way the service logs in).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"
APP_ROLE = "backend_iac"
APP_PASSWORD = "local-test-password"  # a throwaway role on a loopback-only server the suite deletes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    msg = "PostgreSQL server binaries not found: run `make test` (it installs Debian's postgresql package)"
    raise RuntimeError(msg)


@dataclass
class PostgresServer:
    """One server: start/stop it (tests of outages stop it on purpose), create databases in it."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="backend-iac-pg-")))
    bin_dir: Path = field(default_factory=_bin_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _as_postgres(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        password_file = self.root / "pwfile"
        password_file.write_text(APP_PASSWORD + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, pwd.getpwnam(SUPERUSER).pw_uid, -1)
        self._as_postgres(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\nmax_connections = 200\n"
            )

    def start(self) -> None:
        self._as_postgres(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode "immediate" is a crash-like stop (no checkpoint, clients cut off)."""
        self._as_postgres(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False
        )

    def is_running(self) -> bool:
        return (
            self._as_postgres(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status", check=False
            ).returncode
            == 0
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._as_postgres(
            str(self.bin_dir / "psql"),
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        )
        return result.stdout.strip()

    def create_role(self, name: str = APP_ROLE, password: str = APP_PASSWORD) -> None:
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'")
        if not exists:
            self.psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")

    def create_database(self, name: str, owner: str = APP_ROLE) -> str:
        """A fresh, empty database owned by the app role; returns its URL (password included)."""
        self.create_role(owner)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}" OWNER {owner}')
        return self.url(name)

    def url(self, database: str, *, user: str = APP_ROLE, password: str | None = APP_PASSWORD) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def wait_until_accepting(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        msg = f"PostgreSQL did not accept connections on port {self.port} within {timeout}s"
        raise TimeoutError(msg)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
