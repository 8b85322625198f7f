"""Runtime: what App Service will run, as the stack declares it, against the service in the repository."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from backend_iac.doctor.findings import Finding, Severity
from backend_iac.doctor.repository import APP_SERVICE_PLAN, POSTGRES_SERVER, Repository

_GUNICORN_DEFAULT_TIMEOUT = 30


def _finding(code: str, severity: Severity, file: str, line: int | None, message: str, fix: str) -> Finding:
    return Finding(code, severity, "runtime", file, line, message, fix)


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _option(words: list[str], *names: str) -> str | None:
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                return words[index + 1]
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _positional(words: list[str]) -> list[str]:
    """gunicorn's positional arguments (the APP_MODULE), skipping options and their values."""
    flags_without_value = {"--reload", "--daemon", "-D", "--preload", "--check-config", "--print-config"}
    out: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = "=" not in word and word not in flags_without_value
        else:
            out.append(word)
    return out


def _timeout_from_config(path: Path, settings: dict[str, str]) -> tuple[int | None, str, int | None]:
    """`timeout` as the config module sets it (a literal, or int(os.environ.get("NAME", "default"))),
    how it was read, and its line."""
    tree = _parse(path)
    if tree is None:
        return None, f"{path.name} could not be parsed", None
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "timeout" for t in node.targets)
        ):
            continue
        try:
            return int(ast.literal_eval(node.value)), f"timeout = {ast.unparse(node.value)}", node.lineno
        except (ValueError, TypeError, SyntaxError):
            pass
        source = ast.unparse(node.value)
        match = re.search(r"""(?:environ\.get|getenv)\(\s*['"](\w+)['"]\s*,\s*['"]?(\d+)['"]?\s*\)""", source)
        if match:
            name, default = match.groups()
            if name in settings and settings[name].strip().isdigit():
                return int(settings[name]), f"app setting {name}={settings[name]}", node.lineno
            return int(default), f"timeout = {source} (default)", node.lineno
        return None, f"timeout = {source}", node.lineno
    return _GUNICORN_DEFAULT_TIMEOUT, "gunicorn's default (the config sets no timeout)", None


def _startup_definition(root: Path) -> tuple[str, int | None]:
    """Where the start command is defined (the program reads it from there): service/startup.py."""
    path = root / "service" / "startup.py"
    tree = _parse(path)
    for node in tree.body if tree is not None else []:
        if (
            isinstance(node, ast.AnnAssign | ast.Assign)
            and "STARTUP_COMMAND" in ast.unparse(node).split("=")[0]
        ):
            return "service/startup.py", node.lineno
    return "service/startup.py", None


