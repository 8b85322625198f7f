"""Property fuzzing: schemathesis against the service's own OpenAPI document, with valid tokens."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.reliability.conftest import ServiceFactory, bearer
from tests.reliability.figures import report
from tests.support.issuer import LocalIssuer

pytestmark = pytest.mark.reliability

EXAMPLES_PER_OPERATION = {"postgres": 100, "sqlite": 15}  # SQLite's own run is shorter: the same API

# Two answers the Idempotency-Key draft prescribes and schemathesis reads as faults:
# - generated creates reuse small keys ("0") with other bodies; the API answers 422, which the
#   positive-data check calls a valid request rejected: for the create, 422 joins the accepted answers;
# - a create repeated with a key and body seen before replays the original 201, even when that item was
#   deleted since (the draft: "respond with the result of the previously completed operation"); the
#   stateful phase then follows the replayed Location to a 404 and calls it a created resource not found.
#   That one check is excluded on the command line (its configuration, per operation or global, did
#   not take in schemathesis 4.32.5: the stateful phase ran it anyway); every other check stays on.
SCHEMATHESIS_CONFIG = """\
[[operations]]
include-path = "/api/v1/items"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    backend: str,
    start_service: ServiceFactory,
    issuer: LocalIssuer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Every operation, a few hundred generated requests (valid and invalid): no 5xx, every response as documented."""
    env = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if backend == "postgres" else {}
    service = start_service(**env)
    seed = random.getrandbits(32)
    started = time.monotonic()
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "ensure_resource_availability",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION[backend]),
            "--seed",
            str(seed),
            "--header",
            f"Authorization: Bearer {issuer.mint(subject='fuzzer', ttl=3600)}",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ],
        cwd=tmp_path,  # anything it writes stays out of the repository
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    seconds = time.monotonic() - started
    counts = re.search(r"(\d+) generated, (.*)", result.stdout)
    operations = re.search(r"Tested: (\d+)", result.stdout)
    report(
        f"fuzz-{backend}",
        seed=seed,
        operations=operations.group(1) if operations else "?",
        cases=counts.group(1) if counts else "?",
        outcome=(counts.group(2).replace(" ", "_") if counts else "?"),
        server_errors=service.logs().count('"status": 500'),
        seconds=seconds,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert '"status": 500' not in service.logs()


def test_every_error_response_is_documented_as_a_problem_document(client: TestClient) -> None:
    """The OpenAPI document says what errors really are: application/problem+json with the Problem schema."""
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            assert "431" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "408", "413", "422"} <= set(operation["responses"]), (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_patch_refuses_a_null_name_as_the_schema_says(client: TestClient, issuer: LocalIssuer) -> None:
    """`name` may be left out of a PATCH but not null: the schema does not allow null, the API answers 422."""
    headers = bearer(issuer.mint(subject="patcher"))
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ItemUpdate"]
    assert schema["properties"]["name"]["type"] == "string"
    created = client.post("/api/v1/items", json={"name": "named"}, headers=headers)
    refused = client.patch(created.headers["location"], json={"name": None}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "name"
    kept = client.patch(created.headers["location"], json={"description": "only this"}, headers=headers)
    assert kept.json()["name"] == "named"


def test_method_not_allowed_lists_every_method_of_the_path(client: TestClient) -> None:
    """A 405 names all the methods the path serves, not those of the first route that matched it."""
    response = client.request("PUT", "/api/v1/items/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert httpx.codes(client.put("/api/v1/items").status_code) == 405
    assert client.put("/api/v1/items").headers["allow"] == "GET, POST"
