"""`spec.export`'s document against real registries (SQLite and PostgreSQL) populated from real manifests.

Per auth mode, the exact MCP client configuration with `${secret:…}` placeholders; what the template does not
bind or a Pin blocks is absent; no secret value reaches the document; the binding's registry row ignores
`export`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry, open_registry
from reconciler.registry.records import BindingRecord, ToolRecord, ToolSnapshotRecord
from reconciler.runtime import UnknownTenant, export_document, render_mcp_config, resolve
from tests.integration.cli.test_commands import run

EXAMPLES = Path(__file__).parents[3] / "examples"
NAMESPACE = "team-a"
APPROVED = "sha256:" + "a" * 64
UNAPPROVED = "sha256:" + "b" * 64
CANARIES = {
    "crm": "canary-crm-bearer-4f1c9a",
    "search": "canary-search-apikey-9d2e61",
    "trace": "canary-trace-header-7b3a05",
    "tickets": "canary-tickets-conn-2e8f47",
}


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


MANIFESTS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: mcp-tenant, namespace: {NAMESPACE}}}
data: {{workspace: acme-eng}}
---
apiVersion: v1
kind: Secret
metadata: {{name: crm-token, namespace: {NAMESPACE}}}
stringData: {{token: {CANARIES["crm"]}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: search-key, namespace: {NAMESPACE}}}
data: {{api-key: {_b64(CANARIES["search"])}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: trace, namespace: {NAMESPACE}}}
stringData: {{value: {CANARIES["trace"]}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tickets-token, namespace: {NAMESPACE}}}
stringData: {{token: {CANARIES["tickets"]}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: crm, namespace: {NAMESPACE}}}
spec:
  url: https://crm.example.com/mcp
  headers: [{{name: x-workspace, value: "{{{{ tenant.vars.workspace }}}}"}}]
  auth: {{type: bearer, secretKeyRef: {{name: crm-token, key: token}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: search, namespace: {NAMESPACE}}}
spec:
  url: https://search.example.com/mcp
  headers:
    - name: X-Trace
      valueFrom: {{secretKeyRef: {{name: trace, key: value}}}}
  auth: {{type: apiKey, headerName: X-Search-Key, secretKeyRef: {{name: search-key, key: api-key}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: docs, namespace: {NAMESPACE}}}
spec:
  url: https://docs.example.com/sse
  transport: sse
  headers:
    - {{name: X-Client, value: agents}}
    - {{name: x-tenant, value: "{{{{ tenant.slug }}}}"}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: tickets, namespace: {NAMESPACE}}}
spec:
  url: https://tickets.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: tickets-shared, namespace: {NAMESPACE}}}
spec:
  serverRef: tickets
  scope: platform
  auth: {{authorizationScheme: Token, secretKeyRef: {{name: tickets-token, key: token}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: approved, namespace: {NAMESPACE}}}
spec:
  url: https://approved.example.com/mcp
  tools: {{policy: Pin, approvedHash: "{APPROVED}"}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: unapproved, namespace: {NAMESPACE}}}
spec:
  url: https://unapproved.example.com/mcp
  tools: {{policy: Pin, approvedHash: "{APPROVED}"}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: wiki, namespace: {NAMESPACE}}}
spec:
  url: https://wiki.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: crm}}
  subjects: [{{kind: Organization}}]
""" + "".join(
    f"""---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: everyone-{server}, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: {server}}}
  subjects: [{{kind: Organization}}]
"""
    for server in ("search", "docs", "tickets", "approved", "unapproved", "wiki")
)
BINDINGS = f"""
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: assistant, namespace: {NAMESPACE}}}
spec:
  template: assistant
  servers:
    - serverRef: crm
    - serverRef: search
    - serverRef: docs
    - serverRef: tickets
    - serverRef: approved
    - serverRef: unapproved
EXPORT
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: other, namespace: {NAMESPACE}}}
spec:
  template: other
  servers: [{{serverRef: wiki}}]
"""
EXPORT = "  export:\n    configMap: {}"

EXPECTED = {
    "crm": {
        "url": "https://crm.example.com/mcp",
        "transport": "streamable-http",
        "headers": {"x-workspace": "acme-eng", "Authorization": "Bearer ${secret:team-a/crm-token#token}"},
        "tools": [],
        "toolSnapshot": None,
    },
    "search": {
        "url": "https://search.example.com/mcp",
        "transport": "streamable-http",
        "headers": {
            "X-Trace": "${secret:team-a/trace#value}",
            "X-Search-Key": "${secret:team-a/search-key#api-key}",
        },
        "tools": [],
        "toolSnapshot": None,
    },
    "docs": {
        "url": "https://docs.example.com/sse",
        "transport": "sse",
        "headers": {"X-Client": "agents", "x-tenant": "team-a"},
        "tools": [],
        "toolSnapshot": None,
    },
    "tickets": {
        "url": "https://tickets.example.com/mcp",
        "transport": "streamable-http",
        "headers": {"Authorization": "Token ${secret:team-a/tickets-token#token}"},
        "tools": [],
        "toolSnapshot": None,
    },
    "approved": {
        "url": "https://approved.example.com/mcp",
        "transport": "streamable-http",
        "headers": {},
        "tools": ["lookup"],
        "toolSnapshot": APPROVED,
    },
}


def write_folder(folder: Path, *, export: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "servers.yaml").write_text(MANIFESTS)
    (folder / "bindings.yaml").write_text(BINDINGS.replace("EXPORT\n", EXPORT + "\n" if export else ""))
    return folder


