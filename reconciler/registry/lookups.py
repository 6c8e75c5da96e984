"""The runtime's read path: everything one resolution needs, in a fixed number of indexed queries.

Called through `Registry.find_tenant` / `Registry.fetch_resolution_inputs` by `reconciler.runtime` (the
resolution API, the CLI `resolve` command and the agent-facing MCP endpoint). An agent runtime resolves on
every invocation, so the cost here must not grow with the size of the registry or of the template: one query
for the tenant, one for the bound servers (with probe state and the latest tool snapshot joined in), one for
their connections, one for the grants naming the caller, and one for the caller's own tokens. The queries
select by the template's server ids through a subquery rather than an id list, so the statement text and
count stay the same whatever the template holds. Only what the decision needs is returned; choosing, never.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from reconciler.registry import conversion, schema
from reconciler.registry.records import (
    ConnectionRecord,
    GrantSubjectRecord,
    ServerRecord,
    TenantRecord,
    UserTokenRecord,
)

__all__ = [
    "BoundServerRow",
    "GrantMatch",
    "ResolutionInputs",
    "read_resolution_inputs",
    "read_tenant",
]


@dataclass(frozen=True)
class BoundServerRow:
    """A server as one template binding offers it, with the probe facts that can block it.

    `binding` is None when no template was asked for (every server of the tenant is offered). The pinned
    connection's own server is reported so a hand-made row pinning another server's connection is caught.
    """

    server: ServerRecord
    binding: str | None = None
    pinned_connection: str | None = None
    pinned_connection_server: str | None = None
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    blocked_reason: str | None = None
    discovery: Mapping[str, Any] | None = None
    snapshot_hash: str | None = None
    tool_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class GrantMatch:
    """One subject of one grant that names the caller (their member id, a team of theirs, or the organization)."""

    grant: str
    subject: GrantSubjectRecord
    target_server: str | None = None
    target_connection: str | None = None


@dataclass(frozen=True)
class ResolutionInputs:
    """The rows one resolution decides from: bound servers in binding order, and only the grants and tokens
    that concern the caller. `connections` holds every connection of those servers, active or not, so the
    decision can say what it skipped."""

    tenant: TenantRecord
    bound: tuple[BoundServerRow, ...] = ()
    connections: tuple[ConnectionRecord, ...] = ()
    grants: tuple[GrantMatch, ...] = ()
    tokens: tuple[UserTokenRecord, ...] = ()
    bindings: tuple[str, ...] = field(default=())
    """Names of the bindings found for the template (empty without a template)."""


def read_tenant(connection: sa.Connection, slug_or_namespace: str) -> tuple[int, TenantRecord] | None:
    """The tenant with this slug, else the one living in this namespace: (row id, record)."""
    table = schema.tenants
    query = (
        sa.select(table.c.id, table.c.slug, table.c.namespace)
        .where(sa.or_(table.c.slug == slug_or_namespace, table.c.namespace == slug_or_namespace))
        .order_by(sa.case((table.c.slug == slug_or_namespace, 0), else_=1), table.c.id)
        .limit(1)
    )
    row = connection.execute(query).first()
    if row is None:
        return None
    return int(row.id), TenantRecord(slug=row.slug, namespace=row.namespace)


def read_resolution_inputs(
    connection: sa.Connection,
    slug_or_namespace: str,
    *,
    template: str | None,
    user: str | None,
    teams: Collection[str],
) -> ResolutionInputs | None:
    """Everything `reconciler.runtime` needs to resolve one invocation; None when the tenant does not exist.

    Four queries (five with a user) whatever the number of servers, connections or grants involved.
    """
    found = read_tenant(connection, slug_or_namespace)
    if found is None:
        return None
    tenant_id, tenant = found
    offered = _offered_server_ids(tenant_id, template)
    bound, bindings = _read_bound(connection, tenant_id, tenant.slug, template)
    server_names = {row.server.row_id: row.server.name for row in bound}
    connection_rows = _read_connections(connection, offered, tenant.slug)
    connection_names = {record.row_id: record.name for record in connection_rows}
    grants = _read_grants(
        connection, tenant_id, offered, user=user, teams=teams, server_names=server_names, connections=connection_names
    )
    tokens = (
        _read_tokens(connection, offered, tenant.slug, user, server_names=server_names, connections=connection_names)
        if user is not None
        else ()
    )
    return ResolutionInputs(
        tenant=tenant,
        bound=bound,
        connections=connection_rows,
        grants=grants,
        tokens=tokens,
        bindings=bindings,
    )


def _offered_server_ids(tenant_id: int, template: str | None) -> sa.Select[tuple[int]]:
    """Ids of the servers a template offers (every server of the tenant without a template), as a subquery."""
    if template is None:
        return sa.select(schema.servers.c.id).where(schema.servers.c.tenant_id == tenant_id)
    bound = schema.template_binding_servers
    bindings = schema.template_bindings
    return (
        sa.select(bound.c.server_id)
        .join(bindings, bindings.c.id == bound.c.binding_id)
        .where(bindings.c.tenant_id == tenant_id, bindings.c.template == template)
    )


def _read_bound(
    connection: sa.Connection, tenant_id: int, tenant: str, template: str | None
) -> tuple[tuple[BoundServerRow, ...], tuple[str, ...]]:
    servers = schema.servers
    probe_state = schema.server_probe_state
    snapshots = schema.tool_snapshots
    latest = snapshots.alias("latest_snapshot")
    discovery_connection = schema.connections.alias("discovery_connection")
    latest_id = (
        sa.select(snapshots.c.id)
        .where(snapshots.c.server_id == servers.c.id)
        .order_by(snapshots.c.taken_at.desc(), snapshots.c.id.desc())
        .limit(1)
        .correlate(servers)
        .scalar_subquery()
    )
    facts: list[sa.ColumnElement[Any]] = [
        probe_state.c.blocked_reason.label("probe_blocked_reason"),
        probe_state.c.discovery.label("probe_discovery"),
        latest.c.hash.label("snapshot_hash"),
        latest.c.tools.label("snapshot_tools"),
        discovery_connection.c.name.label("discovery_connection_name"),
    ]

    def with_facts(query: sa.Select[Any]) -> sa.Select[Any]:
        return (
            query.outerjoin(probe_state, probe_state.c.server_id == servers.c.id)
            .outerjoin(latest, latest.c.id == latest_id)
            .outerjoin(discovery_connection, discovery_connection.c.id == servers.c.discovery_connection_id)
        )

    if template is None:
        query = with_facts(sa.select(servers, *facts).where(servers.c.tenant_id == tenant_id)).order_by(servers.c.name)
    else:
        bound = schema.template_binding_servers
        bindings = schema.template_bindings
        pinned = schema.connections.alias("pinned_connection")
        pinned_server = servers.alias("pinned_server")
        query = with_facts(
            sa.select(
                servers,
                *facts,
                bindings.c.name.label("binding_name"),
                bound.c.tools_allow.label("bound_tools_allow"),
                bound.c.tools_deny.label("bound_tools_deny"),
                pinned.c.name.label("pinned_connection_name"),
                pinned_server.c.name.label("pinned_connection_server"),
            )
            .select_from(bound)
            .join(bindings, bindings.c.id == bound.c.binding_id)
            .join(servers, servers.c.id == bound.c.server_id)
            .outerjoin(pinned, pinned.c.id == bound.c.connection_id)
            .outerjoin(pinned_server, pinned_server.c.id == pinned.c.server_id)
            .where(bindings.c.tenant_id == tenant_id, bindings.c.template == template)
        ).order_by(bindings.c.name, bound.c.position, bound.c.id)
    rows = connection.execute(query).mappings().all()
    result = tuple(_bound_row(row, tenant=tenant, template=template) for row in rows)
    binding_names = tuple(dict.fromkeys(row.binding for row in result if row.binding is not None))
    return result, binding_names


def _bound_row(row: sa.RowMapping, *, tenant: str, template: str | None) -> BoundServerRow:
    server = conversion.server_of(row, tenant=tenant, discovery_connection=row["discovery_connection_name"])
    tools = conversion.tools_of(row["snapshot_tools"]) if row["snapshot_tools"] is not None else ()
    common: dict[str, Any] = {
        "server": server,
        "blocked_reason": row["probe_blocked_reason"],
        "discovery": row["probe_discovery"],
        "snapshot_hash": row["snapshot_hash"],
        "tool_names": tuple(tool.name for tool in tools),
    }
    if template is None:
        return BoundServerRow(**common)
    return BoundServerRow(
        **common,
        binding=row["binding_name"],
        pinned_connection=row["pinned_connection_name"],
        pinned_connection_server=row["pinned_connection_server"],
        tools_allow=conversion.strings_of(row["bound_tools_allow"]),
        tools_deny=conversion.strings_of(row["bound_tools_deny"]),
    )


def _read_connections(
    connection: sa.Connection, offered: sa.Select[tuple[int]], tenant: str
) -> tuple[ConnectionRecord, ...]:
    connections = schema.connections
    query = (
        sa.select(connections, schema.servers.c.name.label("server_name"))
        .join(schema.servers, schema.servers.c.id == connections.c.server_id)
        .where(connections.c.server_id.in_(offered))
        .order_by(connections.c.id)
    )
    return tuple(
        conversion.connection_of(row, tenant=tenant, server=row["server_name"])
        for row in connection.execute(query).mappings()
    )


def _read_grants(
    connection: sa.Connection,
    tenant_id: int,
    offered: sa.Select[tuple[int]],
    *,
    user: str | None,
    teams: Collection[str],
    server_names: Mapping[int | None, str],
    connections: Mapping[int | None, str],
) -> tuple[GrantMatch, ...]:
    grants = schema.access_grants
    subjects = schema.access_grant_subjects
    names_caller: list[sa.ColumnElement[bool]] = [subjects.c.kind == "Organization"]
    if user is not None:
        names_caller.append(sa.and_(subjects.c.kind == "Member", subjects.c.name == user))
    if teams:
        names_caller.append(sa.and_(subjects.c.kind == "Team", subjects.c.name.in_(sorted(set(teams)))))
    columns = (
        grants.c.name,
        grants.c.target_server_id,
        grants.c.target_connection_id,
        subjects.c.kind.label("subject_kind"),
        subjects.c.name.label("subject_name"),
        subjects.c.position,
    )

    def naming_caller(target: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return (
            sa.select(*columns)
            .join(subjects, subjects.c.grant_id == grants.c.id)
            .where(grants.c.tenant_id == tenant_id, target, sa.or_(*names_caller))
        )

    offered_connections = sa.select(schema.connections.c.id).where(schema.connections.c.server_id.in_(offered))
    # Two arms rather than one OR, so each is answered from its own target index.
    query = sa.union_all(
        naming_caller(grants.c.target_server_id.in_(offered)),
        naming_caller(grants.c.target_connection_id.in_(offered_connections)),
    )
    ordered = sa.select(query.subquery()).order_by(sa.text("name"), sa.text("position"))
    return tuple(
        GrantMatch(
            grant=row["name"],
            subject=GrantSubjectRecord(kind=row["subject_kind"], name=row["subject_name"]),
            target_server=server_names.get(row["target_server_id"]),
            target_connection=connections.get(row["target_connection_id"]),
        )
        for row in connection.execute(ordered).mappings()
    )


def _read_tokens(
    connection: sa.Connection,
    offered: sa.Select[tuple[int]],
    tenant: str,
    user: str,
    *,
    server_names: Mapping[int | None, str],
    connections: Mapping[int | None, str],
) -> tuple[UserTokenRecord, ...]:
    tokens = schema.user_tokens
    query = sa.select(tokens).where(tokens.c.user_id == user, tokens.c.server_id.in_(offered)).order_by(tokens.c.id)
    found: list[UserTokenRecord] = []
    for row in connection.execute(query).mappings():
        server = server_names.get(row["server_id"])
        if server is None:
            continue
        found.append(
            conversion.user_token_of(
                row, tenant=tenant, server=server, connection=_name_or_none(connections, row["connection_id"])
            )
        )
    return tuple(found)


def _name_or_none(names: Mapping[int | None, str], row_id: int | None) -> str | None:
    return None if row_id is None else names.get(row_id)
