"""`spec.export` of a binding under the operator, against a real API server: the template's MCP client
configuration lands in a ConfigMap the binding owns, follows changes of the servers it lists, never holds a
secret value, never overwrites a ConfigMap it does not own, and goes away with the binding."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.e2e.kube import KubeHttp, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    GROUP_VERSION,
    READY_TIMEOUT,
    create,
    events,
    get,
    secret,
    server,
    wait_event,
    wait_gone,
    wait_ready,
)

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
CANARY = "export-canary-token-value"


def _grant(namespace: str, name: str, server_name: str) -> dict[str, Any]:
    spec = {"target": {"serverRef": server_name}, "subjects": [{"kind": "Organization"}]}
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "MCPAccessGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _binding(namespace: str, name: str, servers: list[str], export: dict[str, Any]) -> dict[str, Any]:
    spec = {"template": "support-agent", "servers": [{"serverRef": s} for s in servers], "export": export}
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": GROUP_VERSION, "kind": "MCPTemplateBinding", "metadata": metadata, "spec": spec}


def _config_map(kube: KubeHttp, namespace: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = kube.maybe_get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return found


def test_a_binding_exports_its_mcp_config_to_a_configmap_it_owns(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, export_debounce=0.2)
    kube.post(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "crm-token", {"token": CANARY}))
    auth = {"type": "bearer", "secretKeyRef": {"name": "crm-token", "key": "token"}}
    crm = create(kube, server(namespace, "crm", auth=auth))
    wiki = create(kube, server(namespace, "wiki"))
    for name in ("crm", "wiki"):
        create(kube, _grant(namespace, f"org-{name}", name))
    binding = create(kube, _binding(namespace, "support", ["crm", "wiki"], {"configMap": {}}))
    wait_ready(kube, crm)
    wait_ready(kube, wiki)
    obj = wait_ready(kube, binding)

    def exported() -> dict[str, Any] | None:
        found = _config_map(kube, namespace, "support-mcp-config")
        return found if found and len(json.loads(found["data"]["mcp-config.json"])["mcpServers"]) == 2 else None

    config_map = wait_for(exported, timeout=READY_TIMEOUT, what="the exported ConfigMap with both servers")
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "MCPTemplateBinding",
        "support",
        obj["metadata"]["uid"],
        True,
    )
    document = json.loads(config_map["data"]["mcp-config.json"])["mcpServers"]
    assert document["crm"] == {
        "url": "https://crm.example.com/mcp",
        "transport": "streamable-http",
        "headers": {"Authorization": f"Bearer ${{secret:{namespace}/crm-token#token}}"},
        "tools": [],
        "toolSnapshot": None,
    }, "crm.example.com is never listed: its tools are stated unknown, not left unfiltered"
    assert document["wiki"]["headers"] == {}
    status = wait_for(
        lambda: (found := get(kube, binding)) and found["status"].get("export", {}).get("state") == "Written" and found,
        timeout=READY_TIMEOUT,
        what="status.export",
    )["status"]["export"]
    assert status == {"configMap": "support-mcp-config", "key": "mcp-config.json", "state": "Written", "servers": 2}
    wait_event(kube, namespace, name="support", reason="Exported")

    # A server's change reaches the document without touching the binding.
    kube.patch(crm.path, {"spec": {"url": "https://crm-v2.example.com/mcp"}})
    wait_for(
        lambda: (
            (found := _config_map(kube, namespace, "support-mcp-config"))
            and "crm-v2.example.com" in found["data"]["mcp-config.json"]
        ),
        timeout=READY_TIMEOUT,
        what="the ConfigMap to follow the server's new URL",
    )
    text = json.dumps(_config_map(kube, namespace, "support-mcp-config")) + json.dumps(get(kube, binding))
    assert CANARY not in text and "ZXhwb3J0LWNhbmFyeS" not in text, "no secret value, plain or base64"

    kube.delete(binding.path)
    wait_gone(kube, binding)
    wait_for(
        lambda: _config_map(kube, namespace, "support-mcp-config") is None,
        timeout=READY_TIMEOUT,
        what="the exported ConfigMap to go with its binding",
    )


def test_a_configmap_the_binding_does_not_own_is_left_alone(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url)
    theirs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "taken"}, "data": {"k": "theirs"}}
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", theirs)
    create(kube, server(namespace, "wiki"))
    create(kube, _grant(namespace, "org-wiki", "wiki"))
    export = {"configMap": {"name": "taken", "key": "mcp.json"}}
    binding = create(kube, _binding(namespace, "support", ["wiki"], export))
    found = wait_for(
        lambda: (obj := get(kube, binding)) and (obj.get("status") or {}).get("export", {}).get("state") == "Conflict",
        timeout=READY_TIMEOUT,
        what="status.export to report the conflict",
    )
    found = get(kube, binding) or {}
    assert "not controlled by this binding" in found["status"]["export"]["message"]
    wait_event(kube, namespace, name="support", reason="Conflict")
    assert (_config_map(kube, namespace, "taken") or {})["data"] == {"k": "theirs"}

    kube.delete(binding.path)
    wait_gone(kube, binding)
    assert (_config_map(kube, namespace, "taken") or {})["data"] == {"k": "theirs"}, "deletion leaves it too"
    assert len(events(kube, namespace, name="support", reason="Conflict")) == 1
