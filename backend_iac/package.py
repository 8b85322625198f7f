"""`backend-iac package`: the deterministic zip App Service receives.

Build mode: Oryx builds during the deployment (the stack sets SCM_DO_BUILD_DURING_DEPLOYMENT=true). The
zip carries source and a pinned, hashed `requirements.txt`; Oryx installs it into a virtualenv when the
zip is deployed, so nothing is installed when the container starts (App Service's start limit).

Everything comes from one commit, never from the working tree: the `service` package as git stores it,
the runtime requirements exported from that commit's `uv.lock`, and `build_info.json` whose `built_at`
is the commit time. Entries are sorted, timestamped with the commit time and given fixed permissions,
so the same commit always gives the same bytes (with the same zlib).

The artifact is an allow-list: the service's Python modules (`*.py`, tests excepted), the data files
pyproject.toml declares under `[tool.backend-iac.package] data-files`, `requirements.txt` and
`build_info.json`. Any other file committed under `service/` (a `.env`, a key, a dump, a local settings
file) fails the build, named, rather than ride along to the web app.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from service.startup import ASGI_APP, BUILD_INFO_FILE, GUNICORN_CONFIG

# What the artifact is made of, read from the commit. Nothing else from the repository goes in.
SOURCE_PACKAGE: Final = "service"
REQUIREMENTS_FILE: Final = "requirements.txt"

# Python files under these directories are not modules of the running service: never shipped, and their
# presence is not an error (tests may live next to the code one day).
EXCLUDED_PARTS: Final = frozenset({"tests"})
MODULE_SUFFIX: Final = ".py"
# Where pyproject.toml declares the non-Python files the service reads at run time (paths under service/).
DATA_FILES_TABLE: Final = ("tool", "backend-iac", "package")
DATA_FILES_KEY: Final = "data-files"
# Names that look like credentials get a stronger word in the refusal (they may already be compromised).
_SECRET_LIKE = re.compile(
    r"(^|/)(\.env[^/]*|id_[^/]*|[^/]*\.(pem|key|p12|pfx|jks|keystore|sql|dump|bak)|[^/]*secret[^/]*|"
    r"[^/]*credential[^/]*|[^/]*settings[^/]*\.(json|toml|ya?ml|ini|cfg))$",
    re.IGNORECASE,
)

# Distributions that must never reach the web app: infrastructure and dev tooling (guarded at build time).
FORBIDDEN_REQUIREMENTS: Final = frozenset(
    {
        "pulumi",
        "pulumi-azure-native",
        "pulumi-random",
        "pulumi-policy",
        "pytest",
        "ruff",
        "mypy",
        "schemathesis",
    }
)

# Runtime requirements only, exactly as locked, with hashes (pip then installs in --require-hashes mode).
UV_EXPORT: Final = (
    "export",
    "--locked",
    "--offline",
    "--no-default-groups",
    "--no-dev",
    "--no-emit-project",
    "--format",
    "requirements-txt",
    "--no-header",
    "--quiet",
)

FILE_MODE: Final = 0o100644  # regular file, rw-r--r--: the same whatever the checkout's umask
ZIP_EPOCH: Final = datetime(1980, 1, 1, tzinfo=UTC)  # the earliest time a zip entry can carry
COMPRESS_LEVEL: Final = 9

_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")


class PackagingError(Exception):
    """The artifact cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    commit: str
    built_at: str
    entries: tuple[str, ...]
    size: int