def _startup(repository: Repository) -> Iterator[Finding]:
    from service.startup import FRONT_END_TIMEOUT_SECONDS

    app = repository.web_app
    if app is None:
        return
    site = app.inputs.get("siteConfig") or {}
    command = str(site.get("appCommandLine") or "")
    where, line = _startup_definition(repository.root)
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if not words or Path(words[0]).name != "gunicorn":
        yield _finding(
            "startup-command-unrecognized",
            "warning",
            where,
            line,
            f"the web app's startup command {command!r} is not a gunicorn command: the doctor cannot check "
            "what it starts",
            "set the startup command to service.startup.STARTUP_COMMAND",
        )
        return
    root = repository.root
    positional = _positional(words)
    target = positional[-1] if positional else ""
    module, _, attribute = target.partition(":")
    attribute = attribute.split("(", 1)[0] or "application"
    module_path = _module_file(root, module) if module else None
    if module_path is None:
        yield _finding(
            "startup-module-missing",
            "error",
            where,
            line,
            f"the startup command {command!r} loads module {module!r}, which is not in the repository: the "
            "container starts and every worker dies with ModuleNotFoundError",
            "point the command at the ASGI app's module (service/startup.py ASGI_APP) and keep the package "
            "in the deploy artifact",
        )
    else:
        tree = _parse(module_path)
        if tree is None or attribute not in _top_level_names(tree):
            yield _finding(
                "startup-app-missing",
                "error",
                module_path.relative_to(root).as_posix(),
                None,
                f"the startup command {command!r} loads `{attribute}` from {module}, which defines no "
                f"top-level `{attribute}`: gunicorn fails with 'Failed to find attribute'",
                f"define `{attribute} = create_app()` at the top level of {module_path.name}, or fix the "
                "command's module:attribute",
            )

    settings = repository.app_settings
    config = _option(words, "--config", "-c")
    timeout_source = ""
    timeout: int | None = None
    timeout_line: int | None = None
    command_timeout = _option(words, "--timeout", "-t")
    env_timeout = _option(shlex.split(settings.get("GUNICORN_CMD_ARGS", "")), "--timeout", "-t")
    config_path: Path | None = None
    if config is not None:
        config_path = (
            _module_file(root, config.removeprefix("python:"))
            if config.startswith("python:")
            else (root / config if (root / config).is_file() else None)
        )
        if config_path is None:
            yield _finding(
                "startup-config-missing",
                "error",
                where,
                line,
                f"the startup command's gunicorn config {config!r} is not in the repository: gunicorn exits "
                "before starting a worker",
                "point --config at service/gunicorn_conf.py (python:service.gunicorn_conf)",
            )
    if command_timeout is not None and command_timeout.isdigit():
        timeout, timeout_source = int(command_timeout), f"--timeout {command_timeout} in the startup command"
    elif env_timeout is not None and env_timeout.isdigit():
        timeout, timeout_source = int(env_timeout), f"GUNICORN_CMD_ARGS --timeout {env_timeout}"
    elif config_path is not None:
        timeout, timeout_source, timeout_line = _timeout_from_config(config_path, settings)
    elif config is None:
        timeout, timeout_source = _GUNICORN_DEFAULT_TIMEOUT, "gunicorn's default"
    timeout_file = config_path.relative_to(root).as_posix() if config_path is not None else where
    if config_path is None:
        timeout_line = line
    if timeout is None:
        if config_path is not None:
            yield _finding(
                "gunicorn-timeout-unknown",
                "warning",
                timeout_file,
                timeout_line,
                f"the gunicorn timeout cannot be read offline ({timeout_source})",
                f"set `timeout` to a literal below {FRONT_END_TIMEOUT_SECONDS} s, or to "
                'int(os.environ.get("NAME", "<default>"))',
            )
    elif timeout == 0 or timeout >= FRONT_END_TIMEOUT_SECONDS:
        shown = "0 (never)" if timeout == 0 else f"{timeout} s"
        yield _finding(
            "gunicorn-timeout-too-long",
            "error",
            timeout_file,
            timeout_line,
            f"gunicorn kills a silent worker after {shown} ({timeout_source}), but App Service's front end "
            f"drops a request after {FRONT_END_TIMEOUT_SECONDS} s: clients see 504s while hung workers live on",
            f"keep the timeout well under {FRONT_END_TIMEOUT_SECONDS} s (this service uses 120)",
        )


def _python(repository: Repository) -> Iterator[Finding]:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    from stack.config import PYTHON_VERSIONS

    app = repository.web_app
    if app is None:
        return
    runtime = str((app.inputs.get("siteConfig") or {}).get("linuxFxVersion") or "")
    file, line = repository.config_location("pythonVersion")
    stack_name, _, version = runtime.partition("|")
    if stack_name.upper() != "PYTHON":
        yield _finding(
            "runtime-not-python",
            "error",
            file,
            line,
            f"the web app's runtime is {runtime!r}, not PYTHON|<version>: App Service will not run this "
            "service's start command",
            "set linuxFxVersion to PYTHON|<pythonVersion> (stack/components/web_app.py)",
        )
        return
    requires = str((repository.pyproject.get("project") or {}).get("requires-python") or "")
    try:
        supported = SpecifierSet(requires) if requires else None
        parsed = Version(version)
    except (InvalidSpecifier, InvalidVersion):
        supported, parsed = None, None
    if supported is not None and parsed is not None and parsed not in supported:
        yield _finding(
            "python-version-unsupported",
            "error",
            file,
            line,
            f"the stack runs Python {version} but pyproject.toml requires-python is {requires!r}: the "
            "deployment's pip/Oryx install refuses the project, or it runs on an untested interpreter",
            f"set pythonVersion in {repository.stack_file_name} to a version within {requires!r}",
        )
    if version not in PYTHON_VERSIONS:
        yield _finding(
            "python-version-not-offered",
            "error",
            file,
            line,
            f"App Service's Linux runtime does not offer Python {version} for this stack (offered: "
            f"{', '.join(PYTHON_VERSIONS)})",
            f"set pythonVersion to one of {', '.join(PYTHON_VERSIONS)}",
        )


