"""The `mcp-reconciler` command end to end: exit codes, output shapes, errors without tracebacks."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.registry import open_registry
from reconciler.registry.records import UserTokenRecord

EXAMPLES = Path(__file__).parents[3] / "examples"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_err = sys.stderr
    sys.stderr = err
    try:
        code = main(list(argv), out=out)
    finally:
        sys.stderr = old_err
    return code, out.getvalue(), err.getvalue()


def test_plan_exit_codes_follow_pending_changes(registry_url: str) -> None:
    folder = str(EXAMPLES / "01-quickstart")
    code, out, _ = run("plan", "-f", folder, "--registry", registry_url)
    assert code == 2 and "+ MCPServer demo/everything: create" in out and "Plan: 3 to create" not in out
    assert "Plan: 5 to create; 0 unchanged." in out
    assert run("apply", "-f", folder, "--no-probe", "--registry", registry_url)[0] == 0
    code, out, _ = run("plan", "-f", folder, "--registry", registry_url)
    assert code == 0 and out.strip() == "No changes. 5 objects up to date."


def test_plan_json_lists_actions_with_field_diffs(tmp_path: Path, sqlite_url: str) -> None:
    folder = tmp_path / "f"
    shutil.copytree(EXAMPLES / "03-connectors", folder)
    run("apply", "-f", str(folder), "--no-probe", "--registry", sqlite_url)
    text = (folder / "org.yaml").read_text().replace("region: eu-west-1", "region: us-east-2")
    (folder / "org.yaml").write_text(text)
    code, out, _ = run("plan", "-f", str(folder), "-o", "json", "--registry", sqlite_url)
    assert code == 2
    plan = json.loads(out)
    (update,) = [a for a in plan["actions"] if a["action"] != "noop"]
    assert update["kind"] == "MCPServer" and update["name"] == "warehouse"
    assert update["changes"] == [
        {
            "path": "url",
            "before": "https://warehouse.eu-west-1.example.com/orgs/4711/mcp",
            "after": "https://warehouse.us-east-2.example.com/orgs/4711/mcp",
        }
    ]
    assert plan["summary"]["update"] == 1 and plan["changes"] is True


def test_get_wide_shows_each_authorization_code_servers_member_tokens_as_of_now(sqlite_url: str) -> None:
    run("apply", "-f", str(EXAMPLES / "06-oauth"), "--no-probe", "--registry", sqlite_url)
    registry = open_registry(sqlite_url)
    try:
        tenant = next(t.slug for t in registry.fetch_state().tenants.values() if t.namespace == "wacht")
        with registry.transaction() as tx:
            # A member connected after the last apply, and their token lapsed with nothing to renew it.
            tx.insert_user_token(
                UserTokenRecord(
                    tenant=tenant,
                    server="docs-mcp",
                    user_id="jordan",
                    secret_ref="wacht/member-jordan#token",
                    expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                )
            )
    finally:
        registry.close()

    code, out, _ = run("get", "mcps", "-n", "wacht", "-o", "wide", "--registry", sqlite_url)

    lines = out.splitlines()
    start = lines[0].index("OAUTH")
    oauth = {line.split()[0]: line[start:].split("  ")[0].strip() for line in lines[1:]}
    assert code == 0
    assert oauth == {
        "billing-mcp": "<none>",
        "calendar-mcp": "not connected",
        "crm-mcp": "<none>",
        "docs-mcp": "1 connected, 1 reauth",
        "status-mcp": "<none>",
    }
    code, out, _ = run("get", "mcps", "docs-mcp", "-n", "wacht", "-o", "json", "--registry", sqlite_url)
    assert json.loads(out)["status"]["oauth"] == {
        "connected": 1,
        "expiringWithin24h": 0,
        "needsReauthorization": 1,
        "withoutRefreshToken": 1,
        "membersExpected": True,
        "summary": "1 connected, 1 reauth",
    }


def test_get_prints_tables_and_kubernetes_lists(sqlite_url: str) -> None:
    run("apply", "-f", str(EXAMPLES / "06-oauth"), "--no-probe", "--registry", sqlite_url)
    code, out, _ = run("get", "mcps", "-n", "wacht", "--registry", sqlite_url)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["NAME", "TRANSPORT", "AUTH", "ENABLED", "TOOLS", "READY", "SYNCED", "AGE"]
    # billing-mcp leaves transport and enabled to their defaults: the table shows the values in effect.
    billing = lines[1].split()[:7]
    assert billing == ["billing-mcp", "streamable-http", "oauthClientCredentials", "true", "<none>", "True", "True"]
    code, out, _ = run("get", "mcpserver", "-o", "wide", "--registry", sqlite_url)
    assert out.splitlines()[0].split() == [
        "NAMESPACE",
        "NAME",
        "TRANSPORT",
        "AUTH",
        "ENABLED",
        "TOOLS",
        "READY",
        "SYNCED",
        "AGE",
        "URL",
        "OAUTH",
        "UPSTREAM",
        "REASON",
    ]
    code, out, _ = run("get", "mcpgrant", "-o", "json", "--registry", sqlite_url)
    document = json.loads(out)
    assert document["kind"] == "List" and document["apiVersion"] == "v1"
    assert [item["metadata"]["name"] for item in document["items"]] == [
        "ops-team",
        "ops-team-billing",
        "ops-team-calendar",
        "ops-team-docs",
        "ops-team-status",
    ]
    item = document["items"][0]
    assert item["apiVersion"] == "mcp.reconciler.dev/v1alpha1" and item["kind"] == "MCPAccessGrant"
    assert item["metadata"]["name"] == "ops-team" and item["spec"]["target"] == {"serverRef": "crm-mcp"}
    assert {c["type"] for c in item["status"]["conditions"]} == {"Ready", "Synced"}
    code, out, _ = run("get", "mcps", "status-mcp", "-n", "wacht", "-o", "yaml", "--registry", sqlite_url)
    obj = yaml.safe_load(out)
    assert obj["kind"] == "MCPServer" and obj["spec"]["auth"]["secretKeyRef"]["key"] == "status-token"
    assert "example-status-token" not in out
    code, _, err = run("get", "mcps", "nope", "--registry", sqlite_url)
    assert code == 1 and "not found" in err
    code, _, err = run("get", "widgets", "--registry", sqlite_url)
    assert code == 1 and "unknown resource type 'widgets'" in err


def test_bad_input_is_one_clear_error_and_no_traceback(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: x\n"
        "spec:\n  url: https://x.example.com/mcp\n  transport: carrier-pigeon\n"
    )
    for command in ("validate", "plan", "apply"):
        code, out, err = run(command, "-f", str(tmp_path), "--registry", sqlite_url)
        assert code == 1 and out == ""
        assert err.startswith("error: bad.yaml:7: MCPServer default/x: field spec.transport:")
        assert "Traceback" not in err
    assert run("get", "--registry", sqlite_url)[2].startswith("No resources found")


def test_a_bad_binding_export_names_file_line_object_and_field(tmp_path: Path) -> None:
    (tmp_path / "binding.yaml").write_text(
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPTemplateBinding\nmetadata:\n  name: support\n"
        "spec:\n  template: support-agent\n  servers: [{serverRef: crm}]\n  export:\n    configMap:\n"
        "      name: Support_Agent\n      key: mcp/config.json\n      mountPath: /etc/mcp\n"
    )
    code, out, err = run("validate", "-f", str(tmp_path))
    assert code == 1 and out == ""
    where = "MCPTemplateBinding default/support: field spec.export.configMap"
    assert f"binding.yaml:10: {where}.name: must be a DNS-1123 name" in err
    assert f"binding.yaml:11: {where}.key: must match the pattern" in err
    assert f"binding.yaml:12: {where}.mountPath: unknown field" in err
    (tmp_path / "binding.yaml").write_text(
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPTemplateBinding\nmetadata:\n  name: support\n"
        "spec:\n  template: support-agent\n  servers: [{serverRef: crm}]\n  export:\n    configMap: {}\n"
        "---\napiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: crm\n"
        "spec:\n  url: https://crm.example.com/mcp\n"
    )
    assert run("validate", "-f", str(tmp_path))[0] == 0


def test_a_spec_change_that_renders_to_no_row_still_updates_the_stored_copy(tmp_path: Path, sqlite_url: str) -> None:
    binding = (
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPTemplateBinding\nmetadata:\n  name: support\n"
        "spec:\n  template: support-agent\n  servers: [{serverRef: crm}]\n"
    )
    crm = "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: crm\nspec:\n  url: https://crm.example.com/mcp\n"
    (tmp_path / "objects.yaml").write_text(binding + "---\n" + crm)
    assert run("apply", "-f", str(tmp_path), "--no-probe", "--registry", sqlite_url)[0] == 0
    (tmp_path / "objects.yaml").write_text(binding + "  export:\n    configMap: {}\n---\n" + crm)
    assert run("apply", "-f", str(tmp_path), "--no-probe", "--registry", sqlite_url)[0] == 0
    code, out, _ = run("get", "mcpbinding", "support", "-o", "yaml", "--registry", sqlite_url)
    assert code == 0 and "export:" in out and "configMap: {}" in out


def test_unreachable_registry_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    code, _, err = run(
        "plan", "-f", str(EXAMPLES / "01-quickstart"), "--registry", "postgresql+psycopg://u:hunter2@127.0.0.1:1/db"
    )
    assert code == 1 and err.startswith("error: ") and "hunter2" not in err


def test_migrate_brings_the_schema_up_to_date_once(registry_url: str) -> None:
    code, out, _ = run("migrate", "--registry", registry_url)
    assert code == 0 and out.startswith("migrated ") and "0005_tenant_namespace_index" in out
    code, out, _ = run("migrate", "--registry", registry_url)
    assert code == 0 and out.strip().endswith("is up to date")


def test_crds_check_detects_drift(tmp_path: Path) -> None:
    assert run("crds", "--dir", str(tmp_path))[0] == 0
    assert run("crds", "--check", "--dir", str(tmp_path))[0] == 0
    target = next(tmp_path.glob("*mcpservers.yaml"))
    target.write_text(target.read_text() + "# edited\n")
    code, out, _ = run("crds", "--check", "--dir", str(tmp_path))
    assert code == 1 and target.name in out and "mcp-reconciler crds" in out


def test_console_script_is_installed_and_runs() -> None:
    script = Path(sys.executable).parent / "mcp-reconciler"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "validate" in result.stdout and "plan" in result.stdout


@pytest.mark.parametrize("argv", [["plan"], ["get", "-o", "xml"], []])
def test_usage_errors_exit_two_like_argparse(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2


def test_no_prune_keeps_rows_of_other_folders(sqlite_url: str) -> None:
    run("apply", "-f", str(EXAMPLES / "01-quickstart"), "--no-probe", "--registry", sqlite_url)
    code, out, _ = run("plan", "-f", str(EXAMPLES / "06-oauth"), "--registry", sqlite_url)
    assert code == 2 and "- MCPServer demo/everything: delete" in out
    code, out, _ = run("plan", "-f", str(EXAMPLES / "06-oauth"), "--no-prune", "--registry", sqlite_url)
    assert code == 2 and "delete" not in out
    run("apply", "-f", str(EXAMPLES / "06-oauth"), "--no-probe", "--no-prune", "--registry", sqlite_url)
    code, out, _ = run("get", "mcps", "-n", "demo", "--registry", sqlite_url)
    assert "everything" in out


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("transport: streamable-http", "transport: sse", "transport is immutable: recreate to switch type"),
        ("type: apiKey\n    headerName: X-API-Key", "type: bearer", "auth.type is immutable: recreate to switch type"),
    ],
)
def test_plan_and_apply_refuse_switching_an_immutable_field(
    tmp_path: Path, sqlite_url: str, before: str, after: str, message: str
) -> None:
    """The same wording as the CRD's CEL rule; the row keeps its type and nothing else of it is written."""
    folder = tmp_path / "f"
    shutil.copytree(EXAMPLES / "02-tenant-servers", folder)
    assert run("apply", "-f", str(folder), "--no-probe", "--registry", sqlite_url)[0] == 0
    servers = folder / "servers.yaml"
    text = servers.read_text()
    head, _, rest = text.partition("---")  # the first document is internal-search (apiKey, streamable-http)
    assert before in head
    servers.write_text(head.replace(before, after).replace("Internal Search", "Search") + "---" + rest)
    code, out, err = run("plan", "-f", str(folder), "--registry", sqlite_url)
    assert code == 1, err
    assert "! MCPServer acme-prod/internal-search: conflict" in out and message in out, err
    code, out, err = run("apply", "-f", str(folder), "--no-probe", "--registry", sqlite_url)
    assert code == 1 and message in out and "conflicts left unresolved" in err
    code, out, _ = run("get", "mcps", "internal-search", "-n", "acme-prod", "-o", "json", "--registry", sqlite_url)
    assert any(c["reason"] == "Conflict" for c in json.loads(out)["status"]["conditions"])
    head_again = servers.read_text().partition("---")[0]
    servers.write_text(head_again.replace(after, before) + "---" + rest)
    code, out, _ = run("plan", "-f", str(folder), "--registry", sqlite_url)
    # Only the display name differs from the registry: the refused switch wrote nothing.
    assert code == 2 and 'display_name: "Internal Search" → "Search"' in out and "immutable" not in out


