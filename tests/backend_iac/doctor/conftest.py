"""A minimal repository tree for the doctor: the real Pulumi.yaml, service files and pyproject, with a
dev stack file and workflows written here (shaped like the real ones) so the tests do not move when the
real workflows do. Each test breaks exactly one thing in it."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend_iac.doctor.command import diagnose
from backend_iac.doctor.findings import Finding
from backend_iac.evaluation_cache import EvaluationCache

REPO = Path(__file__).resolve().parents[3]
SHA = "a457da9ea143d694b1b9c7c869ebb04ebe844ef5"

STACK_CONFIG: dict[str, Any] = {
    "azure-native:location": "westeurope",
    "backend-iac:githubRepository": "example-org/backend-iac",
}

CI = f"""\
name: ci
on:
  pull_request:
  push:
    branches: [main]
permissions: {{}}
jobs:
  test:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - run: make test
      - run: uv run backend-iac doctor
  preview:
    if: github.event_name == 'pull_request' && github.event.pull_request.head.repo.full_name == github.repository
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    env:
      ARM_USE_OIDC: "true"
      ARM_CLIENT_ID: ${{{{ vars.AZURE_PREVIEW_CLIENT_ID }}}}
      ARM_TENANT_ID: ${{{{ vars.AZURE_TENANT_ID }}}}
      ARM_SUBSCRIPTION_ID: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
    steps:
      - name: Azure sign-in (preview identity)
        uses: azure/login@{SHA}
        with:
          client-id: ${{{{ vars.AZURE_PREVIEW_CLIENT_ID }}}}
          tenant-id: ${{{{ vars.AZURE_TENANT_ID }}}}
          subscription-id: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
      - uses: pulumi/actions@{SHA}
        with:
          command: preview
          stack-name: dev
"""

DEPLOY = f"""\
name: deploy
on:
  push:
    branches: [main]
  workflow_dispatch:
permissions: {{}}
jobs:
  up:
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    outputs:
      web_app_name: ${{{{ steps.up.outputs.web_app_name }}}}
      resource_group: ${{{{ steps.up.outputs.resource_group }}}}
      url: ${{{{ steps.up.outputs.url }}}}
    env:
      ARM_USE_OIDC: "true"
      ARM_CLIENT_ID: ${{{{ vars.AZURE_CLIENT_ID }}}}
      ARM_TENANT_ID: ${{{{ vars.AZURE_TENANT_ID }}}}
      ARM_SUBSCRIPTION_ID: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
    steps:
      - name: pulumi up
        id: up
        uses: pulumi/actions@{SHA}
        with:
          command: up
          stack-name: dev
  deploy:
    needs: [up]
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    steps:
      - name: Azure sign-in (deploy identity)
        uses: azure/login@{SHA}
        with:
          client-id: ${{{{ vars.AZURE_CLIENT_ID }}}}
          tenant-id: ${{{{ vars.AZURE_TENANT_ID }}}}
          subscription-id: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
      - name: Zip deploy
        env:
          APP_NAME: ${{{{ needs.up.outputs.web_app_name }}}}
          RESOURCE_GROUP: ${{{{ needs.up.outputs.resource_group }}}}
        run: |
          az webapp deploy --name "$APP_NAME" --resource-group "$RESOURCE_GROUP" \\
            --src-path dist/app.zip --type zip
  gate:
    needs: [up, deploy]
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - name: Runtime gate
        env:
          URL: ${{{{ needs.up.outputs.url }}}}
        run: uv run backend-iac verify --url "$URL" --commit "$GITHUB_SHA"
"""

DESTROY = f"""\
name: destroy
on:
  workflow_dispatch:
    inputs:
      confirm:
        description: Type the stack name to confirm
        required: true
        type: string
permissions: {{}}
jobs:
  destroy:
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    env:
      STACK: dev
      ARM_USE_OIDC: "true"
      ARM_CLIENT_ID: ${{{{ vars.AZURE_CLIENT_ID }}}}
      ARM_TENANT_ID: ${{{{ vars.AZURE_TENANT_ID }}}}
      ARM_SUBSCRIPTION_ID: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
    steps:
      - name: Confirmation must equal the stack name
        env:
          CONFIRM: ${{{{ inputs.confirm }}}}
        run: |
          if [ "$CONFIRM" != "$STACK" ]; then exit 1; fi
      - uses: pulumi/actions@{SHA}
      - name: pulumi destroy
        run: pulumi destroy --yes --stack "$STACK"
"""

WORKFLOWS = {"ci.yml": CI, "deploy.yml": DEPLOY, "destroy.yml": DESTROY}


class Tree:
    """A repository root in a temporary directory, with helpers to break one thing at a time."""

    def __init__(self, root: Path, evaluations: EvaluationCache | None = None) -> None:
        self.root = root
        self.config: dict[str, Any] = dict(STACK_CONFIG)
        # The session's shared cache: a tree whose program files and config another test already
        # evaluated is not evaluated again (the key covers every input; see tests/conftest.py).
        self.evaluations = evaluations

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8")

    def replace(self, relative: str, old: str, new: str) -> None:
        text = self.read(relative)
        assert old in text, f"{old!r} not in {relative}"
        (self.root / relative).write_text(text.replace(old, new), encoding="utf-8")

    def ungate(self, relative: str) -> None:
        """Drop the jobs' `if: github.ref == 'refs/heads/main'`, so every trigger's subject is presented."""
        self.replace(relative, "    if: github.ref == 'refs/heads/main'\n", "")

    def set_config(self, **overrides: Any) -> None:
        """Short keys get backend-iac:; None removes the key."""
        for key, value in overrides.items():
            qualified = key if ":" in key else f"backend-iac:{key}"
            if value is None:
                self.config.pop(qualified, None)
            else:
                self.config[qualified] = value
        self.write("Pulumi.dev.yaml", yaml.safe_dump({"config": self.config}, sort_keys=False))

    def workflow(self, name: str, text: str) -> None:
        self.write(f".github/workflows/{name}", text)

    def findings(self) -> list[Finding]:
        return diagnose(self.root, "dev", cache=self.evaluations)


@pytest.fixture
def tree(tmp_path: Path, shared_evaluations: EvaluationCache) -> Tree:
    """A clean tree: the doctor finds nothing in it."""
    for relative in (
        "Pulumi.yaml",
        "pyproject.toml",
        "service/startup.py",
        "service/main.py",
        "service/gunicorn_conf.py",
        "service/config.py",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, tmp_path / relative)
    # The tree's own program: the doctor evaluates the checkout it is pointed at, not this one.
    shutil.copytree(REPO / "stack", tmp_path / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    built = Tree(tmp_path, shared_evaluations)
    built.set_config()
    for name, text in WORKFLOWS.items():
        built.workflow(name, text)
    return built


FindingsOf = Callable[[list[Finding], str], list[Finding]]


def of(findings: list[Finding], code: str) -> list[Finding]:
    """The findings with `code`."""
    return [finding for finding in findings if finding.code == code]


def only(findings: list[Finding]) -> Finding:
    """The single finding; fails with all of them listed otherwise."""
    assert len(findings) == 1, "\n".join(
        f"{f.code} {f.severity} {f.file}:{f.line} {f.message}" for f in findings
    )
    return findings[0]
