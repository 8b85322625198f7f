"""Shared fixtures: a real PostgreSQL server, a local OIDC issuer, stores on both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend_iac.evaluation_cache import CACHE_DIR_ENV, EvaluationCache
from service.config import Settings, load_settings
from service.db.factory import open_store
from service.db.store import Store
from service.main import create_app
from tests.support.issuer import AUDIENCE, LocalIssuer
from tests.support.postgres import PostgresServer
from tests.support.tcp_proxy import FreezableProxy


@pytest.fixture(autouse=True)
def evaluation_cache_dir(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`backend-iac plan`/`doctor` (in process or not) never use the user's evaluation cache here.

    The cache's own tests (tests/backend_iac/test_evaluation_cache.py) each start with an empty one. Every
    other test shares one cache for the session: its key hashes every input of an evaluation (see
    `shared_evaluations` below), so a test that wrote a different program or config evaluates afresh,
    and one that did not reads back what an identical evaluation gave.
    """
    own = request.node.path.name == "test_evaluation_cache.py"
    directory = (
        _cache_root(tmp_path_factory) / uuid.uuid4().hex if own else _shared_cache_dir(tmp_path_factory)
    )
    monkeypatch.setenv(CACHE_DIR_ENV, str(directory))


def _cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "evaluation-cache"


def _shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_root(tmp_path_factory) / "shared"


@pytest.fixture(scope="session")
def shared_evaluations(tmp_path_factory: pytest.TempPathFactory) -> EvaluationCache:
    """One evaluation cache for the whole session, for tests that evaluate the program many times over
    (the stack and doctor suites). Its key hashes every input of an evaluation (config values, each file
    of stack/ and service/*.py, the tool's code, the installed packages: backend_iac/evaluation_cache.py),
    so a test that changed any of them evaluates afresh; one that did not gets the answer an identical
    evaluation gave, read back and checked equal when it was stored. The same directory the CLI is pointed
    at (evaluation_cache_dir), so an evaluation made either way serves both."""
    return EvaluationCache(_shared_cache_dir(tmp_path_factory))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (Debian's package, run as the postgres user)."""
    server = PostgresServer()
    server.init()
    server.start()
    server.create_role()
    yield server
    server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def postgres_proxy(postgres_server: PostgresServer) -> Iterator[FreezableProxy]:
    """A loopback relay in front of the server that can freeze: the server stops answering, connections stay open."""
    with FreezableProxy(postgres_server.port) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def issuer() -> Iterator[LocalIssuer]:
    """A local OIDC issuer (discovery + JWKS over HTTP on 127.0.0.1)."""
    local = LocalIssuer().start()
    yield local
    local.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both backends: a fresh SQLite file, then a fresh Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'items.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def settings(database_url: str, issuer: LocalIssuer, tmp_path: Path) -> Settings:
    """Production-like settings: a real issuer over HTTP, the database under test."""
    return load_settings(
        app_env="production",
        database_url=database_url,
        auth_issuer=issuer.url,
        auth_audience=AUDIENCE,
        auth_jwks_refresh_interval=1.0,
        build_info_path=tmp_path / "missing-build-info.json",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in process, lifespan run, against the database under test and the local issuer."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth(issuer: LocalIssuer) -> Callable[..., dict[str, str]]:
    """Headers carrying a fresh token from the local issuer (keyword arguments go to mint)."""

    def headers(**claims: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.mint(**claims)}"}  # type: ignore[arg-type]

    return headers


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, as the service does under uvicorn."""
    return "asyncio"


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """A migrated store on the backend under test."""
    opened = open_store(settings)
    await opened.migrate()
    yield opened
    await opened.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability suites' figures, in the test log whatever pytest captured."""
    from tests.reliability.figures import REPORTED

    if REPORTED:
        terminalreporter.section("reliability figures")
        for line in REPORTED:
            terminalreporter.write_line(line)
