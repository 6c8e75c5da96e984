"""Tool filters survive every output: a real MCP server is probed, then `resolve` (Python), `resolve -o
mcp-config` (CLI), the `spec.export` document and the agent endpoint all carry the same effective tool set, as
exact names expanded from the server's and the binding's globs against the stored snapshot. A server whose
tools were never listed is stated as unknown (`toolSnapshot` null, no tool) in each of them, never unfiltered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types
import pytest
import yaml

from reconciler.demo.serving import ServerLoop
from reconciler.engine.probing import ProbeOptions
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.runtime import build_mcp_app, export_document, resolve
from tests.fixtures.mcp_servers import LocalServers, ToolCatalog
from tests.integration.cli.test_commands import run
from tests.integration.runtime.test_endpoint import TOKEN, call, structured

NAMESPACE = "acme"
TEMPLATE = "assistant"
PROBE = ProbeOptions(ProbeSettings(allow_private_networks=True, total_timeout=10))
EFFECTIVE = ["get_weather"]
"""The `changing` server lists get_weather, get_forecast, delete_city and delete_forecast; the server denies
`delete_*`, the binding denies `get_forecast`."""


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def manifests(servers: LocalServers) -> list[dict[str, Any]]:
    network = {"allowPrivate": True}
    return [
        _object("MCPServer", "weather", {"url": servers.changing, "network": network, "tools": {"deny": ["delete_*"]}}),
        _object("MCPServer", "unlisted", {"url": servers.refused, "network": network}),
        *(
            _object(
                "MCPAccessGrant",
                f"everyone-{name}",
                {"target": {"serverRef": name}, "subjects": [{"kind": "Organization"}]},
            )
            for name in ("weather", "unlisted")
        ),
        _object(
            "MCPTemplateBinding",
            TEMPLATE,
            {
                "template": TEMPLATE,
                "servers": [{"serverRef": "weather", "tools": {"deny": ["get_forecast"]}}, {"serverRef": "unlisted"}],
                "export": {"configMap": {}},
            },
        ),
    ]


@pytest.fixture
def probed(tmp_path: Path, registry: Registry, mcp_servers: LocalServers, tool_catalog: ToolCatalog) -> str:
    """The registry after one reconcile that probed both servers; returns the weather server's snapshot hash."""
    destructive = [
        tool.model_copy(update={"name": name, "description": f"Delete a {name.split('_')[1]}."})
        for tool, name in zip(tool_catalog.tools, ("delete_city", "delete_forecast"), strict=True)
    ]
    tool_catalog.tools = [*tool_catalog.tools, *destructive]
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(manifests(mcp_servers), sort_keys=False))
    reconcile(load_folder(tmp_path), registry, settings=EngineSettings(), probe=PROBE)
    (latest, *_) = registry.fetch_tool_snapshots(NAMESPACE, "weather")
    assert sorted(tool.name for tool in latest.tools) == [
        "delete_city",
        "delete_forecast",
        "get_forecast",
        "get_weather",
    ]
    assert registry.fetch_tool_snapshots(NAMESPACE, "unlisted") == []
    return latest.hash


@pytest.fixture
def endpoint(registry: Registry) -> Iterator[str]:
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_mcp_app(registry, token=TOKEN))
        yield f"{base}/mcp"


def _tools_of(servers: dict[str, dict[str, Any]]) -> dict[str, tuple[list[str], str | None]]:
    return {name: (server["tools"], server["toolSnapshot"]) for name, server in servers.items()}


def test_resolve_carries_the_exact_tool_names_and_their_snapshot(registry: Registry, probed: str) -> None:
    resolution = resolve(registry, NAMESPACE, template=TEMPLATE)

    weather, unlisted = resolution.server("weather"), resolution.server("unlisted")
    assert (list(weather.tools), weather.tool_snapshot) == (EFFECTIVE, probed)
    assert (weather.tools_known, unlisted.tools_known) == (True, False)
    assert unlisted.tools == (), "never probed: no tool listed, and the JSON says why"
    documents = {server["name"]: server for server in resolution.to_json()["servers"]}
    assert _tools_of(documents) == {"weather": (EFFECTIVE, probed), "unlisted": ([], None)}


def test_cli_mcp_config_keeps_the_filters(registry_url: str, probed: str) -> None:
    code, out, err = run(
        "resolve", "-n", NAMESPACE, "--template", TEMPLATE, "-o", "mcp-config", "--registry", registry_url
    )

    assert code == 0, err
    assert _tools_of(json.loads(out)["mcpServers"]) == {"weather": (EFFECTIVE, probed), "unlisted": ([], None)}
    assert "delete_" not in out and "get_forecast" not in out
    code, text, _ = run("resolve", "-n", NAMESPACE, "--template", TEMPLATE, "-o", "text", "--registry", registry_url)
    assert code == 0 and [line.split()[4] for line in text.splitlines()[2:]] == ["1", "unknown"]


def test_the_exported_document_keeps_the_filters(registry: Registry, probed: str) -> None:
    document = export_document(registry, NAMESPACE, TEMPLATE)

    assert _tools_of(json.loads(document)["mcpServers"]) == {"weather": (EFFECTIVE, probed), "unlisted": ([], None)}
    assert "delete_" not in document and "get_forecast" not in document


def test_the_endpoint_keeps_the_filters(registry: Registry, probed: str, endpoint: str) -> None:
    _, plain, namespaced = call(
        endpoint,
        ("resolve_template", {"tenant": NAMESPACE, "template": TEMPLATE}),
        ("resolve_template", {"tenant": NAMESPACE, "template": TEMPLATE, "namespace_tools": True}),
    )

    assert isinstance(plain, mcp_types.CallToolResult)
    servers = {server["name"]: server for server in structured(plain)["servers"]}
    assert _tools_of(servers) == {"weather": (EFFECTIVE, probed), "unlisted": ([], None)}
    servers = {server["name"]: server for server in structured(namespaced)["servers"]}
    assert servers["weather"]["tools"] == ["mcp:weather:get_weather"]
