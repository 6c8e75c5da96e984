"""One tenant's worth of real manifests covering the resolution matrix, applied through the engine.

Shared by the resolution tests and the MCP endpoint tests. `populate` writes the YAML to a folder, reconciles
it into the registry, then adds what the engine does not write from manifests: members' own tokens (the
runtime's `user_tokens`), tool snapshots and probe state.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler.engine.inputs import DesiredInput
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.registry.records import ProbeStateRecord, ToolRecord, ToolSnapshotRecord, UserTokenRecord

NAMESPACE = "acme-prod"
TENANT = "acme"
TEMPLATE = "assistant"
APPROVED = "sha256:" + "a" * 64
UNAPPROVED = "sha256:" + "b" * 64
SECRET_VALUES = {
    "platform": "platform-token-value",
    "tutor": "tutor-token-value",
    "alice": "alice-drive-token",
    "catalog": "catalog-server-token",
    "apikey": "search-api-key-value",
    "trace": "trace-header-value",
    "linear": "linear-shared-token",
    "alice-notion": "alice-notion-token",
    "alice-crm": "alice-crm-token",
}
TAKEN_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _secret_data() -> str:
    return "\n".join(f"  {key}: {value}" for key, value in SECRET_VALUES.items())


MANIFESTS = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    mcp.reconciler.dev/tenant: {TENANT}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {NAMESPACE}
stringData:
{_secret_data()}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: drive, namespace: {NAMESPACE}}}
spec:
  url: https://drive.example.com/mcp
  headers:
    - {{name: X-Client, value: server}}
    - name: X-Trace
      valueFrom: {{secretKeyRef: {{name: creds, key: trace}}}}
  tools: {{deny: ["delete_*"]}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: drive-platform, namespace: {NAMESPACE}}}
spec:
  serverRef: drive
  scope: platform
  auth: {{authorizationScheme: Token, secretKeyRef: {{name: creds, key: platform}}}}
  headers: [{{name: x-client, value: connection}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: drive-tutor, namespace: {NAMESPACE}}}
spec:
  serverRef: drive
  scope: agent
  subject: tutor
  auth: {{secretKeyRef: {{name: creds, key: tutor}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: drive-alice, namespace: {NAMESPACE}}}
spec:
  serverRef: drive
  scope: user
  subject: alice
  auth: {{secretKeyRef: {{name: creds, key: alice}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: drive-alice-old, namespace: {NAMESPACE}}}
spec:
  serverRef: drive
  scope: user
  subject: alice
  active: false
  auth: {{secretKeyRef: {{name: creds, key: platform}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: drive-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: drive}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: catalog, namespace: {NAMESPACE}}}
spec:
  url: https://catalog.example.com/sse
  transport: sse
  featured: true
  auth: {{type: bearer, secretKeyRef: {{name: creds, key: catalog}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: catalog-grader, namespace: {NAMESPACE}}}
spec:
  serverRef: catalog
  scope: agent
  subject: grader
  auth: {{secretKeyRef: {{name: creds, key: tutor}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: catalog-support, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: catalog}}
  subjects: [{{kind: Team, name: support}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: search, namespace: {NAMESPACE}}}
spec:
  url: https://search.example.com/mcp
  auth: {{type: apiKey, headerName: X-API-Key, secretKeyRef: {{name: creds, key: apikey}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: search-alice, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: search}}
  subjects: [{{kind: Member, name: alice}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: notion, namespace: {NAMESPACE}}}
spec:
  url: https://notion.example.com/mcp
  auth: {{type: oauthAuthorizationCode, pkce: public}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: notion-members, namespace: {NAMESPACE}}}
spec:
  serverRef: notion
  scope: platform
  credentialMode: perMember
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: notion-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{connectionRef: notion-members}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: linear, namespace: {NAMESPACE}}}
spec:
  url: https://linear.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: linear-shared, namespace: {NAMESPACE}}}
spec:
  serverRef: linear
  scope: platform
  auth: {{secretKeyRef: {{name: creds, key: linear}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata: {{name: linear-admins, namespace: {NAMESPACE}}}
spec:
  serverRef: linear
  scope: platform
  auth: {{secretKeyRef: {{name: creds, key: platform}}}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: linear-engineering, namespace: {NAMESPACE}}}
spec:
  target: {{connectionRef: linear-shared}}
  subjects: [{{kind: Team, name: engineering}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: pinned, namespace: {NAMESPACE}}}
spec:
  url: https://pinned.example.com/mcp
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
metadata: {{name: quarantined, namespace: {NAMESPACE}}}
spec:
  url: https://quarantined.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: tools-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: pinned}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: unapproved-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: unapproved}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: quarantined-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: quarantined}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: bobs-only, namespace: {NAMESPACE}}}
spec:
  url: https://bobs-only.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: bob, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: bobs-only}}
  subjects: [{{kind: Member, name: bob}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: retired, namespace: {NAMESPACE}}}
spec:
  url: https://retired.example.com/mcp
  enabled: false
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: retired-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: retired}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: crm, namespace: {NAMESPACE}}}
spec:
  url: https://crm.example.com/mcp
  auth: {{type: oauthAuthorizationCode, pkce: public}}
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: crm-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: crm}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: assistant, namespace: {NAMESPACE}}}
spec:
  template: {TEMPLATE}
  servers:
    - serverRef: drive
    - serverRef: catalog
    - serverRef: search
    - serverRef: notion
      connectionRef: notion-members
    - serverRef: linear
      tools: {{allow: ["list_*"]}}
    - serverRef: pinned
    - serverRef: unapproved
    - serverRef: quarantined
    - serverRef: bobs-only
    - serverRef: retired
    - serverRef: crm
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata: {{name: gradebook, namespace: {NAMESPACE}}}
spec:
  url: https://gradebook.example.com/mcp
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata: {{name: gradebook-everyone, namespace: {NAMESPACE}}}
spec:
  target: {{serverRef: gradebook}}
  subjects: [{{kind: Organization}}]
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: assistant-tutor, namespace: {NAMESPACE}}}
spec:
  template: {TEMPLATE}
  agents: [tutor]
  servers:
    - serverRef: gradebook
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata: {{name: small, namespace: {NAMESPACE}}}
spec:
  template: small
  servers:
    - serverRef: drive
"""

