"""Desired objects for the step modules' unit tests: real API models and records, no registry."""

from __future__ import annotations

from typing import Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import Tenant
from reconciler.registry.records import ConnectionRecord, ServerRecord


def tenant(namespace: str) -> Tenant:
    return Tenant(namespace=namespace, slug=f"{namespace}-slug")


def server(
    name: str,
    *,
    namespace: str = "acme",
    discovery: str | None = None,
    labels: dict[str, str] | None = None,
    **meta: Any,
) -> DesiredObject:
    resource = MCPServer.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, **meta},
            "spec": {"url": f"https://{name}.example.com/mcp"},
        }
    )
    record = ServerRecord(
        tenant=tenant(namespace).slug, name=name, url=f"https://{name}.example.com/mcp", discovery_connection=discovery
    )
    return DesiredObject(resource, tenant(namespace), record)


def connection(name: str, *, server_name: str, namespace: str = "acme") -> DesiredObject:
    resource = MCPConnection.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": {"serverRef": server_name, "scope": "platform"}}
    )
    record = ConnectionRecord(tenant=tenant(namespace).slug, name=name, server=server_name)
    return DesiredObject(resource, tenant(namespace), record)
