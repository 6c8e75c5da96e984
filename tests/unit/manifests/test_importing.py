"""server.json → MCPServer YAML: the pure mapping, table-driven, and its located errors."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from reconciler.api.serverjson import parse_server_json
from reconciler.errors import InvalidInput
from reconciler.manifests.importing import (
    Origin,
    object_name,
    parse_sources,
    plan_import,
    preset_names,
    read_preset,
    render_documents,
)

WEATHER: dict[str, Any] = {
    "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
    "name": "io.example/Weather_API",
    "title": "Weather",
    "description": "Forecasts for any city.",
    "version": "2.1.0",
    "remotes": [
        {
            "type": "streamable-http",
            "url": "https://{region}.weather.example.com/mcp",
            "variables": {"region": {"description": "eu or us", "isRequired": True}},
            "headers": [
                {"name": "Authorization", "isSecret": True, "isRequired": True},
                {"name": "X-Api-Secret", "isSecret": True, "description": "the partner secret"},
                {"name": "X-Client", "value": "reconciler-{region}"},
                {"name": "X-Workspace"},
            ],
        },
        {"type": "sse", "url": "https://weather.example.com/sse"},
    ],
    "packages": [{"registryType": "npm", "identifier": "@example/weather", "transport": {"type": "stdio"}}],
}

EXPECTED = """apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-api
  namespace: acme
spec:
  displayName: Weather
  description: Forecasts for any city.
  url: https://{{ tenant.vars.region }}.weather.example.com/mcp
  transport: streamable-http
  headers:
  - name: X-Api-Secret
    valueFrom:
      secretKeyRef:
        name: weather-api-credentials
        key: x-api-secret
  - name: X-Client
    value: reconciler-{{ tenant.vars.region }}
  - name: X-Workspace
    value: '{{ tenant.vars.x_workspace }}'
  auth:
    type: bearer
    secretKeyRef:
      name: weather-api-credentials
      key: authorization
---
apiVersion: v1
kind: Secret
metadata:
  name: weather-api-credentials
  namespace: acme
stringData:
  authorization: ''
  x-api-secret: ''
"""


def imported(document: dict[str, Any], **options: Any) -> tuple[str, list[str]]:
    result = plan_import([parse_server_json(document, source="w.json")], **options)
    return render_documents(result.documents), result.notes


def test_a_server_json_maps_to_an_mcpserver_and_a_secret_stub_deterministically() -> None:
    text, notes = imported(WEATHER, namespace="acme")

    assert text == EXPECTED
    assert imported(WEATHER, namespace="acme")[0] == text
    assert notes == [
        "io.example/Weather_API: its local packages are skipped; the remote is imported",
        "io.example/Weather_API: 2 remotes; the first (streamable-http) is imported",
        "io.example/Weather_API: set tenant variables region, x_workspace (see `{{ tenant.vars.NAME }}`)",
        "io.example/Weather_API: fill in Secret acme/weather-api-credentials "
        "(authorization: the bearer token, without the scheme; x-api-secret: the partner secret)",
    ]


def test_a_package_only_server_is_skipped_with_a_note() -> None:
    local = {**WEATHER, "remotes": []}

    text, notes = imported(local)

    assert text == ""
    assert notes == [
        "io.example/Weather_API: skipped: only local packages (@example/weather); "
        "the reconciler registers remote servers"
    ]


def test_a_registry_origin_is_recorded_and_a_deprecation_noted() -> None:
    entry = {
        "server": WEATHER,
        "_meta": {"io.modelcontextprotocol.registry/official": {"status": "deprecated", "statusMessage": "use v3"}},
    }

    result = plan_import([parse_server_json(entry, source="x")], origin=Origin("https://registry.example.com"))

    assert result.documents[0]["metadata"]["annotations"] == {
        "mcp.reconciler.dev/upstream-registry": "https://registry.example.com",
        "mcp.reconciler.dev/upstream-name": "io.example/Weather_API",
        "mcp.reconciler.dev/upstream-version": "2.1.0",
    }
    assert result.documents[0]["metadata"]["namespace"] == "default"
    assert "io.example/Weather_API: the registry marks it deprecated: use v3" in result.notes


@pytest.mark.parametrize(
    ("registry_name", "expected"),
    [("io.example/Weather_API", "weather-api"), ("com.notion/mcp", "notion"), ("a.b/x..y", "x..y"), ("a/--", "server")],
)
def test_object_names_are_dns_names(registry_name: str, expected: str) -> None:
    assert object_name(registry_name) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"description": "x" * 101},
            "w.json: server.json io.example/Weather_API: field description: String should have at most 100",
        ),
        ({"name": "no-slash"}, "w.json: server.json no-slash: field name: String should match pattern"),
        ({"version": "^1.2.0"}, "field version: Value error, must be one exact version"),
        ({"version": "latest"}, "field version: Value error, must be one exact version"),
        (
            {"remotes": [{"type": "stdio", "url": "x"}]},
            "field remotes.0.type: Input should be 'streamable-http' or 'sse'",
        ),
        ({"remotes": [{"type": "sse", "url": "ftp://x"}]}, "field remotes.0.url: String should match pattern"),
        ({"remotes": [{"type": "sse", "url": "https://{host}/sse"}]}, "field remotes.0.url: the URL uses {host} but"),
        ({"description": None}, "field description: Input should be a valid string"),
    ],
)
def test_bad_server_json_names_file_object_and_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_server_json({**WEATHER, **change}, source="w.json")

    assert message in str(caught.value)


def test_problems_of_every_source_come_together_and_duplicates_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sources([("a.json", {**WEATHER, "version": "latest"}), ("b.json", [1])])
    assert "2 problems" in str(caught.value)
    with pytest.raises(InvalidInput) as duplicate:
        parse_sources([("a.json", WEATHER), ("b.json", WEATHER)])
    assert "b.json: server.json io.example/Weather_API: also defined in a.json" in str(duplicate.value)


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_validates_and_imports(preset: str) -> None:
    source, document = read_preset(preset)
    [entry] = parse_sources([(source, document)])
    result = plan_import([entry], namespace="acme")

    server = result.documents[0]
    assert server["kind"] == "MCPServer"
    assert server["spec"]["url"].startswith("https://")
    assert server["metadata"]["name"] == preset
    assert list(yaml.safe_load_all(render_documents(result.documents))) == result.documents


def test_the_catalog_has_the_wellknown_presets() -> None:
    assert {"notion", "linear", "stripe", "sentry", "context7", "github"} <= set(preset_names())
    with pytest.raises(InvalidInput, match="no such preset"):
        read_preset("nope")
