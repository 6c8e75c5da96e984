"""Tool risk and member coverage on a real API server, with the operator probing a live local MCP server: a flipped
`readOnlyHint` reaches the cluster as `Ready=False ToolRiskChanged` (kept by the CRD's schema, with
`status.tools.changes.risk`) and a Warning Event, a `tools.readOnly` binding says in its Ready message why it trusts
no unpinned server, and a `perMember` connection's `status.connectedMembers` follows the members who connect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types
import pytest

from reconciler.registry.records import UserTokenRecord
from tests.e2e.kube import KubeHttp, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    GROUP_VERSION,
    annotate,
    condition,
    create,
    get,
    registry_at,
    secret,
    server,
    wait_condition,
    wait_event,
    wait_ready,
)
from tests.fixtures.mcp_servers import LocalServers, ToolCatalog

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
PROBING = {"probe": True, "allow_private_networks": True}
REQUESTED = "mcp.reconciler.dev/reconcile-requested-at"


def _object(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _annotated(catalog: ToolCatalog, *, wipe_read_only: bool) -> None:
    catalog.reset()
    wipe = mcp_types.Tool(
        name="wipe_city",
        description="Delete a city and its history.",
        input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        annotations=mcp_types.ToolAnnotations(read_only_hint=wipe_read_only, destructive_hint=True),
    )
    readers = [
        tool.model_copy(update={"annotations": mcp_types.ToolAnnotations(read_only_hint=True)})
        for tool in catalog.tools
    ]
    catalog.tools = [*readers, wipe]


@pytest.mark.timeout(150)
def test_a_flipped_read_only_hint_degrades_the_server_in_the_cluster(
    kube: KubeHttp,
    tool_catalog: ToolCatalog,
    mcp_servers: LocalServers,
    new_namespace: NewNamespace,
    sqlite_url: str,
    start_operator: Start,
) -> None:
    namespace = new_namespace()
    _annotated(tool_catalog, wipe_read_only=False)
    start_operator([namespace], sqlite_url, resync_interval=300.0, **PROBING)
    spec = {"url": mcp_servers.changing, "network": {"allowPrivate": True}, "discovery": {"enabled": True}}
    ref = create(kube, server(namespace, "weather", **spec))
    create(
        kube,
        _object(
            "MCPAccessGrant",
            namespace,
            "everyone",
            {"target": {"serverRef": "weather"}, "subjects": [{"kind": "Organization"}]},
        ),
    )
    binding = create(
        kube,
        _object(
            "MCPTemplateBinding",
            namespace,
            "researcher",
            {"template": "researcher", "tools": {"readOnly": True}, "servers": [{"serverRef": "weather"}]},
        ),
    )
    assert wait_ready(kube, ref)["status"]["tools"]["count"] == 3
    bound = wait_ready(kube, binding)
    assert condition(bound, "Ready")["message"].startswith(
        "readOnly admits no tools from weather (not pinned (spec.tools.policy: Track)): annotations from untrusted "
        "servers must not be trusted (MCP specification)"
    ), "the CRD kept spec.tools.readOnly and the binding says why it admits nothing"

    _annotated(tool_catalog, wipe_read_only=True)  # a destructive tool now claims to read only
    annotate(kube, ref, {REQUESTED: "risk-1"})

    flipped = "readOnlyHint of wipe_city: false → true"
    degraded = wait_condition(kube, ref, type_="Ready", status="False", reason="ToolRiskChanged", timeout=60)
    assert flipped in condition(degraded, "Ready")["message"]
    assert condition(degraded, "ToolsDrifted")["reason"] == "ToolRiskChanged"
    assert degraded["status"]["tools"]["changes"]["risk"] == [flipped], "the CRD's schema keeps the risk list"
    event = wait_event(kube, namespace, name="weather", reason="ToolRiskChanged", timeout=60)
    assert event["type"] == "Warning" and flipped in event["message"]


@pytest.mark.timeout(150)
def test_a_per_member_connections_connected_members_reach_its_cluster_status(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, resync_interval=300.0)
    kube.post(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "crm", {"token": "crm-token-value"}))
    create(kube, server(namespace, "crm", auth={"type": "bearer", "secretKeyRef": {"name": "crm", "key": "token"}}))
    ref = create(
        kube,
        _object(
            "MCPConnection",
            namespace,
            "crm-members",
            {"serverRef": "crm", "scope": "platform", "credentialMode": "perMember"},
        ),
    )
    assert wait_ready(kube, ref)["status"]["connectedMembers"] == 0, "nobody connected yet: said, not left out"

    with registry_at(sqlite_url) as registry, registry.transaction() as tx:
        for user in ("jordan", "sam"):
            tx.insert_user_token(
                UserTokenRecord(
                    tenant=namespace,
                    server="crm",
                    user_id=user,
                    secret_ref=f"{namespace}/{user}#token",
                    connection="crm-members",
                )
            )
    annotate(kube, ref, {REQUESTED: "members-1"})

    wait_for(
        lambda: ((get(kube, ref) or {}).get("status") or {}).get("connectedMembers") == 2,
        timeout=60,
        what="status.connectedMembers to count the two members",
    )