def _database(repository: Repository) -> Iterator[Finding]:
    plans = repository.resources(APP_SERVICE_PLAN)
    if not plans or repository.web_app is None:
        return
    capacity = int((plans[0].inputs.get("sku") or {}).get("capacity") or 1)
    postgres = _uses_postgres(repository)
    if capacity > 1 and not postgres:
        file, line = repository.config_location("instanceCount")
        yield _finding(
            "sqlite-multiple-instances",
            "error",
            file,
            line,
            f"{capacity} instances share one SQLite file on App Service's network-mounted /home: SQLite's "
            "locking is not safe there across machines, and concurrent writers corrupt or lock the database",
            "set instanceCount: 1, or enablePostgres: true for more than one instance",
        )


def _private_database_routing(repository: Repository) -> Iterator[Finding]:
    """A server with private access answers only inside its VNet: the web app must send its traffic there."""
    app = repository.web_app
    if app is None:
        return
    networks = {
        str(subnet).lower().split("/subnets/", 1)[0]
        for server in repository.resources(POSTGRES_SERVER)
        if (subnet := (server.inputs.get("network") or {}).get("delegatedSubnetResourceId"))
    }
    if not networks:
        return
    subnet = str(app.inputs.get("virtualNetworkSubnetId") or "")
    routing = app.inputs.get("outboundVnetRouting") or {}
    routed_all = (
        (app.inputs.get("siteConfig") or {}).get("vnetRouteAllEnabled") is True
        or routing.get("applicationTraffic") is True
        or routing.get("allTraffic") is True
    )
    file, line = repository.config_location("backend-iac:postgresNetwork")
    if subnet and subnet.lower().split("/subnets/", 1)[0] in networks and routed_all:
        return
    if not subnet:
        why = "the web app is not integrated with any virtual network"
    elif subnet.lower().split("/subnets/", 1)[0] not in networks:
        why = f"the web app is integrated with another network ({subnet})"
    else:
        why = "the web app does not route all its outbound traffic into the network"
    yield _finding(
        "private-database-not-routed",
        "error",
        file,
        line,
        f"the database has private access only (no public endpoint), and {why}: every connection from the "
        "service times out and readiness reports the database down",
        "integrate the web app with the network's App Service subnet and route all traffic "
        "(stack/components/web_app.py integration_subnet), or set postgresNetwork: public",
    )


def required_settings(root: Path) -> tuple[str, ...]:
    """service/config.py's PRODUCTION_REQUIRED_SETTINGS, read from the source (importing pydantic costs more)."""
    tree = _parse(root / "service" / "config.py")
    for node in tree.body if tree is not None else []:
        value: ast.expr | None = None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value if node.target.id == "PRODUCTION_REQUIRED_SETTINGS" else None
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PRODUCTION_REQUIRED_SETTINGS" for t in node.targets
        ):
            value = node.value
        if value is not None:
            try:
                return tuple(str(name) for name in ast.literal_eval(value))
            except ValueError:
                break
    from service.config import PRODUCTION_REQUIRED_SETTINGS

    return tuple(PRODUCTION_REQUIRED_SETTINGS)


def _app_settings_definition(root: Path) -> tuple[str, int | None]:
    """Where the program builds the web app's settings: the line that sets APP_ENV in stack/program.py."""
    try:
        lines = (root / "stack" / "program.py").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "stack/program.py", None
    found = next((number for number, text in enumerate(lines, 1) if '"APP_ENV"' in text), None)
    return "stack/program.py", found


