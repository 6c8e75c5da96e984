"""The runtime's resolution queries, built once with bind parameters; `lookups` runs them and reads their rows.

Each is shaped so that the database answers it by index lookups from the offered servers, never by scanning a
whole table, with the same statement text whatever the template holds (`bench/resolve_bench.py` measures it;
EXPLAIN findings are noted where they shaped a query). Row order is part of the contract: `lookups` reads
rows by position.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import schema

__all__ = ["SERVER_FACTS", "ResolutionStatements", "resolution_statements"]


_SERVER_COLUMNS = (
    "id",
    "name",
    "display_name",
    "description",
    "url",
    "transport",
    "enabled",
    "featured",
    "headers",
    "auth_type",
    "auth",
    "owner_kind",
    "owner_name",
    "tool_policy",
    "approved_hash",
    "tools_allow",
    "tools_deny",
    "allow_private",
    "discovery_enabled",
    "discovery_interval_seconds",
)
"""Content columns: ownership and timestamps are left out, as nothing in a resolution depends on them."""
SERVER_FACTS = len(_SERVER_COLUMNS) + 5
"""The server's columns in a bound row (`_bound_query`): its content columns, probe state, snapshot, discovery
connection; a template's binding columns follow."""
_CONNECTION_COLUMNS = (
    "id",
    "name",
    "server_id",
    "scope",
    "subject",
    "credential_mode",
    "secret_ref",
    "fingerprint",
    "authorization_scheme",
    "headers",
    "active",
    "use_for_discovery",
    "member_headers",
)


@dataclass(frozen=True)
class ResolutionStatements:
    tenant: sa.Select[Any]
    bound: sa.Select[Any]
    connections: sa.Select[Any]
    grants: sa.Select[Any]
    tokens: sa.Select[Any]


@functools.cache
def resolution_statements(*, with_template: bool) -> ResolutionStatements:
    """The resolution queries, built once with bind parameters.

    Building a Core statement (aliases, column proxies) costs milliseconds, far more than running these on
    indexed tables; built once, each execution is a compiled-cache hit. Parameters: `tenant`, `tenant_id`,
    `template`, `user`, `teams` (expanding; an empty list matches nothing).
    """
    tenants = schema.tenants
    tenant_param = sa.bindparam("tenant", type_=sa.Text())
    tenant = (
        sa.select(tenants.c.id, tenants.c.slug, tenants.c.namespace)
        .where(sa.or_(tenants.c.slug == tenant_param, tenants.c.namespace == tenant_param))
        .order_by(sa.case((tenants.c.slug == tenant_param, 0), else_=1), tenants.c.id)
        .limit(1)
    )
    tenant_id = sa.bindparam("tenant_id", type_=sa.Integer())
    template = sa.bindparam("template", type_=sa.Text())
    user = sa.bindparam("user", type_=sa.Text())
    teams = sa.bindparam("teams", type_=sa.Text(), expanding=True)
    offered = _offered_server_ids(tenant_id, template if with_template else None)
    return ResolutionStatements(
        tenant=tenant,
        bound=_bound_query(tenant_id, template if with_template else None),
        connections=_connections_query(tenant_id, offered),
        grants=_grants_query(tenant_id, offered, user=user, teams=teams),
        tokens=_tokens_query(tenant_id, offered, user=user),
    )


def _as_text(column: sa.ColumnElement[Any], *, label: str | None = None) -> sa.ColumnElement[Any]:
    """A JSON column as its stored text, for `_json` and friends to decode; any other column as it is.

    SQLAlchemy's JSON type (SQLite) or psycopg (PostgreSQL) would decode each value on its own, through layers
    that cost more than the decoding itself for the short lists most of these hold."""
    name = label if label is not None else column.name
    if isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text()).label(name)
    return column.label(name) if label is not None else column


def _offered_server_ids(
    tenant_id: sa.BindParameter[int], template: sa.BindParameter[str] | None
) -> sa.Select[tuple[int]]:
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