def test_plan_reports_a_declared_duplicate_of_an_app_owned_server(tmp_path: Path, sqlite_url: str) -> None:
    folder = tmp_path / "f"
    shutil.copytree(EXAMPLES / "02-tenant-servers", folder)
    (folder / "copy.yaml").write_text(
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\n"
        "metadata: {name: plane-by-hand, namespace: acme-prod}\n"
        "spec: {url: 'https://plane.example.com/mcp'}\n"
    )
    code, out, _ = run("plan", "-f", str(folder), "--registry", sqlite_url)
    assert code == 1
    assert "! MCPServer acme-prod/plane-by-hand: conflict" in out
    assert "URL of server plane (owned by Plugin plane)" in out
    code, _, _ = run("apply", "-f", str(folder), "--no-probe", "--registry", sqlite_url)
    assert code == 1
    code, out, _ = run("get", "mcps", "-n", "acme-prod", "--registry", sqlite_url)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert (
        "plane" in rows
        and "plane-by-hand" in rows
        and "Conflict"
        in run("get", "mcps", "plane-by-hand", "-n", "acme-prod", "-o", "yaml", "--registry", sqlite_url)[1]
    )


def test_two_connections_marked_for_discovery_of_one_server_are_one_clear_error(tmp_path: Path) -> None:
    def conn(name: str) -> str:
        return (
            "---\napiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPConnection\n"
            f"metadata: {{name: {name}, namespace: acme}}\n"
            "spec: {serverRef: drive, scope: platform, useForDiscovery: true}\n"
        )

    server = "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: drive, namespace: acme}\n"
    (tmp_path / "objects.yaml").write_text(
        server + "spec: {url: 'https://drive.example.com/mcp'}\n" + conn("first") + conn("second")
    )
    code, _, err = run("validate", "-f", str(tmp_path))
    assert code == 1
    assert err.startswith("error: objects.yaml:11: MCPConnection acme/second: field spec.useForDiscovery: ")
    assert "first, second all set useForDiscovery for server 'drive'" in err and "connectionRef" in err
    (tmp_path / "objects.yaml").write_text(
        server
        + "spec: {url: 'https://drive.example.com/mcp', discovery: {connectionRef: second}}\n"
        + conn("first")
        + conn("second")
    )
    assert run("validate", "-f", str(tmp_path))[0] == 0


def test_run_refuses_a_bad_upstream_interval_before_starting() -> None:
    code, _, err = run("run", "--upstream-interval", "soon", "--standalone")
    assert code == 1
    assert "--upstream-interval: invalid duration 'soon'" in err
