"""Development tokens (`make token`): trusted in development only."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import dev_keys
from service.config import load_settings
from service.main import create_app
from tests.support.issuer import AUDIENCE, LocalIssuer


def test_development_token_works_without_an_identity_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With APP_ENV=development and no issuer, a minted development token creates items."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(app_env="development", database_url=f"sqlite:///{tmp_path}/dev.sqlite3")
    token = dev_keys.mint(subject="dev")
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/items", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 201, response.text
    assert (tmp_path / "var" / "dev-signing-key.pem").stat().st_mode & 0o077 == 0


def test_production_refuses_development_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer
) -> None:
    """A development token means nothing to a production service trusting a real issuer."""
    monkeypatch.chdir(tmp_path)
    token = dev_keys.mint(subject="dev")
    settings = load_settings(
        app_env="production",
        database_url=f"sqlite:///{tmp_path}/prod.sqlite3",
        auth_issuer=issuer.url,
        auth_audience=AUDIENCE,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
