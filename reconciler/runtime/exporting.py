"""`spec.export` of an `MCPTemplateBinding`: the template's MCP client configuration as a ConfigMap a runtime mounts.

Called by the operator (and tests): `export_target` says where a binding wants the document, `export_document`
renders it from the registry, `build_config_map` wraps it in the ConfigMap body the operator sends. Plain
dicts, no Kubernetes client, no writes.

The document is what `resolve -o mcp-config --template T` prints for no particular agent or member (so only
organization-wide grants and shared credentials count): `{"mcpServers": {name: {url, transport, headers}}}`
with the ready servers in binding order, through the same Jinja template. It is stored in a ConfigMap, so it
holds no secret value: each header taken from a secret reads `${secret:<namespace>/<secret>#<key>}`, after
its scheme when there is one (`"Authorization": "Bearer ${secret:team-a/crm-token#token}"`), and the runtime
substitutes the value from the Secret it mounts. Literal headers are written as they are. No secret value is
read to build it: the per-server decisions are taken before any value would be.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from reconciler.api.binding import MCPTemplateBinding
from reconciler.api.common import GROUP_VERSION
from reconciler.registry import Registry
from reconciler.runtime.deciding import Caller, HeaderSource, ServerDecision
from reconciler.runtime.presenting import render_mcp_config
from reconciler.runtime.resolution import Resolution, ResolvedServer, ServerState
from reconciler.runtime.resolving import fetch_decisions

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "TEMPLATE_LABEL",
    "ExportTarget",
    "build_config_map",
    "export_document",
    "export_target",
    "secret_placeholder",
]

DEFAULT_NAME_SUFFIX: Final = "-mcp-config"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "mcp-reconciler"
TEMPLATE_LABEL: Final = "mcp.reconciler.dev/template"
_MAX_NAME = 253
_MAX_LABEL_VALUE = 63
_HASH_LENGTH = 8
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ExportTarget:
    """Where one binding's document goes: a ConfigMap in the binding's namespace, and the data key."""

    name: str
    key: str
    template: str


def export_target(binding: MCPTemplateBinding) -> ExportTarget | None:
    """The binding's ConfigMap name and key with defaults applied; None when the binding exports nothing."""
    export = binding.spec.export
    if export is None:
        return None
    name = export.config_map.name or _default_name(binding.metadata.name)
    return ExportTarget(name=name, key=export.config_map.key, template=binding.spec.template)


def secret_placeholder(reference: str) -> str:
    """`${secret:<namespace>/<secret>#<key>}`: what the document holds where a secret value would be."""
    return "${secret:" + reference + "}"


def export_document(registry: Registry, tenant: str, template: str, *, platform_tenant: str | None = None) -> str:
    """The template's MCP client configuration with secret placeholders; `tenant` is a slug or its namespace.

    `platform_tenant` adds the platform's featured servers last, as `resolve` does. Raises `UnknownTenant` like
    `resolve`. Reads no secret value.
    """
    inputs, decisions = fetch_decisions(
        registry, tenant, template=template, caller=Caller(), platform_tenant=platform_tenant
    )
    servers = tuple(_exported(decision) for decision in decisions.servers if decision.state is ServerState.READY)
    resolution = Resolution(
        tenant=inputs.tenant.slug,
        namespace=inputs.tenant.namespace,
        template=template,
        agent=None,
        user=None,
        teams=(),
        servers=servers,
    )
    return render_mcp_config(resolution)


def build_config_map(
    *, namespace: str, binding_name: str, binding_uid: str, target: ExportTarget, document: str
) -> dict[str, Any]:
    """The ConfigMap body: owned (as controller) by the binding, so deleting the binding deletes it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": target.name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, TEMPLATE_LABEL: _label_value(target.template)},
            "ownerReferences": [
                {
                    "apiVersion": GROUP_VERSION,
                    "kind": "MCPTemplateBinding",
                    "name": binding_name,
                    "uid": binding_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {target.key: document},
    }


def _exported(decision: ServerDecision) -> ResolvedServer:
    return decision.resolved({source.name: _header_value(source) for source in decision.headers})


def _header_value(source: HeaderSource) -> str:
    value = (source.value or "") if source.secret_ref is None else secret_placeholder(source.secret_ref)
    return f"{source.prefix} {value}" if source.prefix else value


def _default_name(binding_name: str) -> str:
    """`<binding>-mcp-config`; a binding name too long for that keeps a prefix and a hash of the whole name."""
    name = binding_name + DEFAULT_NAME_SUFFIX
    if len(name) <= _MAX_NAME:
        return name
    keep = _MAX_NAME - len(DEFAULT_NAME_SUFFIX) - _HASH_LENGTH - 1
    # The name starts with a letter or digit, so the kept prefix still ends with one after the strip.
    return f"{binding_name[:keep].rstrip('-.')}-{_digest(binding_name)}{DEFAULT_NAME_SUFFIX}"


def _label_value(template: str) -> str:
    """Template ids may hold `:` and run to 253 characters; label values may not, so those get a hashed form."""
    if len(template) <= _MAX_LABEL_VALUE and _LABEL_VALUE.match(template):
        return template
    keep = _MAX_LABEL_VALUE - _HASH_LENGTH - 1
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", template)[:keep].rstrip("-_.")
    return f"{cleaned}-{_digest(template)}" if cleaned else _digest(template)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]
