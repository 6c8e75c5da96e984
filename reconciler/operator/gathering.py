"""Turn cluster objects into the engine's `DesiredInput` for the objects one pass reconciles.

Called by the operator's reconcile loop. The engine validates everything it is given, so a pass hands it the
targets plus only what they reference (transitively, same namespace): one broken object elsewhere in the
namespace cannot fail its neighbours, and a pass costs the same however big the namespace is. Pure: bodies
come from the object index (`indexing.py`), tenants and Secret values from `cluster.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError

from reconciler.api import (
    KINDS,
    MCPAccessGrant,
    MCPConnection,
    MCPServer,
    MCPTemplateBinding,
    Resource,
    kind_for,
)
from reconciler.api.connection import connection_secret_refs
from reconciler.api.invalid_fields import describe_field_error
from reconciler.api.server import auth_secret_refs
from reconciler.engine.inputs import DesiredInput, StaticSecrets, Tenant
from reconciler.errors import InvalidInput, Problem
from reconciler.operator.annotations import KOPF_PREFIX
from reconciler.registry.records import SourceRef

KIND_NAMES = frozenset(info.kind for info in KINDS)
_KOPF_ANNOTATIONS = f"{KOPF_PREFIX}/"
_KEPT_METADATA = ("name", "namespace", "labels", "annotations", "generation", "uid", "resourceVersion")


def slim_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an object a pass reads (what the object index keeps per object; managedFields are dropped)."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {key: metadata[key] for key in _KEPT_METADATA if key in metadata},
        "spec": body.get("spec") or {},
    }


def source_of(body: Mapping[str, Any]) -> SourceRef:
    metadata = body.get("metadata") or {}
    return SourceRef(str(body.get("kind")), str(metadata.get("namespace")), str(metadata.get("name")))


def parse_resource(body: Mapping[str, Any]) -> Resource:
    """The strict model of one object; InvalidInput naming each bad field (never echoing values), worded by
    `api.invalid_fields` exactly as the folder loader words it."""
    source = source_of(body)
    try:
        info = kind_for(source.kind)
    except KeyError:
        raise InvalidInput([Problem(f"unknown kind {source.kind}", namespace=source.namespace)]) from None
    data = {key: value for key, value in slim_body(body).items() if key != "status"}
    try:
        return cast(Resource, info.model.model_validate(data))
    except ValidationError as error:
        # Worded as the CLI words them (same field path, same message); the object stands where a file would.
        problems = []
        for detail in error.errors(include_url=False, include_input=False, include_context=True):
            refused = describe_field_error(detail, data)
            problems.append(
                Problem(
                    refused.message, kind=source.kind, namespace=source.namespace, name=source.name, field=refused.field
                )
            )
        raise InvalidInput(problems) from None


def references_of(resource: Resource) -> list[tuple[str, str]]:
    """(kind, name) of every object `resource` refers to; all in its own namespace by construction."""
    found: list[tuple[str, str]] = []
    if isinstance(resource, MCPServer):
        if resource.spec.discovery.connection_ref is not None:
            found.append(("MCPConnection", resource.spec.discovery.connection_ref))
    elif isinstance(resource, MCPConnection):
        found.append(("MCPServer", resource.spec.server_ref))
    elif isinstance(resource, MCPAccessGrant):
        if resource.spec.target.server_ref is not None:
            found.append(("MCPServer", resource.spec.target.server_ref))
        if resource.spec.target.connection_ref is not None:
            found.append(("MCPConnection", resource.spec.target.connection_ref))
    elif isinstance(resource, MCPTemplateBinding):
        for bound in resource.spec.servers:
            found.append(("MCPServer", bound.server_ref))
            if bound.connection_ref is not None:
                found.append(("MCPConnection", bound.connection_ref))
    return found


def secret_names(resources: Iterable[Resource]) -> set[str]:
    """Names of the Secrets (same namespace) the resources read."""
    names: set[str] = set()
    for resource in resources:
        if isinstance(resource, MCPServer):
            names.update(ref.name for _, ref in auth_secret_refs(resource.spec))
        elif isinstance(resource, MCPConnection):
            names.update(ref.name for _, ref in connection_secret_refs(resource.spec))
    return names


@dataclass(frozen=True)
class Selection:
    """The resources one pass hands the engine: its targets and everything they reference."""

    targets: tuple[Resource, ...]
    resources: tuple[Resource, ...]


def select(targets: Iterable[Resource], peers: Iterable[Mapping[str, Any]]) -> Selection:
    """Targets plus the transitive closure of their references among `peers` (bodies of the same namespace).

    A referenced object that is missing, or whose spec does not parse, is left out: the engine then reports
    the reference as missing, which is what the target's author needs to fix or wait for. Runs once per pass over
    a namespace's every object, so a server that references nothing costs one look at each peer's kind, not a key
    built per peer (that made a burst of passes quadratic in the namespace's size).
    """
    chosen = tuple(targets)
    bodies = list(peers)
    connections = [body for body in bodies if body.get("kind") == "MCPConnection"]
    by_key: dict[tuple[str, str, str], Mapping[str, Any]] | None = None
    included: dict[tuple[str, str, str], Resource] = {
        (r.kind, r.metadata.namespace, r.metadata.name): r for r in chosen
    }
    queue = list(chosen)
    while queue:
        resource = queue.pop()
        wanted = [*references_of(resource), *_discovery_connections(resource, connections)]
        if wanted and by_key is None:
            by_key = {}
            for body in bodies:
                source = source_of(body)
                by_key[(source.kind, source.namespace, source.name)] = body
        for kind, name in wanted:
            key = (kind, resource.metadata.namespace, name)
            if key in included or by_key is None or key not in by_key:
                continue
            try:
                referenced = parse_resource(by_key[key])
            except InvalidInput:
                continue
            included[key] = referenced
            queue.append(referenced)
    return Selection(targets=chosen, resources=tuple(included.values()))


def _discovery_connections(resource: Resource, connections: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """A server's pass needs the connections marked `useForDiscovery` for it (they point at the server, not the
    other way round): the engine picks its discovery credential from them."""
    if not isinstance(resource, MCPServer):
        return []
    namespace, name = resource.metadata.namespace, resource.metadata.name
    found = []
    for body in connections:
        metadata = body.get("metadata") or {}
        spec = body.get("spec")
        if (
            metadata.get("namespace") == namespace
            and isinstance(spec, Mapping)
            and spec.get("serverRef") == name
            and spec.get("useForDiscovery") is True
        ):
            found.append(("MCPConnection", str(metadata.get("name"))))
    return found


def build_input(
    resources: Iterable[Resource],
    *,
    tenants: Iterable[Tenant],
    secrets: Mapping[tuple[str, str], Mapping[str, str]],
) -> DesiredInput:
    """The engine's input for the namespaces of one batch: resources, their tenants, and the Secret values they
    read by (namespace, name)."""
    return DesiredInput(
        resources=list(resources),
        tenants={tenant.namespace: tenant for tenant in tenants},
        secrets=StaticSecrets(values={key: dict(data) for key, data in secrets.items()}),
    )


def index_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator's object index keeps per object: the slim body plus its status and deletion mark (for
    Secret-triggered and periodic passes, which start from the index rather than from a watch event). kopf's own
    annotations are left out: no pass reads them, and its last-handled configuration is a second copy of the spec."""
    entry = slim_body(body)
    annotations = entry["metadata"].get("annotations")
    if annotations and any(key.startswith(_KOPF_ANNOTATIONS) for key in annotations):
        entry["metadata"]["annotations"] = {
            key: value for key, value in annotations.items() if not key.startswith(_KOPF_ANNOTATIONS)
        }
    deleting = (body.get("metadata") or {}).get("deletionTimestamp")
    if deleting:
        entry["metadata"]["deletionTimestamp"] = deleting
    status = body.get("status")
    if isinstance(status, Mapping) and status:
        entry["status"] = dict(status)
    return entry


def secret_users(body: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(namespace, Secret name) → (kind, name) for each Secret the object reads; empty when it does not parse."""
    try:
        resource = parse_resource(body)
    except InvalidInput:
        return {}
    namespace = resource.metadata.namespace
    return {(namespace, name): (resource.kind, resource.metadata.name) for name in secret_names([resource])}
