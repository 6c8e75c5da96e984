"""Org-level visibility on SQLite and PostgreSQL: a per-member connection (or an authorization-code server) that no
member has connected is a warning under `get`, a `connectedMembers` count in `get -o json`, and a `members` entry
of the agent endpoint's `list_servers`; the warning goes away once one member stores a token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime import MemberCoverage, build_mcp_app, fetch_member_coverage
from tests.integration.cli.test_commands import run
from tests.integration.runtime.test_endpoint import TOKEN, call, structured

NAMESPACE = "acme-prod"
MANIFESTS = f"""
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: plane, namespace: {NAMESPACE}}}
spec: {{url: https://plane.example.com/mcp}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: plane-members, namespace: {NAMESPACE}}}
spec: {{serverRef: plane, scope: platform, credentialMode: perMember}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: notion, namespace: {NAMESPACE}}}
spec:
  url: https://notion.example.com/mcp
  auth: {{type: oauthAuthorizationCode, pkce: public}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: crm, namespace: {NAMESPACE}}}
spec: {{url: https://crm.example.com/mcp}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: crm-members, namespace: {NAMESPACE}}}
spec: {{serverRef: crm, scope: platform, credentialMode: perMember}}
"""
PLANE_WARNING = (
    f"Warning: MCPConnection {NAMESPACE}/plane-members (server plane) is perMember and no member has connected it "
    "yet: every agent gets needs_connection for it"
)
NOTION_WARNING = (
    f"Warning: MCPServer {NAMESPACE}/notion runs as each member's own account and no member has connected it yet: "
    "every agent gets needs_connection for it"
)


def store_token(registry: Registry, *, server: str, connection: str | None, user: str) -> None:
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(
                tenant=NAMESPACE, server=server, user_id=user, secret_ref=f"{NAMESPACE}/{user}#t", connection=connection
            )
        )


@pytest.fixture
def applied(registry: Registry, tmp_path: Path) -> Registry:
    """Three per-member credentials; only crm-members has members (two of them, one with two tokens)."""
    (tmp_path / "objects.yaml").write_text(MANIFESTS)
    reconcile(load_folder(tmp_path), registry, settings=EngineSettings())
    store_token(registry, server="crm", connection="crm-members", user="alice")
    store_token(registry, server="crm", connection="crm-members", user="bob")
    store_token(registry, server="crm", connection=None, user="alice")
    return registry


def test_the_python_api_counts_distinct_members(applied: Registry) -> None:
    assert fetch_member_coverage(applied) == (
        MemberCoverage(NAMESPACE, NAMESPACE, "crm", "crm-members", 2),
        MemberCoverage(NAMESPACE, NAMESPACE, "notion", None, 0),
        MemberCoverage(NAMESPACE, NAMESPACE, "plane", "plane-members", 0),
    )


def test_get_warns_about_per_member_credentials_nobody_connected(registry_url: str, applied: Registry) -> None:
    code, out, err = run("get", "mcpconn", "-n", NAMESPACE, "--registry", registry_url)
    assert code == 0 and "plane-members" in out
    assert err.splitlines() == [PLANE_WARNING]

    code, _, err = run("get", "mcps", "-n", NAMESPACE, "--registry", registry_url)
    assert code == 0 and err.splitlines() == [NOTION_WARNING, PLANE_WARNING]

    code, _, err = run("get", "mcps", "crm", "-n", NAMESPACE, "--registry", registry_url)
    assert code == 0 and err == "", "crm's members connected: nothing to warn about"

    code, out, _ = run("get", "mcpconn", "-n", NAMESPACE, "-o", "json", "--registry", registry_url)
    counts = {item["metadata"]["name"]: item["status"]["connectedMembers"] for item in json.loads(out)["items"]}
    assert code == 0 and counts == {"crm-members": 2, "plane-members": 0}


def test_the_warning_goes_once_a_member_connects(registry_url: str, applied: Registry) -> None:
    store_token(applied, server="plane", connection="plane-members", user="carol")

    code, _, err = run("get", "mcp", "-n", NAMESPACE, "--registry", registry_url)

    assert code == 0 and err.splitlines() == [NOTION_WARNING]


@pytest.fixture
def endpoint(registry: Registry) -> Iterator[str]:
    with ServerLoop() as loop:
        base = loop.serve_asgi(lambda _url: build_mcp_app(registry, token=TOKEN))
        yield f"{base}/mcp"


def test_the_endpoint_lists_members_per_server(applied: Registry, endpoint: str) -> None:
    _, listed = call(endpoint, ("list_servers", {"tenant": NAMESPACE}))

    members = {server["name"]: server["health"]["members"] for server in structured(listed)["servers"]}
    assert members["crm"] == [{"connection": "crm-members", "connectedMembers": 2, "warning": None}]
    assert members["plane"] == [
        {"connection": "plane-members", "connectedMembers": 0, "warning": PLANE_WARNING.removeprefix("Warning: ")}
    ]
    assert members["notion"] == [
        {"connection": None, "connectedMembers": 0, "warning": NOTION_WARNING.removeprefix("Warning: ")}
    ]