def take_snapshots(registry: Registry) -> None:
    """What a probe would have stored: the approved tools for one Pin server, other tools for the second."""
    taken_at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with registry.transaction() as tx:
        for server, hash_ in (("approved", APPROVED), ("unapproved", UNAPPROVED)):
            tools = (ToolRecord(name="lookup", description="lookup tool", fingerprint="fp-lookup"),)
            tx.put_tool_snapshot(
                ToolSnapshotRecord(tenant=NAMESPACE, server=server, hash=hash_, tools=tools, taken_at=taken_at)
            )


@pytest.fixture
def applied(registry: Registry, tmp_path: Path) -> Registry:
    reconcile(load_folder(write_folder(tmp_path / "team-a")), registry, settings=EngineSettings())
    take_snapshots(registry)
    return registry


DOCUMENT = """{
  "mcpServers": {
    "crm": {
      "url": "https://crm.example.com/mcp",
      "transport": "streamable-http",
      "headers": {"Authorization": "Bearer ${secret:team-a/crm-token#token}", "x-workspace": "acme-eng"},
      "tools": [],
      "toolSnapshot": null
    },
    "search": {
      "url": "https://search.example.com/mcp",
      "transport": "streamable-http",
      "headers": {"X-Search-Key": "${secret:team-a/search-key#api-key}", "X-Trace": "${secret:team-a/trace#value}"},
      "tools": [],
      "toolSnapshot": null
    },
    "docs": {
      "url": "https://docs.example.com/sse",
      "transport": "sse",
      "headers": {"X-Client": "agents", "x-tenant": "team-a"},
      "tools": [],
      "toolSnapshot": null
    },
    "tickets": {
      "url": "https://tickets.example.com/mcp",
      "transport": "streamable-http",
      "headers": {"Authorization": "Token ${secret:team-a/tickets-token#token}"},
      "tools": [],
      "toolSnapshot": null
    },
    "approved": {
      "url": "https://approved.example.com/mcp",
      "transport": "streamable-http",
      "headers": {},
      "tools": ["lookup"],
      "toolSnapshot": "APPROVED_HASH"
    }
  }
}
""".replace("APPROVED_HASH", APPROVED)


def test_document_per_auth_mode_with_placeholders(applied: Registry) -> None:
    document = export_document(applied, NAMESPACE, "assistant")

    assert document == DOCUMENT, "the same Jinja template as `resolve -o mcp-config`, byte for byte"
    config = json.loads(document)
    assert config == {"mcpServers": EXPECTED}
    assert list(config["mcpServers"]) == ["crm", "search", "docs", "tickets", "approved"], "binding order is kept"
    assert "wiki" not in document, "bound only by another template"
    assert "unapproved" not in document, "Pin blocks a server whose snapshot is not the approved one"


def test_document_lists_what_resolve_lists_for_the_organization(applied: Registry) -> None:
    resolved = json.loads(render_mcp_config(resolve(applied, NAMESPACE, template="assistant")))["mcpServers"]
    exported = json.loads(export_document(applied, "team-a", "assistant"))["mcpServers"]

    assert list(exported) == list(resolved)
    for name, server in exported.items():
        assert {k: v for k, v in server.items() if k != "headers"} == {
            k: v for k, v in resolved[name].items() if k != "headers"
        }
        assert list(server["headers"]) == list(resolved[name]["headers"])


def test_a_template_nobody_binds_exports_an_empty_document(applied: Registry) -> None:
    assert json.loads(export_document(applied, NAMESPACE, "nobody")) == {"mcpServers": {}}


def test_an_unknown_tenant_is_an_error(applied: Registry) -> None:
    with pytest.raises(UnknownTenant):
        export_document(applied, "team-z", "assistant")


def test_no_secret_value_reaches_the_document(registry_url: str, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "team-a")
    code, _, err = run("apply", "-f", str(folder), "--no-probe", "--registry", registry_url)
    assert code == 0, err
    registry = open_registry(registry_url)
    try:
        take_snapshots(registry)
        document = export_document(registry, NAMESPACE, "assistant")
    finally:
        registry.close()

    assert "${secret:" in document
    for value in CANARIES.values():
        for form in (value, _b64(value), base64.urlsafe_b64encode(value.encode()).decode(), value[:12]):
            assert form not in document


def test_export_is_not_part_of_the_binding_row(registry: Registry, tmp_path: Path) -> None:
    def binding_row() -> tuple[BindingRecord, str]:
        (record,) = [
            row for key, row in registry.fetch_state().rows.items() if key == ("bindings", NAMESPACE, "assistant")
        ]
        assert isinstance(record, BindingRecord)
        return record, record.content_hash()

    reconcile(load_folder(write_folder(tmp_path / "without", export=False)), registry, settings=EngineSettings())
    before = binding_row()

    report = reconcile(load_folder(write_folder(tmp_path / "with")), registry, settings=EngineSettings())

    assert not report.plan.has_changes, "adding export changes no registry row"
    assert binding_row() == before


def test_the_example_exports_its_api_key_as_a_placeholder(registry: Registry) -> None:
    reconcile(load_folder(EXAMPLES / "02-tenant-servers"), registry, settings=EngineSettings())

    config: dict[str, Any] = json.loads(export_document(registry, "acme-prod", "support-agent"))

    # twenty-crm and plane run as each member's own account: nothing to mount without a member.
    assert config == {
        "mcpServers": {
            "internal-search": {
                "url": "https://search.internal.example.com/mcp",
                "transport": "streamable-http",
                "headers": {"X-API-Key": "${secret:acme-prod/internal-search-key#api-key}"},
                "tools": [],
                "toolSnapshot": None,
            }
        }
    }