def run_package(*, root: Path, output: Path | None, ref: str) -> int:
    """The `package` command: build the zip, print what it holds; exit 0 built, 1 refused."""
    started = time.monotonic()
    try:
        artifact = build(root=root, output=output, ref=ref)
    except PackagingError as error:
        print(f"backend-iac package: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"commit:   {artifact.commit}")
    print(f"built_at: {artifact.built_at} (the commit time)")
    print(f"entries:  {len(artifact.entries)}")
    print(f"size:     {artifact.size} bytes, in {elapsed:.2f} s")
    print(artifact.path)
    return 0


def build(*, root: Path, output: Path | None = None, ref: str = "HEAD") -> Artifact:
    """Build the zip for `ref` of the repository at `root`; return where it is and what it holds."""
    commit = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    built_at = _git(root, "show", "-s", "--format=%cI", commit).decode().strip()
    _warn_about_uncommitted_changes(root, commit)

    tree = _files_at_commit(root, commit, (SOURCE_PACKAGE, "pyproject.toml", "uv.lock"))
    project = tomllib.loads(tree["pyproject.toml"].decode())["project"]
    requirements = export_requirements(pyproject=tree["pyproject.toml"], lock=tree["uv.lock"])

    data_files = declared_data_files(tomllib.loads(tree["pyproject.toml"].decode()))
    contents = allowed_contents(tree, data_files)
    contents[REQUIREMENTS_FILE] = requirements.encode()
    contents[BUILD_INFO_FILE] = build_info(commit=commit, version=str(project["version"]), built_at=built_at)
    check_startup_modules(contents)

    destination = output or root / "dist" / f"backend-iac-{commit[:12]}.zip"
    destination.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(contents, timestamp=datetime.fromisoformat(built_at))
    # Write then rename: a half-written zip never sits at the path a deploy step would pick up.
    partial = destination.with_name(f".{destination.name}.partial")
    partial.write_bytes(data)
    partial.replace(destination)
    return Artifact(
        path=destination.resolve(),
        commit=commit,
        built_at=built_at,
        entries=tuple(sorted(contents)),
        size=len(data),
    )


def build_info(*, commit: str, version: str, built_at: str) -> bytes:
    """What /version reports: the commit and version, and the commit time as the build time."""
    info = {"commit": commit, "version": version, "built_at": built_at}
    return (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()


def export_requirements(*, pyproject: bytes, lock: bytes) -> str:
    """The runtime requirements pinned by this lock, hashed; refuses infrastructure or dev packages."""
    with tempfile.TemporaryDirectory(prefix="backend-iac-export-") as scratch:
        Path(scratch, "pyproject.toml").write_bytes(pyproject)
        Path(scratch, "uv.lock").write_bytes(lock)
        try:
            result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                (uv_executable(), *UV_EXPORT), cwd=scratch, capture_output=True, check=False, timeout=120
            )
        except FileNotFoundError:
            raise PackagingError("uv is not on PATH; run `make bootstrap` (it installs uv)") from None
    if result.returncode != 0:
        msg = f"`uv {' '.join(UV_EXPORT)}` failed (is uv.lock current? run `uv lock`):\n{result.stderr.decode()}"
        raise PackagingError(msg)
    text = result.stdout.decode()
    names = requirement_names(text)
    forbidden = sorted(names & FORBIDDEN_REQUIREMENTS)
    if forbidden:
        msg = f"runtime requirements include {', '.join(forbidden)}: move them to a dependency group"
        raise PackagingError(msg)
    header = "# The service's runtime dependencies, exported from uv.lock by `backend-iac package`.\n"
    return header + text


def uv_executable() -> str:
    """`uv run` names itself in $UV; otherwise uv from PATH, or where `make bootstrap` puts it."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return found
    return str(Path.home() / ".local" / "bin" / "uv")


def requirement_names(requirements: str) -> set[str]:
    """Normalised distribution names pinned in a requirements file."""
    names: set[str] = set()
    for line in requirements.splitlines():
        match = _REQUIREMENT_NAME.match(line.strip())
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


def check_startup_modules(contents: Mapping[str, bytes]) -> None:
    """The modules the startup command names (app and gunicorn config) must be in the artifact."""
    modules = (ASGI_APP.split(":", 1)[0], GUNICORN_CONFIG.removeprefix("python:"))
    missing = [module for module in modules if f"{module.replace('.', '/')}.py" not in contents]
    if missing:
        msg = f"the startup command imports {', '.join(missing)}, which the artifact does not contain"
        raise PackagingError(msg)
    if "gunicorn" not in requirement_names(contents[REQUIREMENTS_FILE].decode()):
        raise PackagingError("the startup command runs gunicorn, which the runtime requirements do not pin")


def zip_bytes(contents: Mapping[str, bytes], *, timestamp: datetime) -> bytes:
    """A zip whose bytes depend only on `contents` and `timestamp`: sorted, fixed modes and times."""
    when = max(timestamp.astimezone(UTC), ZIP_EPOCH)
    date_time = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(contents):
            entry = zipfile.ZipInfo(name, date_time=date_time)
            entry.create_system = 3  # Unix, so external_attr carries the mode
            entry.external_attr = FILE_MODE << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, contents[name], compresslevel=COMPRESS_LEVEL)
    return buffer.getvalue()


def declared_data_files(pyproject: Mapping[str, object]) -> frozenset[str]:
    """The data files pyproject.toml declares under [tool.backend-iac.package] data-files (none by default)."""
    table: object = pyproject
    for key in DATA_FILES_TABLE:
        table = table.get(key, {}) if isinstance(table, Mapping) else {}
    declared = table.get(DATA_FILES_KEY, []) if isinstance(table, Mapping) else None
    if not isinstance(declared, list) or not all(isinstance(path, str) for path in declared):
        msg = f"pyproject.toml: [{'.'.join(DATA_FILES_TABLE)}] {DATA_FILES_KEY} must be a list of paths"
        raise PackagingError(msg)
    outside = [path for path in declared if not path.startswith(f"{SOURCE_PACKAGE}/") or ".." in path]
    if outside:
        msg = f"pyproject.toml: {DATA_FILES_KEY} may only name files under {SOURCE_PACKAGE}/: {', '.join(outside)}"
        raise PackagingError(msg)
    return frozenset(declared)


def allowed_contents(tree: Mapping[str, bytes], data_files: frozenset[str]) -> dict[str, bytes]:
    """The service tree's files the allow-list admits; PackagingError naming every other one."""
    contents: dict[str, bytes] = {}
    refused: list[str] = []
    for path, data in tree.items():
        if not path.startswith(f"{SOURCE_PACKAGE}/"):
            continue
        if path in data_files:
            contents[path] = data
        elif path.endswith(MODULE_SUFFIX):
            if not EXCLUDED_PARTS.intersection(path.split("/")[:-1]):
                contents[path] = data
        else:
            refused.append(path)
    missing = sorted(data_files - contents.keys())
    if missing:
        msg = f"pyproject.toml declares data files the commit does not hold: {', '.join(missing)}"
        raise PackagingError(msg)
    if refused:
        lines = [
            f"  {path}"
            + (
                "  (looks like a secret: rotate it if it ever held a real one)"
                if _SECRET_LIKE.search(path)
                else ""
            )
            for path in sorted(refused)
        ]
        msg = (
            f"{len(refused)} file(s) under {SOURCE_PACKAGE}/ are not Python modules nor declared data files, "
            "so they do not ship and the build stops:\n"
            + "\n".join(lines)
            + "\nRemove them from git (`git rm --cached <file>`; .gitignore keeps .env*, *.pem, *.key and id_* "
            f"out), or declare a file the service reads under [{'.'.join(DATA_FILES_TABLE)}] {DATA_FILES_KEY} "
            "in pyproject.toml."
        )
        raise PackagingError(msg)
    return contents


def _files_at_commit(root: Path, commit: str, paths: Iterable[str]) -> dict[str, bytes]:
    """The regular files under `paths` exactly as the commit stores them."""
    archive = _git(root, "archive", "--format=tar", commit, "--", *paths)
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return files


def _warn_about_uncommitted_changes(root: Path, commit: str) -> None:
    head = _git(root, "rev-parse", "HEAD").decode().strip()
    changed = _git(root, "status", "--porcelain", "--", SOURCE_PACKAGE, "pyproject.toml", "uv.lock").decode()
    if head == commit and changed.strip():
        print(
            f"backend-iac package: note: packaging commit {commit[:12]}; uncommitted changes are not included:\n"
            + changed.rstrip(),
            file=sys.stderr,
        )


def _git(root: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            ("git", "-C", str(root), *args),  # noqa: S607 - git from PATH, as developers and runners have it
            capture_output=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError:
        raise PackagingError("git is not on PATH: the artifact is built from a commit") from None
    if result.returncode != 0:
        msg = f"git {' '.join(args)} failed in {root}: {result.stderr.decode().strip()}"
        raise PackagingError(msg)
    return result.stdout
