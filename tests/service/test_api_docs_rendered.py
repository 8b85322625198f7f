"""/docs and /redoc render, scripts and all, with nothing but this service to load from.

The pages run in jsdom (a standards DOM written in JavaScript, github.com/jsdom/jsdom; `make dom` installs
it), fetched over HTTP from the service under its real start command. Every load the page asks for from
another origin (a CDN, a font host) is refused and recorded, so a page that needs the internet renders
its error instead of the API's title. jsdom is not a browser: it has no layout engine, no `fetch` (lent
Node's, held to the same origin) and no Web Workers (ReDoc's search index gets a worker that never
answers, so search itself is not exercised).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.slow

DOM_DIR = Path(__file__).resolve().parents[1] / "support" / "dom"
RENDER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def docs_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    home = tmp_path_factory.mktemp("docs-service")
    env = {"APP_ENV": "development", "DATABASE_URL": f"sqlite:///{home / 'db.sqlite3'}", "HOME": str(home)}
    with ServiceProcess(env, workers=1) as service:
        yield service


def _render(url: str, selector: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is not installed: `make dom` installs Node.js and jsdom"
    assert (DOM_DIR / "node_modules" / "jsdom").is_dir(), (
        f"jsdom is not installed: run `make dom` ({DOM_DIR})"
    )
    result = subprocess.run(
        [node, "render.mjs", url, selector, str(RENDER_TIMEOUT_MS)],
        cwd=DOM_DIR,
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_MS / 1000 + 30,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rendered: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return rendered


@pytest.mark.parametrize(
    ("page", "selector", "title", "script"),
    [
        ("/docs", ".swagger-ui .info .title", "backend-iac 0.1.0", "/docs/assets/swagger-ui-bundle.js"),
        ("/redoc", "h1", "backend-iac (0.1.0)", "/docs/assets/redoc.standalone.js"),
    ],
    ids=["swagger-ui", "redoc"],
)
def test_docs_page_renders_the_api_from_this_service_alone(
    docs_service: ServiceProcess, page: str, selector: str, title: str, script: str
) -> None:
    """The page's script runs, fetches /openapi.json from here and renders the API's title; it asked
    no other host for anything (an offline machine sees the same page)."""
    rendered = _render(docs_service.url + page, selector)
    assert rendered["foreign"] == [], rendered
    assert rendered["rendered"], rendered
    assert rendered["text"].startswith(title), rendered
    assert script in rendered["loaded"], rendered
    assert "/openapi.json" in rendered["loaded"], rendered
    assert rendered["errors"] == [], rendered


def test_redoc_lists_every_operation_of_the_api(docs_service: ServiceProcess) -> None:
    """Not just a title: ReDoc's menu holds an entry for each operation of the OpenAPI document."""
    rendered = _render(docs_service.url + "/redoc", ".menu-content")
    assert rendered["rendered"], rendered
    for summary in (
        "Create an item",
        "Read one item",
        "Change an item's fields",
        "Delete an item",
        "Liveness",
    ):
        assert summary in rendered["text"], rendered["text"]
