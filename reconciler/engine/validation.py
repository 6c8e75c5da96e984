"""Cross-object checks the models cannot do alone: references resolve, tenants do not collide, a server has at
most one connection marked for discovery, and a shared connection to a server that wants a credential carries one.

Called by the reconcile loop and by `mcp-reconciler validate` after loading and before planning. The checks
return problems instead of raising, and `validate` raises them together, so all of them reach the user at once.
Kept free of the registry store and the probe so that validating a folder stays light.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.api import MCPAccessGrant, MCPConnection, MCPServer, MCPTemplateBinding, Resource
from reconciler.engine.inputs import DesiredInput
from reconciler.errors import InvalidInput, MissingReference, Problem


def check_references(desired: DesiredInput) -> list[Problem]:
    """Every serverRef/connectionRef names an object of the right kind in the same namespace."""
    servers = {(r.metadata.namespace, r.metadata.name) for r in desired.resources if isinstance(r, MCPServer)}
    connections = {
        (r.metadata.namespace, r.metadata.name): r.spec.server_ref
        for r in desired.resources
        if isinstance(r, MCPConnection)
    }
    problems: list[Problem] = []

    def problem(resource: Resource, field: str, message: str) -> None:
        location = desired.location_of(resource.kind, resource.metadata.namespace, resource.metadata.name)
        problems.append(
            Problem(
                message,
                file=location.file,
                line=location.line,
                kind=resource.kind,
                namespace=resource.metadata.namespace,
                name=resource.metadata.name,
                field=field,
            )
        )

    def need_server(resource: Resource, field: str, name: str) -> None:
        if (resource.metadata.namespace, name) not in servers:
            problem(resource, field, f"MCPServer {name!r} does not exist in namespace {resource.metadata.namespace}")

    def need_connection(resource: Resource, field: str, name: str, *, server: str | None = None) -> None:
        owner = connections.get((resource.metadata.namespace, name))
        if owner is None:
            problem(
                resource, field, f"MCPConnection {name!r} does not exist in namespace {resource.metadata.namespace}"
            )
        elif server is not None and owner != server:
            problem(resource, field, f"MCPConnection {name!r} belongs to server {owner!r}, not {server!r}")

    for resource in desired.resources:
        if isinstance(resource, MCPServer):
            ref = resource.spec.discovery.connection_ref
            if ref is not None:
                need_connection(resource, "spec.discovery.connectionRef", ref, server=resource.metadata.name)
        elif isinstance(resource, MCPConnection):
            need_server(resource, "spec.serverRef", resource.spec.server_ref)
        elif isinstance(resource, MCPAccessGrant):
            target = resource.spec.target
            if target.server_ref is not None:
                need_server(resource, "spec.target.serverRef", target.server_ref)
            if target.connection_ref is not None:
                need_connection(resource, "spec.target.connectionRef", target.connection_ref)
        elif isinstance(resource, MCPTemplateBinding):
            for index, bound in enumerate(resource.spec.servers):
                need_server(resource, f"spec.servers[{index}].serverRef", bound.server_ref)
                if bound.connection_ref is not None:
                    need_connection(
                        resource, f"spec.servers[{index}].connectionRef", bound.connection_ref, server=bound.server_ref
                    )
    return problems


def check_tenant_collisions(desired: DesiredInput) -> list[Problem]:
    """Two namespaces may share a tenant slug, but not an object name within one kind."""
    seen: dict[tuple[str, str, str], str] = {}
    problems: list[Problem] = []
    for resource in desired.resources:
        slug = desired.tenant_for(resource.metadata.namespace).slug
        key = (resource.kind, slug, resource.metadata.name)
        other = seen.get(key)
        if other is not None and other != resource.metadata.namespace:
            location = desired.location_of(resource.kind, resource.metadata.namespace, resource.metadata.name)
            problems.append(
                Problem(
                    f"namespaces {other} and {resource.metadata.namespace} both map to tenant {slug!r} and both "
                    f"declare {resource.kind} {resource.metadata.name!r}",
                    file=location.file,
                    line=location.line,
                    kind=resource.kind,
                    namespace=resource.metadata.namespace,
                    name=resource.metadata.name,
                    field="metadata.name",
                )
            )
        seen.setdefault(key, resource.metadata.namespace)
    return problems


def discovery_candidates(resources: Iterable[Resource]) -> dict[tuple[str, str], list[MCPConnection]]:
    """Active connections marked `useForDiscovery`, by (namespace, server name), in input order."""
    found: dict[tuple[str, str], list[MCPConnection]] = {}
    for resource in resources:
        if isinstance(resource, MCPConnection) and resource.spec.use_for_discovery and resource.spec.active:
            found.setdefault((resource.metadata.namespace, resource.spec.server_ref), []).append(resource)
    return found


def check_discovery_candidates(desired: DesiredInput) -> list[Problem]:
    """A server without `spec.discovery.connectionRef` takes the one connection marked `useForDiscovery`; two of
    them leave the choice ambiguous, which is an error on the second (the server's connectionRef settles it)."""
    chosen = {
        (r.metadata.namespace, r.metadata.name)
        for r in desired.resources
        if isinstance(r, MCPServer) and r.spec.discovery.connection_ref is not None
    }
    problems: list[Problem] = []
    for (namespace, server), connections in discovery_candidates(desired.resources).items():
        if len(connections) < 2 or (namespace, server) in chosen:
            continue
        names = ", ".join(c.metadata.name for c in connections)
        for extra in connections[1:]:
            location = desired.location_of(extra.kind, namespace, extra.metadata.name)
            problems.append(
                Problem(
                    f"MCPConnections {names} all set useForDiscovery for server {server!r}: keep it on one, or "
                    f"choose one with the server's spec.discovery.connectionRef",
                    file=location.file,
                    line=location.line,
                    kind=extra.kind,
                    namespace=namespace,
                    name=extra.metadata.name,
                    field="spec.useForDiscovery",
                )
            )
    return problems


def check_shared_credentials(desired: DesiredInput) -> list[Problem]:
    """A `shared` connection to a server whose auth is not `none` must hold a credential.

    Without one, resolution would hand agents the server as `ready` with no Authorization header at all; the
    platforms refuse such a connection when it is saved ("OAuth2 connections require a connected service").
    A header taken from a Secret counts as a credential; `perMember` connections hold none by design.
    """
    auth_types = {
        (r.metadata.namespace, r.metadata.name): r.spec.auth.type for r in desired.resources if isinstance(r, MCPServer)
    }
    problems: list[Problem] = []
    for resource in desired.resources:
        if not isinstance(resource, MCPConnection):
            continue
        spec = resource.spec
        auth_type = auth_types.get((resource.metadata.namespace, spec.server_ref))
        if spec.credential_mode != "shared" or auth_type in (None, "none") or spec.auth is not None:
            continue
        if any(header.value_from is not None for header in spec.headers):
            continue
        location = desired.location_of(resource.kind, resource.metadata.namespace, resource.metadata.name)
        per_member = auth_type == "oauthAuthorizationCode"
        hint = " (or credentialMode: perMember, for each member's own account)" if per_member else ""
        problems.append(
            Problem(
                f"a shared connection to server {spec.server_ref!r} (auth type {auth_type}) needs a credential: "
                f"set auth.secretKeyRef{hint}",
                file=location.file,
                line=location.line,
                kind=resource.kind,
                namespace=resource.metadata.namespace,
                name=resource.metadata.name,
                field="spec.auth",
            )
        )
    return problems


def validate(desired: DesiredInput) -> None:
    """Raise MissingReference / InvalidInput for cross-object problems."""
    missing = check_references(desired)
    if missing:
        raise MissingReference(missing)
    problems = (
        check_tenant_collisions(desired) + check_discovery_candidates(desired) + check_shared_credentials(desired)
    )
    if problems:
        raise InvalidInput(problems)
