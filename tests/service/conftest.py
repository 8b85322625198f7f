"""Fixtures for API tests: the app (in process, lifespan run) on the backend under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.support.issuer import LocalIssuer


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan run, against the database under test and the local issuer."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth(issuer: LocalIssuer) -> Callable[..., dict[str, str]]:
    """Headers carrying a fresh token from the local issuer (keyword arguments go to mint)."""

    def headers(**claims: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.mint(**claims)}"}  # type: ignore[arg-type]

    return headers
