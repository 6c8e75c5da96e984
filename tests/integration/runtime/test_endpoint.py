"""The agent-facing MCP endpoint end to end: uvicorn on 127.0.0.1, the mcp SDK client over streamable HTTP with
an httpx2 client carrying the bearer token, against SQLite and PostgreSQL registries."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from reconciler.demo.serving import ServerLoop
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.proposing import DryRunPlanner
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.runtime import build_mcp_app
from tests.integration.runtime.world import APPROVED, NAMESPACE, SECRET_VALUES, TEMPLATE, TENANT, write_manifests

TOKEN = "endpoint-test-token"
BOUND_SECONDS = 30
WRITES = ("INSERT", "UPDATE", "DELETE")


def load_manifests(text: str) -> DesiredInput:
    """What the CLI injects: YAML text through the folder loader (here via a temporary folder)."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "proposal.yaml").write_text(text)
        return load_folder(folder)


PLANNER = DryRunPlanner(load_manifests, manager=DEFAULT_MANAGER)


@pytest.fixture
def endpoint(registry: Registry) -> Iterator[str]:
    """The endpoint's URL, served by uvicorn on an ephemeral 127.0.0.1 port for this test."""
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_mcp_app(registry, token=TOKEN, plan_manifests=PLANNER))
        yield f"{base}/mcp"


async def _call(url: str, calls: list[tuple[str, dict[str, Any]]], *, token: str = TOKEN) -> list[Any]:
    results: list[Any] = []
    with anyio.fail_after(BOUND_SECONDS):
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(10.0, read=60.0)
            ) as http,
            Client(streamable_http_client(url, http_client=http), read_timeout_seconds=20, cache=None) as client,
        ):
            listed = await client.list_tools()
            results.append(sorted(tool.name for tool in listed.tools))
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                results.append(result)
    return results