SERVER_NAMES = (
    "drive",
    "catalog",
    "search",
    "notion",
    "linear",
    "pinned",
    "unapproved",
    "quarantined",
    "bobs-only",
    "retired",
    "crm",
    "gradebook",
)


def write_manifests(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.yaml").write_text(MANIFESTS)
    return folder


def snapshot(server: str, names: tuple[str, ...], *, hash_: str) -> ToolSnapshotRecord:
    tools = tuple(ToolRecord(name=name, description=f"{name} tool", fingerprint=f"fp-{name}") for name in names)
    return ToolSnapshotRecord(tenant=TENANT, server=server, hash=hash_, tools=tools, taken_at=TAKEN_AT)


def populate(registry: Registry, folder: Path) -> DesiredInput:
    """Apply the world through the engine, then add tokens, snapshots and probe state; returns the input."""
    desired = load_folder(write_manifests(folder))
    reconcile(desired, registry, settings=EngineSettings())
    with registry.transaction() as tx:
        for server, connection, key in (("notion", "notion-members", "alice-notion"), ("crm", None, "alice-crm")):
            tx.insert_user_token(
                UserTokenRecord(
                    tenant=TENANT,
                    server=server,
                    user_id="alice",
                    secret_ref=f"{NAMESPACE}/creds#{key}",
                    connection=connection,
                )
            )
        tx.put_tool_snapshot(snapshot("drive", ("list_files", "read_file", "delete_file"), hash_="sha256:drive-1"))
        tx.put_tool_snapshot(snapshot("linear", ("list_issues", "create_issue"), hash_="sha256:linear-1"))
        tx.put_tool_snapshot(snapshot("pinned", ("lookup",), hash_=APPROVED))
        tx.put_tool_snapshot(snapshot("unapproved", ("lookup", "exfiltrate"), hash_=UNAPPROVED))
        tx.put_probe_state(
            ProbeStateRecord(
                tenant=TENANT,
                server="quarantined",
                blocked_reason="quarantined by an administrator",
                last_test={"ok": False, "errorClass": "auth", "message": "401 from server", "latencyMs": 12},
                discovery={"requiresAuth": True, "authorizationServers": ["https://as.example.com"]},
                probed_at=TAKEN_AT,
            )
        )
    return desired
