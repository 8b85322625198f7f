"""Pipeline: permissions, sign-in inputs, names from stack outputs, manual destroy, the runtime gate."""

from __future__ import annotations

from tests.backend_iac.doctor.conftest import SHA, Tree, only

DEPLOY = ".github/workflows/deploy.yml"
DESTROY = ".github/workflows/destroy.yml"


def test_job_signing_in_without_id_token_write(tree: Tree) -> None:
    """The up job without `id-token: write` cannot get an OIDC token."""
    tree.replace(
        DEPLOY,
        "      contents: read\n      id-token: write\n    outputs:",
        "      contents: read\n    outputs:",
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("id-token-missing", "pipeline", "error")
    assert "`up`" in finding.message
    assert finding.line == tree.read(DEPLOY).splitlines().index("    permissions:") + 1


def test_workflow_level_id_token_covers_jobs_without_permissions(tree: Tree) -> None:
    """Workflow-level `id-token: write` applies to a job that declares no permissions of its own."""
    tree.replace(DEPLOY, "permissions: {}\n", "permissions:\n  contents: read\n  id-token: write\n")
    tree.replace(
        DEPLOY, "    permissions:\n      contents: read\n      id-token: write\n    outputs:", "    outputs:"
    )
    assert tree.findings() == []


def test_job_level_permissions_replace_the_workflow_level(tree: Tree) -> None:
    """Job-level permissions replace the workflow's entirely: workflow id-token does not reach the job."""
    tree.replace(DEPLOY, "permissions: {}\n", "permissions:\n  id-token: write\n")
    tree.replace(
        DEPLOY,
        "      contents: read\n      id-token: write\n    outputs:",
        "      contents: read\n    outputs:",
    )
    finding = only(tree.findings())
    assert finding.code == "id-token-missing"
    assert "job-level permissions" in finding.message


def test_no_permissions_anywhere_is_missing_id_token(tree: Tree) -> None:
    """With no permissions at all, GitHub's default token has no id-token."""
    tree.replace(DESTROY, "permissions: {}\n", "")
    tree.replace(DESTROY, "    permissions:\n      contents: read\n      id-token: write\n", "")
    finding = only(tree.findings())
    assert (finding.code, finding.file) == ("id-token-missing", DESTROY)
    assert "default token" in finding.message


def test_login_without_tenant_id(tree: Tree) -> None:
    """azure/login without tenant-id cannot exchange the token."""
    tree.replace(
        DEPLOY,
        "          tenant-id: ${{ vars.AZURE_TENANT_ID }}\n          subscription-id",
        "          subscription-id",
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("login-input-missing", "pipeline", "error")
    assert "tenant-id" in finding.message


def test_login_ids_from_secrets_or_literals_are_warnings(tree: Tree) -> None:
    """Ids from a secret or a literal work, but drift from the stack: a warning each."""
    tree.replace(
        DEPLOY,
        "          client-id: ${{ vars.AZURE_CLIENT_ID }}",
        "          client-id: ${{ secrets.AZURE_CLIENT_ID }}",
    )
    tree.replace(
        DEPLOY,
        "      ARM_TENANT_ID: ${{ vars.AZURE_TENANT_ID }}",
        "      ARM_TENANT_ID: 11111111-2222-3333-4444-555555555555",
    )
    findings = tree.findings()
    assert {(f.code, f.layer, f.severity) for f in findings} == {
        ("login-input-not-variable", "pipeline", "warning")
    }
    assert sorted(f.message.split(" from ")[1][:9] for f in findings) == ["a literal", "a secret;"]


def test_pulumi_login_without_client_id(tree: Tree) -> None:
    """pulumi with ARM_USE_OIDC needs ARM_CLIENT_ID in its environment."""
    tree.replace(DEPLOY, "      ARM_CLIENT_ID: ${{ vars.AZURE_CLIENT_ID }}\n", "")
    finding = only(tree.findings())
    assert finding.code == "login-input-missing"
    assert "ARM_CLIENT_ID" in finding.message


def test_deploy_to_a_literal_app_name(tree: Tree) -> None:
    """The deploy's app name must come from the stack outputs, not a literal."""
    tree.replace(DEPLOY, "APP_NAME: ${{ needs.up.outputs.web_app_name }}", "APP_NAME: backend-iac-dev")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "deploy-name-not-from-outputs",
        "pipeline",
        "error",
    )
    assert "backend-iac-dev" in finding.message


def test_deploy_to_a_repository_variable_resource_group(tree: Tree) -> None:
    """A repository variable is set by hand, not read from the stack."""
    tree.replace(
        DEPLOY, "RESOURCE_GROUP: ${{ needs.up.outputs.resource_group }}", "RESOURCE_GROUP: ${{ vars.RG }}"
    )
    finding = only(tree.findings())
    assert finding.code == "deploy-name-not-from-outputs"
    assert "--resource-group" in finding.message


def test_webapps_deploy_action_with_literal_name(tree: Tree) -> None:
    """azure/webapps-deploy is a deploy step too: its app-name is traced the same way."""
    tree.replace(
        DEPLOY,
        "      - name: Zip deploy\n",
        f"      - uses: azure/webapps-deploy@{SHA}\n        with:\n          app-name: my-app\n      - name: Zip deploy\n",
    )
    finding = only(tree.findings())
    assert finding.code == "deploy-name-not-from-outputs"
    assert "app-name" in finding.message


def test_destroy_triggered_by_push(tree: Tree) -> None:
    """A destroy workflow must only be started by a person."""
    tree.replace(
        DESTROY, "on:\n  workflow_dispatch:\n", "on:\n  push:\n    branches: [main]\n  workflow_dispatch:\n"
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("destroy-not-manual", "pipeline", "error")
    assert finding.line == 2


def test_destroy_without_confirmation(tree: Tree) -> None:
    """Nothing compares the typed confirmation before `pulumi destroy`."""
    tree.replace(
        DESTROY,
        '        run: |\n          if [ "$CONFIRM" != "$STACK" ]; then exit 1; fi\n',
        '        run: echo "$CONFIRM"\n',
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("destroy-unconfirmed", "pipeline", "error")


def test_destroy_confirmed_by_a_job_condition(tree: Tree) -> None:
    """A job `if:` comparing the input is a confirmation too."""
    tree.replace(
        DESTROY,
        '        run: |\n          if [ "$CONFIRM" != "$STACK" ]; then exit 1; fi\n',
        '        run: echo "$CONFIRM"\n',
    )
    tree.replace(
        DESTROY,
        "  destroy:\n    if: github.ref == 'refs/heads/main'\n",
        "  destroy:\n    if: github.ref == 'refs/heads/main' && inputs.confirm == 'dev'\n",
    )
    assert tree.findings() == []


def test_deploy_without_runtime_gate(tree: Tree) -> None:
    """A deploy nothing verifies goes green on upload, not on serving."""
    text = tree.read(DEPLOY)
    tree.workflow("deploy.yml", text[: text.index("  gate:")])
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("gate-missing", "pipeline", "error")


def test_gate_not_after_the_deploy(tree: Tree) -> None:
    """A gate job that does not need the deploy job may run before it."""
    tree.replace(DEPLOY, "    needs: [up, deploy]\n", "    needs: [up]\n")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("gate-before-deploy", "pipeline", "error")


def test_gate_on_a_literal_url(tree: Tree) -> None:
    """The gate must verify the URL the stack outputs."""
    tree.replace(DEPLOY, "URL: ${{ needs.up.outputs.url }}", "URL: https://example.azurewebsites.net")
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "gate-url-not-from-outputs",
        "pipeline",
        "error",
    )


def test_no_workflows_at_all(tree: Tree) -> None:
    """Without workflows nothing can be cross-checked: a warning says so."""
    for name in ("ci.yml", "deploy.yml", "destroy.yml"):
        (tree.root / ".github/workflows" / name).unlink()
    findings = tree.findings()
    assert ("workflows-missing", "pipeline", "warning") in {(f.code, f.layer, f.severity) for f in findings}
    assert [f for f in findings if f.severity == "error"] == []


def test_pulumi_action_destroy_is_a_destroy_too(tree: Tree) -> None:
    """pulumi/actions with `command: destroy` in a pushed workflow is an automatic destroy."""
    tree.workflow(
        "teardown.yml",
        f"""\
name: teardown
on:
  push:
    branches: [main]
permissions: {{}}
jobs:
  teardown:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - uses: pulumi/actions@{SHA}
        with:
          command: destroy
          stack-name: dev
""",
    )
    findings = tree.findings()
    assert {(f.code, f.file) for f in findings} == {
        ("destroy-not-manual", ".github/workflows/teardown.yml"),
        ("destroy-unconfirmed", ".github/workflows/teardown.yml"),
    }


def test_az_login_with_a_federated_token_needs_id_token(tree: Tree) -> None:
    """`az login --federated-token` is a sign-in: its job needs id-token: write."""
    tree.workflow(
        "cli.yml",
        """\
name: cli
on:
  push:
    branches: [main]
permissions: {}
jobs:
  cli:
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - run: az login --service-principal -u "$ID" -t "$TENANT" --federated-token "$TOKEN"
""",
    )
    finding = only(tree.findings())
    assert (finding.code, finding.file) == ("id-token-missing", ".github/workflows/cli.yml")


def test_each_missing_login_input_is_reported(tree: Tree) -> None:
    """Two ids missing from one step: two findings, one per id."""
    tree.replace(
        DEPLOY,
        "          tenant-id: ${{ vars.AZURE_TENANT_ID }}\n          subscription-id: ${{ vars.AZURE_SUBSCRIPTION_ID }}\n      - name: Zip deploy",
        "      - name: Zip deploy",
    )
    findings = tree.findings()
    assert sorted(f.message.split(" has no ")[1].split(":")[0] for f in findings) == [
        "subscription-id",
        "tenant-id",
    ]
    assert {f.code for f in findings} == {"login-input-missing"}


def test_deploy_job_without_a_branch_gate(tree: Tree) -> None:
    """`up` signs in on push and workflow_dispatch with no `if: github.ref == ...`: any branch could deploy."""
    tree.replace(
        DEPLOY,
        "  up:\n    if: github.ref == 'refs/heads/main'\n    runs-on",
        "  up:\n    runs-on",
    )
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == ("deploy-ungated", "pipeline", "error")
    assert "`up`" in finding.message
    assert "push, workflow_dispatch" in finding.message
    assert "if: github.ref == 'refs/heads/main'" in finding.fix
    assert finding.line == tree.read(DEPLOY).splitlines().index("  up:") + 1


def test_destroy_job_without_a_branch_gate(tree: Tree) -> None:
    """destroy signs in with the deploy identity from whatever branch it is dispatched from."""
    tree.ungate(DESTROY)
    finding = only(tree.findings())
    assert (finding.code, finding.file) == ("deploy-ungated", DESTROY)
    assert "workflow_dispatch" in finding.message


def test_gate_on_another_branch_or_inside_a_disjunction_is_no_gate(tree: Tree) -> None:
    """`github.ref == 'refs/heads/develop'` is not a deploy branch; an `||` lets any ref through."""
    tree.replace(
        DEPLOY,
        "  up:\n    if: github.ref == 'refs/heads/main'\n",
        "  up:\n    if: github.ref == 'refs/heads/develop'\n",
    )
    tree.replace(
        DEPLOY,
        "  deploy:\n    needs: [up]\n    if: github.ref == 'refs/heads/main'\n",
        "  deploy:\n    needs: [up]\n    if: github.ref == 'refs/heads/main' || github.event_name == 'workflow_dispatch'\n",
    )
    findings = [f for f in tree.findings() if f.code == "deploy-ungated"]
    assert sorted(f.message.split("`")[1] for f in findings) == ["deploy", "up"]
    gated_elsewhere = next(f for f in findings if "`up`" in f.message)
    assert "gated on refs/heads/develop" in gated_elsewhere.message


def test_gate_on_a_configured_deploy_branch_passes(tree: Tree) -> None:
    """With githubBranches [release], the gate must name release; main no longer counts."""
    tree.set_config(githubBranches=["release"])
    tree.replace(DEPLOY, "branches: [main]", "branches: [release]")
    findings = [f for f in tree.findings() if f.code == "deploy-ungated"]
    assert {f.message.split("`")[1] for f in findings} == {"up", "deploy", "destroy"}
    assert all("refs/heads/release" in f.fix for f in findings)
    for path in (DEPLOY, DESTROY):
        tree.replace(path, "if: github.ref == 'refs/heads/main'", "if: github.ref == 'refs/heads/release'")
    assert [f for f in tree.findings() if f.code == "deploy-ungated"] == []


def test_pull_request_only_sign_in_needs_no_branch_gate(tree: Tree) -> None:
    """The preview job signs in only for pull requests (the `pull_request` subject): not a deploy job."""
    assert "if: github.event_name == 'pull_request'" in tree.read(".github/workflows/ci.yml")
    assert [f for f in tree.findings() if f.code == "deploy-ungated"] == []


ROLLBACK_JOB = f"""\
  rollback:
    needs: [up, deploy, gate]
    if: failure() && needs.gate.result == 'failure' && github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
    steps:
      - uses: actions/checkout@{SHA}
        with:
          persist-credentials: false
          fetch-depth: 0
      - name: Azure sign-in (deploy identity)
        uses: azure/login@{SHA}
        with:
          client-id: ${{{{ vars.AZURE_CLIENT_ID }}}}
          tenant-id: ${{{{ vars.AZURE_TENANT_ID }}}}
          subscription-id: ${{{{ vars.AZURE_SUBSCRIPTION_ID }}}}
      - name: Roll back
        env:
          URL: ${{{{ needs.up.outputs.url }}}}
        run: |
          uv run backend-iac rollback --url "$URL" --commit "$GITHUB_SHA" \\
            --previous "$PREVIOUS" --app-name a --resource-group g
"""


def test_rollback_with_full_history_is_clean(tree: Tree) -> None:
    """A rollback job whose checkout has fetch-depth: 0 can rebuild the previous commit: no finding."""
    tree.workflow("deploy.yml", tree.read(DEPLOY) + ROLLBACK_JOB)
    assert tree.findings() == []


def test_rollback_with_a_shallow_checkout(tree: Tree) -> None:
    """The default checkout (one commit) cannot `package --ref` the commit that was serving."""
    tree.workflow("deploy.yml", tree.read(DEPLOY) + ROLLBACK_JOB.replace("          fetch-depth: 0\n", ""))
    finding = only(tree.findings())
    assert (finding.code, finding.layer, finding.severity) == (
        "rollback-history-missing",
        "pipeline",
        "error",
    )
    assert "`rollback`" in finding.message
    assert "fetch-depth 1 (the default)" in finding.message
    assert "fetch-depth: 0" in finding.fix
    lines = tree.read(DEPLOY).splitlines()
    assert lines[finding.line - 1].strip().startswith(f"- uses: actions/checkout@{SHA}")


def test_package_of_another_ref_with_fetch_depth_one(tree: Tree) -> None:
    """`backend-iac package --ref <sha>` with `fetch-depth: 1` said out loud is the same mistake."""
    job = ROLLBACK_JOB.replace("fetch-depth: 0", "fetch-depth: 1").replace(
        'uv run backend-iac rollback --url "$URL" --commit "$GITHUB_SHA" \\\\\n'
        '            --previous "$PREVIOUS" --app-name a --resource-group g',
        'uv run backend-iac package --ref "$PREVIOUS"',
    )
    tree.workflow("deploy.yml", tree.read(DEPLOY) + job)
    finding = only(tree.findings())
    assert finding.code == "rollback-history-missing"
    assert "fetch-depth 1" in finding.message