def call(url: str, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    return anyio.run(_call, url, list(calls))


def structured(result: mcp_types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return dict(result.structured_content)
    block = result.content[0]
    assert isinstance(block, mcp_types.TextContent)
    return dict(json.loads(block.text))


def writes(registry: Registry) -> dict[str, int]:
    return {verb: registry.statement_counts.get(verb, 0) for verb in WRITES}


def test_requests_without_the_token_get_401_with_a_challenge(endpoint: str) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx2.Client(timeout=10.0) as http:
        missing = http.post(endpoint, json=initialize, headers=headers)
        wrong = http.post(endpoint, json=initialize, headers={**headers, "Authorization": "Bearer nope"})
        basic = http.post(endpoint, json=initialize, headers={**headers, "Authorization": f"Basic {TOKEN}"})

    assert missing.status_code == wrong.status_code == basic.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="mcp-reconciler"'
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="mcp-reconciler", error="invalid_token"'
    assert TOKEN not in wrong.text


def test_the_sdk_client_cannot_connect_with_a_wrong_token(endpoint: str) -> None:
    # The streamable-HTTP transport turns the 401 into an MCPError, wrapped in exception groups by anyio.
    with pytest.raises((MCPError, BaseExceptionGroup)) as caught:
        anyio.run(lambda: _call(endpoint, [], token="wrong"))

    assert "Server returned an error response" in repr(caught.value)


def test_tools_list_servers_and_their_health(registry: Registry, world: DesiredInput, endpoint: str) -> None:
    listed, everything, scoped = call(endpoint, ("list_servers", {}), ("list_servers", {"tenant": NAMESPACE}))

    assert listed == ["list_servers", "plan", "resolve_template", "show_server"]
    servers = {server["name"]: server for server in structured(scoped)["servers"]}
    assert structured(everything) == structured(scoped)
    assert set(servers) == {
        "bobs-only",
        "catalog",
        "crm",
        "drive",
        "gradebook",
        "linear",
        "notion",
        "pinned",
        "quarantined",
        "retired",
        "search",
        "unapproved",
    }
    quarantined = servers["quarantined"]
    assert (quarantined["tenant"], quarantined["namespace"]) == (TENANT, NAMESPACE)
    assert quarantined["health"]["blockedReason"] == "quarantined by an administrator"
    assert quarantined["health"]["lastTest"]["errorClass"] == "auth"
    assert servers["drive"]["health"]["ready"]["status"] == "True"


def test_show_server_returns_the_snapshot_and_discovery(registry: Registry, world: DesiredInput, endpoint: str) -> None:
    _listed, drive, quarantined, missing = call(
        endpoint,
        ("show_server", {"tenant": TENANT, "server": "drive"}),
        ("show_server", {"tenant": NAMESPACE, "server": "quarantined"}),
        ("show_server", {"tenant": TENANT, "server": "nope"}),
    )

    snapshot = structured(drive)["snapshot"]
    assert snapshot["hash"] == "sha256:drive-1"
    assert [(tool["name"], tool["exposed"]) for tool in snapshot["tools"]] == [
        ("list_files", True),
        ("read_file", True),
        ("delete_file", False),
    ]
    assert structured(quarantined)["discovery"] == {
        "requiresAuth": True,
        "authorizationServers": ["https://as.example.com"],
    }
    assert missing.is_error


def test_resolve_template_masks_headers(registry: Registry, world: DesiredInput, endpoint: str) -> None:
    _listed, result = call(
        endpoint,
        ("resolve_template", {"tenant": NAMESPACE, "template": TEMPLATE, "user": "bob", "teams": ["engineering"]}),
    )

    document = structured(result)
    drive = next(server for server in document["servers"] if server["name"] == "drive")
    assert (drive["state"], drive["connection"], drive["headers"]["Authorization"]) == (
        "ready",
        "drive-platform",
        "Token ***",
    )
    assert not any(value in json.dumps(document) for value in SECRET_VALUES.values())


PROPOSAL = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels: {{mcp.reconciler.dev/tenant: {TENANT}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: drive, namespace: {NAMESPACE}}}
spec:
  url: https://drive-v2.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: wiki, namespace: {NAMESPACE}}}
spec:
  url: https://wiki.example.com/mcp
  tools: {{policy: Pin, approvedHash: "{APPROVED}"}}
"""


def test_plan_returns_the_diff_and_writes_nothing(registry: Registry, world: DesiredInput, endpoint: str) -> None:
    before = registry.fetch_state()
    registry.reset_statement_counts()

    _listed, planned, pruned = call(
        endpoint, ("plan", {"manifests": PROPOSAL}), ("plan", {"manifests": PROPOSAL, "prune": True})
    )

    assert writes(registry) == {"INSERT": 0, "UPDATE": 0, "DELETE": 0}, registry.statement_counts
    assert registry.fetch_state() == before
    document = structured(planned)
    assert document["changes"] is True
    verbs = {(action["verb"], action["table"], action["name"]) for action in document["actions"]}
    assert verbs == {("update", "servers", "drive"), ("create", "servers", "wiki")}
    drive = next(action for action in document["actions"] if action["name"] == "drive")
    assert {"path": "url", "before": "https://drive.example.com/mcp", "after": "https://drive-v2.example.com/mcp"} in (
        drive["changes"]
    )
    pruned_verbs = {action["verb"] for action in structured(pruned)["actions"]}
    assert pruned_verbs == {"update", "create", "delete"}


def test_plan_on_a_registry_without_fingerprint_key_writes_nothing(
    registry: Registry, endpoint: str, tmp_path: Path
) -> None:
    text = (write_manifests(tmp_path) / "world.yaml").read_text()
    registry.reset_statement_counts()

    _listed, planned = call(endpoint, ("plan", {"manifests": text}))

    assert writes(registry) == {"INSERT": 0, "UPDATE": 0, "DELETE": 0}, registry.statement_counts
    assert registry.stored_fingerprint_key() is None
    assert structured(planned)["counts"] == {"create": len(load_manifests(text).resources)}


def test_plan_reports_invalid_manifests_as_a_tool_error(registry: Registry, endpoint: str) -> None:
    _listed, result = call(endpoint, ("plan", {"manifests": "kind: MCPServer\nmetadata: {name: x}\nspec: {}\n"}))

    assert result.is_error


def _guess(value: str, *, key: str = "trace") -> str:
    """A proposal pairing a Secret that holds a guessed value with the unchanged server that uses it."""
    return f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels: {{mcp.reconciler.dev/tenant: {TENANT}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {NAMESPACE}}}
stringData: {{{key}: {value}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: drive, namespace: {NAMESPACE}}}
spec:
  url: https://drive.example.com/mcp
  headers:
    - {{name: X-Client, value: server}}
    - name: X-Trace
      valueFrom: {{secretKeyRef: {{name: creds, key: {key}}}}}
  tools: {{deny: ["delete_*"]}}
"""


def test_plan_is_no_oracle_for_stored_secret_values(registry: Registry, world: DesiredInput, endpoint: str) -> None:
    registry.reset_statement_counts()

    _listed, right, wrong, moved = call(
        endpoint,
        ("plan", {"manifests": _guess(SECRET_VALUES["trace"])}),
        ("plan", {"manifests": _guess("a-wrong-guess")}),
        ("plan", {"manifests": _guess(SECRET_VALUES["trace"], key="platform")}),
    )

    assert structured(right) == structured(wrong)
    assert structured(right)["changes"] is False
    assert any("Secret" in warning and "not compared" in warning for warning in structured(right)["warnings"])
    # A new reference is still a change; the value behind it is neither compared nor fingerprinted.
    (action,) = structured(moved)["actions"]
    changes = {change["path"]: change for change in action["changes"]}
    assert changes["headers[1].secret_ref"]["after"] == f"{NAMESPACE}/creds#platform"
    assert changes["headers[1].fingerprint"]["after"] is None
    assert writes(registry) == {"INSERT": 0, "UPDATE": 0, "DELETE": 0}, registry.statement_counts
