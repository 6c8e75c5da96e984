"""The observe step: the pass's inputs, read once. Called first by `reconciling.plan_pass`.

It validates and renders the desired objects, lets the scope narrow the pass (the CLI's fast path may end it here),
and then reads, once each, what every later step works from: the rows of the tenants the scope reads, their probe
states, the tool snapshots of the servers in the pass, and the statuses the sink kept. Registry reads only, except
that a fresh registry creates its fingerprint key on first use (after the input is proven valid).
"""

from __future__ import annotations

from reconciler.engine.desired import DesiredObject, build_desired, validate_rendered
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.steps.passing import Pass
from reconciler.engine.validation import validate
from reconciler.registry import Registry
from reconciler.registry.records import ConnectionRecord, ObservedState, ServerRecord, SourceRef


def observe(current: Pass, registry: Registry) -> None:
    if registry.stored_fingerprint_key() is None:
        # A fresh registry creates its fingerprint key on first use, which is a write: prove the input valid
        # first, so bad input leaves the registry exactly as it was.
        validate_rendered(current.desired, manager=current.settings.manager)
    current.scope.narrow(current, registry)
    if current.done:
        return
    everything = desired_objects(current.desired, registry, manager=current.settings.manager)
    current.objects, current.read_tenants = current.scope.select(everything, tenants=current.read_tenants)
    current.observed = registry.fetch_state(tenants=current.read_tenants)
    current.written = current.objects + discovery_companions(current.objects, everything, current.observed)
    current.probe_states = dict(registry.fetch_probe_states(tenants=current.read_tenants))
    servers = {obj.key[1:] for obj in current.objects if obj.key[0] == "servers"}
    current.snapshots = {key: registry.fetch_tool_snapshots(*key) for key in current.probe_states if key in servers}
    current.sink.read(registry, tenants=current.read_tenants)


def desired_objects(desired: DesiredInput, registry: Registry, *, manager: str) -> list[DesiredObject]:
    """The input validated and rendered into the rows it asks for (templates, secrets → references)."""
    validate(desired)
    return build_desired(desired, fingerprint_key=registry.fingerprint_key(), manager=manager)


def discovery_companions(
    targets: list[DesiredObject], everything: list[DesiredObject], observed: ObservedState
) -> list[DesiredObject]:
    """Pure: the objects a scoped pass must write beside its targets because they form a cycle with one.

    A server's discovery connection points at the server, and the server row names the connection: with
    neither registered, each one's own pass would wait for the other forever. So a pass over either writes both
    rows in one transaction (the registry links them in one insert); the companion's own pass then finds its
    row in step and writes its status. Only the targets' statuses come from this pass. A pass over everything
    has no companions: every object is a target already.
    """
    targeted = {obj.source for obj in targets}
    servers = {(obj.tenant.slug, obj.record.name): obj for obj in everything if isinstance(obj.record, ServerRecord)}
    connections = {
        (obj.tenant.slug, obj.record.name): obj for obj in everything if isinstance(obj.record, ConnectionRecord)
    }
    companions: dict[SourceRef, DesiredObject] = {}
    for obj in targets:
        record, tenant = obj.record, obj.tenant.slug
        companion = None
        if isinstance(record, ServerRecord) and record.discovery_connection is not None:
            connection = connections.get((tenant, record.discovery_connection))
            if connection is not None and observed.get(connection.key) is None:
                companion = connection
        elif isinstance(record, ConnectionRecord):
            server = servers.get((tenant, record.server))
            if (
                server is not None
                and observed.get(server.key) is None
                and isinstance(server.record, ServerRecord)
                and server.record.discovery_connection == record.name
            ):
                companion = server
        if companion is not None and companion.source not in targeted:
            companions[companion.source] = companion
    return list(companions.values())
