"""A folder of 10,000 manifests for the crash and concurrency trials, in two versions that differ in every kind.

`write_fleet(folder, version=0)` is the "old" desired state and `version=1` the "new" one: a server in
forty changes URL, a connection in thirty changes subject, two grants per tenant disappear and as many new ones
appear, and one binding in ten swaps a server, so a transition between them creates, updates and deletes rows of
all four tables. Both versions hold exactly `objects` objects. The difference is kept to a few hundred rows
(planning diffs each changed row field by field, and the trials run many applies). Written as plain text (no YAML
library) because generating it must cost far less than applying it.
"""

from __future__ import annotations

from pathlib import Path

TENANTS = 50


def write_fleet(folder: Path, *, version: int, objects: int = 10_000, tenants: int = TENANTS) -> int:
    """Write one file per tenant into `folder` (created); returns the number of objects written."""
    folder.mkdir(parents=True, exist_ok=True)
    per_tenant = objects // tenants
    servers = per_tenant * 4 // 10
    connections = per_tenant * 3 // 10
    grants = per_tenant * 2 // 10
    bindings = per_tenant - servers - connections - grants
    written = 0
    for t in range(tenants):
        ns = f"tenant-{t:03d}"
        docs = [
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: tokens\n  namespace: {ns}\nstringData:\n"
            + "".join(f"  k{i}: token-{t}-{i}\n" for i in range(servers))
        ]
        for i in range(servers):
            region = "eu" if version and i % 40 == 0 else "us"
            docs.append(
                f"apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: server-{i}\n"
                f"  namespace: {ns}\nspec:\n  url: https://mcp-{i}.{region}.{ns}.example.com/mcp\n"
                f"  auth:\n    type: bearer\n    secretKeyRef: {{name: tokens, key: k{i}}}\n"
            )
        for i in range(connections):
            moved = "-b" if version and i % 30 == 0 else ""
            docs.append(
                f"apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPConnection\nmetadata:\n  name: conn-{i}\n"
                f"  namespace: {ns}\nspec:\n  serverRef: server-{i % servers}\n  scope: user\n"
                f"  subject: user-{i}{moved}\n"
                f"  auth:\n    secretKeyRef: {{name: tokens, key: k{i % servers}}}\n"
            )
        # Version 1 drops the first two grants and adds as many under new names.
        dropped = 2 if version else 0
        for i in range(dropped, grants + dropped):
            docs.append(
                f"apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPAccessGrant\nmetadata:\n  name: grant-{i}\n"
                f"  namespace: {ns}\nspec:\n  target: {{serverRef: server-{i % servers}}}\n  subjects:\n"
                f"    - {{kind: Team, name: team-{i % 7}}}\n    - {{kind: Member, name: m-{i}}}\n"
            )
        for i in range(bindings):
            first = (i + (version if i % 10 == 0 else 0)) % servers
            refs = "".join(f"    - serverRef: server-{(first + j) % servers}\n" for j in range(3))
            docs.append(
                f"apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPTemplateBinding\nmetadata:\n  name: binding-{i}\n"
                f"  namespace: {ns}\nspec:\n  template: template-{i}\n  servers:\n{refs}"
            )
        written += len(docs) - 1
        (folder / f"{ns}.yaml").write_text("---\n".join(docs))
    return written
