"""Valid manifests of every supported kind, shared by the loader's table tests and its fuzz tests."""

from __future__ import annotations

from pathlib import Path

SERVER = """\
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata:
  name: crm
  namespace: acme
spec:
  url: https://crm.example.com/{{ tenant.slug }}/mcp
  transport: streamable-http
  headers:
    - name: x-workspace
      value: "{{ tenant.vars.workspace }}"
    - name: x-api-key
      valueFrom:
        secretKeyRef: {name: crm-token, key: key}
  auth:
    type: bearer
    secretKeyRef:
      name: crm-token
      key: token
"""

CONNECTION = """\
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata:
  name: crm-platform
  namespace: acme
spec:
  serverRef: crm
  scope: platform
  auth:
    secretKeyRef: {name: crm-token, key: token}
"""

GRANT = """\
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPAccessGrant
metadata:
  name: crm-everyone
  namespace: acme
spec:
  target: {serverRef: crm}
  subjects:
    - kind: Organization
"""

BINDING = """\
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPTemplateBinding
metadata:
  name: support-agent
  namespace: acme
spec:
  template: support-agent
  servers:
    - serverRef: crm
"""

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: acme
  labels:
    mcp.reconciler.dev/tenant: acme-corp
"""

TENANT_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: mcp-tenant
  namespace: acme
data:
  workspace: ws-42
  region: eu
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: crm-token
  namespace: acme
type: Opaque
data:
  token: dG9rLWZyb20tZGF0YQ==
  key: b2xkLWtleQ==
stringData:
  key: new-key
"""

ALL = (SERVER, CONNECTION, GRANT, BINDING, NAMESPACE, TENANT_CONFIGMAP, SECRET)


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create `files` (relative path → content) under `root` and return `root`."""
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def documents(*texts: str) -> str:
    """Join manifests into one multi-document YAML stream."""
    return "---\n" + "---\n".join(texts)
