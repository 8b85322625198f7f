"""/docs and /redoc work with no network beyond this service: every asset they load is served here."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

_ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize(
    ("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_docs_pages_load_every_asset_from_this_service(client: TestClient, page: str, script: str) -> None:
    """The page names no other host, and each script, stylesheet and icon it loads is served (200)."""
    response = client.get(page)
    assert response.status_code == 200, response.text
    html = response.text
    assert "cdn." not in html
    assert "fonts.googleapis" not in html
    assets = _ASSET.findall(html)
    assert any(asset.endswith(script) for asset in assets), assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


def test_docs_assets_refuse_paths_outside_their_folder(client: TestClient) -> None:
    """The asset mount serves its own files only: a traversal is 404, not a file of the machine."""
    assert client.get("/docs/assets/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get("/docs/assets/nope.js").status_code == 404
