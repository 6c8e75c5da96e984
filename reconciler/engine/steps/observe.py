"""The observe step: the pass's inputs, read once. Called first by `reconciling.plan_pass`.

It validates and renders the desired objects, lets the scope narrow the pass (the CLI's fast path may end it here),
and then reads, once each, what every later step works from: the rows of the tenants the scope reads, their probe
states, the tool snapshots of the servers in the pass, and the statuses the sink kept. Registry reads only, except
that a fresh registry creates its fingerprint key on first use (after the input is proven valid).
"""

from __future__ import annotations

import datetime as dt
import os

from reconciler.api.server import OAuthHealth
from reconciler.engine.desired import DesiredObject, build_desired
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.statuses import oauth
from reconciler.engine.statuses.oauth import MEMBER_AUTHORIZED
from reconciler.engine.steps.passing import Pass
from reconciler.engine.validation import validate
from reconciler.registry import Registry
from reconciler.registry.records import FINGERPRINT_KEY_BYTES, ConnectionRecord, ObservedState, ServerRecord, SourceRef


def observe(current: Pass, registry: Registry) -> None:
    first = _first_rows(current, registry) if registry.stored_fingerprint_key() is None else None
    current.scope.narrow(current, registry)
    if current.done:
        return
    everything = (
        first if first is not None else desired_objects(current.desired, registry, manager=current.settings.manager)
    )
    current.objects, current.read_tenants = current.scope.select(everything, tenants=current.read_tenants)
    selection = current.scope.rows(everything)
    current.observed = registry.fetch_state(tenants=current.read_tenants, only=selection)
    current.written = current.objects + discovery_companions(current.objects, everything, current.observed)
    # A narrowed pass needs the probe states of the servers it read (its own and those it references) only.
    read_servers = None if selection is None else {key[1:] for key in current.observed.rows if key[0] == "servers"}
    current.probe_states = dict(registry.fetch_probe_states(tenants=current.read_tenants, servers=read_servers))
    servers = {obj.key[1:] for obj in current.objects if obj.key[0] == "servers"}
    current.snapshots = {key: registry.fetch_tool_snapshots(*key) for key in current.probe_states if key in servers}
    current.oauth = member_oauth(current.objects, everything, registry, now=current.now)
    if any(oauth.counts_members(obj.record) for obj in current.objects):
        current.connected_members = registry.count_connected_members(tenants=current.read_tenants)
    current.sink.read(registry, tenants=current.read_tenants)


def member_oauth(
    targets: list[DesiredObject], everything: list[DesiredObject], registry: Registry, *, now: dt.datetime
) -> dict[tuple[str, str], OAuthHealth]:
    """`status.oauth` of the authorization-code servers among `targets`: their members' tokens tallied in one
    grouped query, and whether members are expected to connect, judged from every connection of the input."""
    servers = {
        obj.key[1:]: obj.record
        for obj in targets
        if isinstance(obj.record, ServerRecord) and obj.record.auth_type == MEMBER_AUTHORIZED
    }
    if not servers:
        return {}
    tallies = registry.tally_member_tokens(list(servers), now=now, horizon=oauth.horizon(now))
    connections = [obj.record for obj in everything if isinstance(obj.record, ConnectionRecord)]
    return {
        key: oauth.oauth_health(tallies.get(key), members_expected=oauth.expects_members(server, connections))
        for key, server in servers.items()
    }


def _first_rows(current: Pass, registry: Registry) -> list[DesiredObject] | None:
    """A fresh registry: the rows built with a key of our own, which becomes the registry's key.

    Creating the key is a write, so the input is proven valid first (bad input leaves the registry exactly as it
    was), and proving it means building every row. The rows are kept when our key is the one stored, so a cold
    apply builds them once; None when a concurrent creator's key won and they must be built again with it.
    """
    proposed = os.urandom(FINGERPRINT_KEY_BYTES)
    validate(current.desired)
    rows = build_desired(current.desired, fingerprint_key=proposed, manager=current.settings.manager)
    return rows if registry.fingerprint_key(proposed=proposed) == proposed else None


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
    if len(targets) == len(everything):  # the targets are drawn from everything: all of it is targeted
        return []
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
