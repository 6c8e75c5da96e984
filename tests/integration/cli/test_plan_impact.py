"""`plan` shows what agents gain and lose: a real MCP server probed by `apply` (its tool annotations give the
destructive flag), then a changed folder planned as text, markdown and JSON, against SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import mcp_types

from tests.fixtures.mcp_servers import LocalServers
from tests.integration.cli.test_commands import run

REFUSED = "http://127.0.0.1:9/mcp"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [
    mcp_types.Tool(
        name="get_weather",
        description="Current weather.",
        input_schema=SCHEMA,
        annotations=mcp_types.ToolAnnotations(read_only_hint=True),
    ),
    mcp_types.Tool(
        name="delete_city",
        description="Forget a city.",
        input_schema=SCHEMA,
        annotations=mcp_types.ToolAnnotations(destructive_hint=True),
    ),
]


def manifests(weather_url: str, *, changed: bool) -> str:
    docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: acme-prod, labels: {mcp.reconciler.dev/tenant: acme}}",
        f"""apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: weather, namespace: acme-prod}}
spec: {{url: "{weather_url}", network: {{allowPrivate: true}}}}""",
        f"""apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: docs, namespace: acme-prod}}
spec: {{url: "{REFUSED}", network: {{allowPrivate: true}}}}""",
    ]
    bound = "[{serverRef: docs}, {serverRef: weather, tools: {deny: [get_*]}}]" if changed else "[{serverRef: docs}]"
    docs.append(
        f"""apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: assistant, namespace: acme-prod}}
spec: {{template: assistant, servers: {bound}}}"""
    )
    if changed:
        docs += [
            """apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {name: fresh, namespace: acme-prod}
spec: {url: "https://fresh.example.com/mcp"}""",
            """apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {name: fresh-all, namespace: acme-prod}
spec: {target: {serverRef: fresh}, subjects: [{kind: Organization}]}""",
        ]
    else:
        docs.append(
            """apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {name: weather-support, namespace: acme-prod}
spec: {target: {serverRef: weather}, subjects: [{kind: Team, name: support}]}"""
        )
    return "\n---\n".join(docs) + "\n"


EXPECTED_IMPACT = """Tool impact:
  template acme/assistant:
    + weather:delete_city (destructive)
  grant acme/fresh-all (Organization):
    ? fresh: unknown until probed
  grant acme/weather-support (Team support):
    - weather:delete_city (destructive)
    - weather:get_weather"""


def test_plan_lists_tools_gained_and_lost_per_template_and_grant(
    mcp_servers: LocalServers, registry_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    mcp_servers.catalog.tools = list(TOOLS)
    try:
        (folder / "world.yaml").write_text(manifests(mcp_servers.changing, changed=False))
        code, _, err = run(
            "apply", "-f", str(folder), "--allow-private-networks", "--probe-timeout", "10", "--registry", registry_url
        )
        assert code == 0, err
    finally:
        mcp_servers.catalog.reset()
    (folder / "world.yaml").write_text(manifests(mcp_servers.changing, changed=True))

    code, text, _ = run("plan", "-f", str(folder), "--registry", registry_url)
    markdown_code, markdown, _ = run("plan", "-f", str(folder), "-o", "markdown", "--registry", registry_url)
    json_code, as_json, _ = run("plan", "-f", str(folder), "-o", "json", "--registry", registry_url)

    assert code == markdown_code == json_code == 2
    assert text.rstrip().endswith(EXPECTED_IMPACT)
    summary = "**Plan: 2 to create, 1 to update, 1 to delete; 2 unchanged.**"
    assert markdown.startswith(f"### mcp-reconciler plan\n\n{summary}\n\n")
    assert "| + | MCPServer acme-prod/fresh | create |  |" in markdown
    assert (
        "#### What agents gain and lose\n\n"
        "- **template acme/assistant**\n"
        "  - gains `weather:delete_city` ⚠️ destructive\n"
        "- **grant acme/fresh-all (Organization)**\n"
        "  - `fresh`: unknown until probed\n"
        "- **grant acme/weather-support (Team support)**\n"
        "  - loses `weather:delete_city` ⚠️ destructive\n"
        "  - loses `weather:get_weather`\n"
    ) in markdown
    impact = json.loads(as_json)["toolImpact"]
    assert impact[0] == {
        "kind": "template",
        "tenant": "acme",
        "name": "assistant",
        "subjects": [],
        "gained": ["weather:delete_city"],
        "lost": [],
        "unknownUntilProbed": [],
        "destructive": ["weather:delete_city"],
    }
    assert [entry["name"] for entry in impact] == ["assistant", "fresh-all", "weather-support"]


def test_a_plan_without_changes_has_no_impact_section(registry_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "world.yaml").write_text(manifests(REFUSED, changed=False))
    first = run("plan", "-f", str(folder), "--registry", registry_url)
    assert first[0] == 2
    assert "? weather: unknown until probed" in first[1]
    assert run("apply", "-f", str(folder), "--no-probe", "--registry", registry_url)[0] == 0

    code, out, _ = run("plan", "-f", str(folder), "-o", "markdown", "--registry", registry_url)

    assert code == 0
    assert "What agents gain and lose" not in out
    assert "**No changes." in out