def _production_settings(repository: Repository) -> Iterator[Finding]:
    if repository.web_app is None:
        return
    settings = repository.app_settings
    where, line = _app_settings_definition(repository.root)
    for name in required_settings(repository.root):
        if not settings.get(name, "").strip():
            yield _finding(
                "production-setting-missing",
                "error",
                where,
                line,
                f"the service requires {name} in production, and the stack does not set it on the web app: "
                "start-up is refused with 'invalid configuration'",
                f"set {name} in the web app's app settings (stack/program.py app_settings)",
            )
    if settings.get("APP_ENV", "production") not in ("", "production"):
        yield _finding(
            "production-setting-missing",
            "error",
            where,
            line,
            f"the stack sets APP_ENV={settings['APP_ENV']!r} on the web app: the deployed service would trust "
            "development tokens or skip production checks",
            "set APP_ENV=production in the web app's app settings",
        )


def _uses_postgres(repository: Repository) -> bool:
    return bool(repository.resources(POSTGRES_SERVER)) or repository.app_settings.get(
        "DATABASE_URL", ""
    ).startswith(("postgresql://", "postgres://", "@Microsoft.KeyVault("))


# Why the embedded store runs as it does on App Service (service.db.storage has the sources): /home is
# Azure Storage over SMB/CIFS, SQLite's WAL needs shared memory that a network filesystem cannot give,
# so the service detects the share and uses journal_mode=DELETE with an exclusive lock, in one worker.
_SQLITE_ON_SHARE = (
    "without PostgreSQL the service keeps SQLite under /home, which App Service mounts from Azure Storage "
    "over SMB; there the service detects the share and runs journal_mode=DELETE, locking_mode=EXCLUSIVE "
    "and one gunicorn worker (WAL needs shared memory, which does not work over a network filesystem)"
)


def _sqlite_mode(repository: Repository) -> Iterator[Finding]:
    """The embedded store's mode under the stack's settings: nothing may undo the network-share mode."""
    if repository.web_app is None or _uses_postgres(repository):
        return
    settings = repository.app_settings
    file, line = _app_settings_definition(repository.root)
    if settings.get("SQLITE_STORAGE", "auto").lower() == "local":
        yield _finding(
            "sqlite-storage-forced-local",
            "error",
            file,
            line,
            f"the stack sets SQLITE_STORAGE=local: {_SQLITE_ON_SHARE}; forcing local turns WAL on over the "
            "share, where SQLite apps on App Service report 'database is locked' and WAL risks corruption",
            "remove SQLITE_STORAGE from the app settings (auto detects the share), or enable PostgreSQL",
        )
    workers = settings.get("WEB_CONCURRENCY", "")
    if workers.isdigit() and int(workers) > 1:
        yield _finding(
            "sqlite-web-concurrency-lowered",
            "warning",
            file,
            line,
            f"the stack sets WEB_CONCURRENCY={workers}, but {_SQLITE_ON_SHARE}: the service lowers it to 1 at "
            "start-up, so the setting buys nothing",
            "remove WEB_CONCURRENCY, or enable PostgreSQL to run several workers",
        )


def _worker_count(repository: Repository) -> Iterator[Finding]:
    """A WEB_CONCURRENCY that is not a whole number: gunicorn parses it with int() while importing its own
    config (gunicorn/config.py, Workers.default), before the service's settings check can name it."""
    workers = repository.app_settings.get("WEB_CONCURRENCY")
    if workers is None or workers.strip().isdigit():
        return
    file, line = _app_settings_definition(repository.root)
    yield _finding(
        "gunicorn-workers-not-a-number",
        "error",
        file,
        line,
        f"the stack sets WEB_CONCURRENCY={workers!r}: gunicorn reads it with int() before any code of the "
        "service runs, so the container exits with 'ValueError: invalid literal for int()' and never starts",
        "set WEB_CONCURRENCY to a whole number from 1 to 32, or remove it (the service's default is 2)",
    )


def check(repository: Repository) -> list[Finding]:
    if repository.evaluation is None:
        return []
    if repository.web_app is None:
        return [
            _finding(
                "web-app-missing",
                "error",
                "stack/program.py",
                None,
                "the stack program declares no azure-native:web:WebApp: there is nothing to run the service",
                "declare the WebApp component in stack/program.py",
            )
        ]
    return [
        *_startup(repository),
        *_python(repository),
        *_database(repository),
        *_worker_count(repository),
        *_sqlite_mode(repository),
        *_private_database_routing(repository),
        *_production_settings(repository),
    ]
