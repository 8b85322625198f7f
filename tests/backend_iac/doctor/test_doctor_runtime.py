"""Runtime: the start command, gunicorn's timeout, the Python version, SQLite and production settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.backend_iac.doctor.conftest import Tree, of, only


def test_startup_module_missing(tree: Tree) -> None:
    """The start command's module is not in the repository: ModuleNotFoundError on App Service."""
    (tree.root / "service/main.py").unlink()
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("startup-module-missing", "runtime", "error")
    assert finding.file == "service/startup.py"
    assert finding.line is not None


def test_startup_attribute_missing(tree: Tree) -> None:
    """The module exists but defines no `app`: gunicorn cannot find the attribute."""
    tree.write("service/main.py", "def create_app() -> object:\n    return object()\n")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("startup-app-missing", "runtime", "error")
    assert finding.file == "service/main.py"


def test_gunicorn_config_missing(tree: Tree) -> None:
    """The start command's gunicorn config module is not in the repository."""
    (tree.root / "service/gunicorn_conf.py").unlink()
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("startup-config-missing", "runtime", "error")


def test_gunicorn_timeout_beyond_the_front_end(tree: Tree) -> None:
    """A worker timeout of 300 s outlives App Service's 230 s front end."""
    tree.replace("service/gunicorn_conf.py", "timeout = 120", "timeout = 300")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "gunicorn-timeout-too-long",
        "runtime",
        "error",
    )
    assert "230" in finding.message
    assert finding.file == "service/gunicorn_conf.py"
    assert finding.line == tree.read("service/gunicorn_conf.py").splitlines().index("timeout = 300") + 1


def test_gunicorn_timeout_from_the_environment_uses_its_default(tree: Tree) -> None:
    """`timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))` is read as its default, 600."""
    tree.replace(
        "service/gunicorn_conf.py",
        "timeout = 120",
        'timeout = int(os.environ.get("GUNICORN_TIMEOUT", "600"))',
    )
    finding = only(tree.findings())
    assert finding.code == "gunicorn-timeout-too-long"
    assert "600" in finding.message


def test_gunicorn_timeout_that_cannot_be_read(tree: Tree) -> None:
    """A computed timeout is reported as unknown, a warning."""
    tree.replace("service/gunicorn_conf.py", "timeout = 120", "timeout = compute()")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "gunicorn-timeout-unknown",
        "runtime",
        "warning",
    )


def test_python_version_outside_requires_python(tree: Tree) -> None:
    """The stack's Python 3.12 is outside a requires-python of >=3.13."""
    tree.replace("pyproject.toml", 'requires-python = ">=3.11"', 'requires-python = ">=3.13"')
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "python-version-unsupported",
        "runtime",
        "error",
    )
    assert finding.file == "Pulumi.yaml"  # where pythonVersion's default is declared


def test_python_version_set_in_the_stack_file_points_there(tree: Tree) -> None:
    """pythonVersion set in Pulumi.dev.yaml: the finding points at that line."""
    tree.set_config(pythonVersion="3.11")
    tree.replace("pyproject.toml", 'requires-python = ">=3.11"', 'requires-python = ">=3.12"')
    finding = only(tree.findings())
    assert finding.code == "python-version-unsupported"
    assert finding.file == "Pulumi.dev.yaml"
    assert (
        finding.line
        == tree.read("Pulumi.dev.yaml").splitlines().index("  backend-iac:pythonVersion: '3.11'") + 1
    )


def test_sqlite_with_more_than_one_instance(tree: Tree) -> None:
    """Two instances on the embedded SQLite share one file over the network share."""
    tree.set_config(instanceCount=2)
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "sqlite-multiple-instances",
        "runtime",
        "error",
    )


def test_postgres_with_more_than_one_instance_is_fine(tree: Tree) -> None:
    """With Postgres on, several instances are fine."""
    tree.set_config(instanceCount=2, enablePostgres=True)
    assert tree.findings() == []


def test_production_setting_the_stack_does_not_set(tree: Tree) -> None:
    """A setting the service requires in production and the stack does not set."""
    tree.replace(
        "service/config.py",
        'PRODUCTION_REQUIRED_SETTINGS: Final = ("APP_ENV", "AUTH_ISSUER", "AUTH_AUDIENCE")',
        'PRODUCTION_REQUIRED_SETTINGS: Final = ("APP_ENV", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL")',
    )
    finding = only(of(tree.findings(), "production-setting-missing"))
    assert (finding.layer, finding.severity) == ("runtime", "error")
    assert "AUTH_JWKS_URL" in finding.message


AppSettings = Callable[..., None]
_LAST_APP_SETTING = '        "AZURE_CLIENT_ID": identity_client_id,\n'


@pytest.fixture
def add_app_settings(tree: Tree) -> AppSettings:
    """Adds settings to those the tree's own program gives the web app (the doctor evaluates that program,
    not this checkout's, so the program file itself is changed)."""

    def add(**settings: str) -> None:
        extra = "".join(f"        {name!r}: {value!r},\n" for name, value in settings.items())
        tree.replace("stack/program.py", _LAST_APP_SETTING, _LAST_APP_SETTING + extra)

    return add


def test_sqlite_forced_local_on_app_service_is_an_error(tree: Tree, add_app_settings: AppSettings) -> None:
    """SQLITE_STORAGE=local would turn WAL on over App Service's SMB share: refused, with why."""
    add_app_settings(SQLITE_STORAGE="local")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "sqlite-storage-forced-local",
        "runtime",
        "error",
    )
    assert "journal_mode=DELETE" in finding.message
    assert "network filesystem" in finding.message
    assert finding.file == "stack/program.py"


def test_sqlite_with_several_workers_explains_the_single_worker(
    tree: Tree, add_app_settings: AppSettings
) -> None:
    """WEB_CONCURRENCY above 1 on the embedded store is lowered at start-up: the doctor says so."""
    add_app_settings(WEB_CONCURRENCY="4")
    finding = only(tree.findings())
    assert (finding.code, finding.severity) == ("sqlite-web-concurrency-lowered", "warning")
    assert "lowers it to 1" in finding.message


@pytest.mark.parametrize("workers", ["two", "", "2.5"])
def test_a_worker_count_gunicorn_cannot_parse_is_an_error(
    tree: Tree, add_app_settings: AppSettings, workers: str
) -> None:
    """WEB_CONCURRENCY that is not a whole number kills gunicorn at import: the doctor says so first."""
    add_app_settings(WEB_CONCURRENCY=workers)
    finding = only(of(tree.findings(), "gunicorn-workers-not-a-number"))
    assert finding.severity == "error"
    assert "invalid literal for int()" in finding.message
    assert finding.file == "stack/program.py"


def test_postgres_makes_the_sqlite_settings_moot(tree: Tree, add_app_settings: AppSettings) -> None:
    """With PostgreSQL on, SQLITE_STORAGE and WEB_CONCURRENCY mean nothing to the doctor."""
    tree.set_config(enablePostgres=True)
    add_app_settings(SQLITE_STORAGE="local", WEB_CONCURRENCY="4")
    assert of(tree.findings(), "sqlite-storage-forced-local") == []
    assert of(tree.findings(), "sqlite-web-concurrency-lowered") == []