def _bound_query(tenant_id: sa.BindParameter[int], template: sa.BindParameter[str] | None) -> sa.Select[Any]:
    """Offered servers in binding order, each with its probe state, latest snapshot and pinned connection."""
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
    # A correlated lookup (server_id is unique there), not an outer join: joined, PostgreSQL hashes the whole
    # probe-state table once more than a few dozen servers are offered.
    blocked_reason = (
        sa.select(probe_state.c.blocked_reason)
        .where(probe_state.c.server_id == servers.c.id)
        .correlate(servers)
        .scalar_subquery()
    )
    tool_risk = (
        sa.select(probe_state.c.tool_risk)
        .where(probe_state.c.server_id == servers.c.id)
        .correlate(servers)
        .scalar_subquery()
    )
    facts: list[sa.ColumnElement[Any]] = [
        *(_as_text(servers.c[name]) for name in _SERVER_COLUMNS),
        blocked_reason.label("probe_blocked_reason"),
        _as_text(tool_risk, label="probe_tool_risk"),
        latest.c.hash.label("snapshot_hash"),
        _as_text(latest.c.tools, label="snapshot_tools"),
        discovery_connection.c.name.label("discovery_connection_name"),
    ]

    def with_facts(query: sa.Select[Any]) -> sa.Select[Any]:
        return query.outerjoin(latest, latest.c.id == latest_id).outerjoin(
            discovery_connection, discovery_connection.c.id == servers.c.discovery_connection_id
        )

    if template is None:
        return with_facts(sa.select(*facts).select_from(servers).where(servers.c.tenant_id == tenant_id)).order_by(
            servers.c.name
        )
    bound = schema.template_binding_servers
    bindings = schema.template_bindings
    pinned = schema.connections.alias("pinned_connection")
    pinned_server = servers.alias("pinned_server")
    return with_facts(
        sa.select(
            *facts,
            bindings.c.name.label("binding_name"),
            _as_text(bindings.c.agents, label="binding_agents"),
            _as_text(bound.c.tools_allow, label="bound_tools_allow"),
            _as_text(bound.c.tools_deny, label="bound_tools_deny"),
            bound.c.tools_read_only.label("bound_tools_read_only"),
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


def _connections_query(tenant_id: sa.BindParameter[int], offered: sa.Select[tuple[int]]) -> sa.Select[Any]:
    """Every connection of the offered servers. The tenant condition removes nothing (a connection lives in its
    server's tenant) but bounds the plan: by server alone, PostgreSQL hashes every connection of the registry."""
    connections = schema.connections
    return (
        sa.select(*(_as_text(connections.c[name]) for name in _CONNECTION_COLUMNS))
        .where(connections.c.tenant_id == tenant_id, connections.c.server_id.in_(offered))
        .order_by(connections.c.id)
    )


def _grants_query(
    tenant_id: sa.BindParameter[int],
    offered: sa.Select[tuple[int]],
    *,
    user: sa.BindParameter[str],
    teams: sa.BindParameter[str],
) -> sa.Select[Any]:
    """Subjects naming the caller, of grants on an offered server or on one of its connections."""
    grants = schema.access_grants
    subjects = schema.access_grant_subjects
    names_caller = sa.or_(
        subjects.c.kind == "Organization",
        sa.and_(subjects.c.kind == "Member", subjects.c.name == user),
        sa.and_(subjects.c.kind == "Team", subjects.c.name.in_(teams)),
    )
    columns = (
        grants.c.name,
        grants.c.target_server_id,
        grants.c.target_connection_id,
        subjects.c.kind.label("subject_kind"),
        subjects.c.name.label("subject_name"),
        subjects.c.position,
    )

    def naming_caller(
        query: sa.Select[Any], target: sa.ColumnElement[bool], *, grant_tenant: sa.ColumnElement[int]
    ) -> sa.Select[Any]:
        return query.join(subjects, subjects.c.grant_id == grants.c.id).where(
            grant_tenant == tenant_id, target, names_caller
        )

    target_connection = schema.connections.alias("target_connection")
    # Two arms rather than one OR, so each is answered from its own target index. The connection arm joins the
    # target connection (one row per grant) within the tenant instead of testing `IN (connections of offered
    # servers)`: that nested semi-join made PostgreSQL hash every connection of the registry.
    both = sa.union_all(
        naming_caller(sa.select(*columns), grants.c.target_server_id.in_(offered), grant_tenant=grants.c.tenant_id),
        # On SQLite the grant's tenant must not be looked up by index: offered the (tenant, name) index, its
        # planner walks every grant of the tenant (0.45 ms of a 0.9 ms resolve's SQL at 500 grants a tenant)
        # instead of going from the offered servers' connections to their grants by `target_connection_id`.
        naming_caller(
            sa.select(*columns).join(target_connection, target_connection.c.id == grants.c.target_connection_id),
            sa.and_(target_connection.c.tenant_id == tenant_id, target_connection.c.server_id.in_(offered)),
            grant_tenant=_NotIndexedOnSQLite(grants.c.tenant_id),
        ),
    ).subquery()
    return sa.select(both).order_by(both.c.name, both.c.position)


class _NotIndexedOnSQLite(sa.sql.expression.ColumnElement[int]):
    """A column SQLite's planner may not use an index for: written `+column` there (SQLite's documented way to
    disqualify a term from index use), as it is elsewhere. PostgreSQL plans from statistics and needs no hint."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[int]) -> None:
        self.column = column
        self.type = column.type


@compiles(_NotIndexedOnSQLite)
def _compile_indexed(element: _NotIndexedOnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_NotIndexedOnSQLite, "sqlite")
def _compile_not_indexed(element: _NotIndexedOnSQLite, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def _tokens_query(
    tenant_id: sa.BindParameter[int], offered: sa.Select[tuple[int]], *, user: sa.BindParameter[str]
) -> sa.Select[Any]:
    """The caller's tokens for offered servers, by (tenant, member): the index migration 0002 made for this.

    A token's tenant is its server's (`RegistryTransaction.insert_user_token` takes both from one tenant), so
    the tenant condition removes nothing; without it PostgreSQL walked that whole index for the member.
    """
    tokens = schema.user_tokens
    columns = (
        tokens.c.id,
        tokens.c.server_id,
        tokens.c.connection_id,
        tokens.c.user_id,
        tokens.c.secret_ref,
        _as_text(tokens.c.value_keys),
        tokens.c.refresh_token_ref,
        tokens.c.issued_at,
        tokens.c.client_id,
        tokens.c.issuer,
        _as_text(tokens.c.scopes),
        tokens.c.refresh_lease_until,
    )
    return (
        sa.select(*columns, tokens.c.expires_at)
        .where(
            tokens.c.tenant_id == tenant_id,
            tokens.c.user_id.in_([user, sa.literal(ORGANIZATION_MEMBER)]),
            tokens.c.server_id.in_(offered),
        )
        .order_by(tokens.c.id)
    )
