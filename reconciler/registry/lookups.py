"""The runtime's read path: everything one resolution needs, in a fixed number of indexed queries.

Called through `Registry.find_tenant` / `Registry.fetch_resolution_inputs` by `reconciler.runtime` (the
resolution API, the CLI `resolve` command and the agent-facing MCP endpoint). An agent runtime resolves on
every invocation, so the cost here must not grow with the size of the registry or of the template: one query
for the tenant, one for the bound servers (with probe state and the latest tool snapshot joined in), one for
their connections, one for the grants naming the caller, and one for the caller's own tokens. The queries
select by the template's server ids through a subquery rather than an id list, so the statement text and
count stay the same whatever the template holds, and they are built once and reused with bind parameters.
Each is also shaped so that PostgreSQL answers it by index lookups from the offered servers, never by
scanning a whole table (`bench/resolve_bench.py` measures it; EXPLAIN findings are noted where they shaped a
query). Only what the decision needs is returned; choosing is `reconciler.runtime`'s job.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from reconciler.records import ORGANIZATION_MEMBER
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
    """Content columns and row id; ownership is not read (who manages a row does not change a resolution)."""
    binding: str | None = None
    binding_agents: tuple[str, ...] = ()
    """The agents the binding assigns the server to; empty: every agent of the template."""
    pinned_connection: str | None = None
    pinned_connection_server: str | None = None
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    tools_read_only: bool = False
    """The binding admits read-only tools only (honoured for pinned, approved servers; none from others)."""
    blocked_reason: str | None = None
    snapshot_hash: str | None = None
    tool_names: tuple[str, ...] = ()
    read_only_tools: frozenset[str] = frozenset()
    """Tools of the latest snapshot whose `readOnlyHint` is true."""
    tool_risk: tuple[str, ...] = ()
    """High-severity tool changes standing in the server's probe state (`ToolRiskChanged`)."""


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
    decision can say what it skipped (content columns and row id, like the servers)."""

    tenant: TenantRecord
    bound: tuple[BoundServerRow, ...] = ()
    connections: tuple[ConnectionRecord, ...] = ()
    grants: tuple[GrantMatch, ...] = ()
    tokens: tuple[UserTokenRecord, ...] = ()
    bindings: tuple[str, ...] = field(default=())
    """Names of the bindings found for the template (empty without a template)."""


def read_tenant(connection: sa.Connection, slug_or_namespace: str) -> tuple[int, TenantRecord] | None:
    """The tenant with this slug, else the one living in this namespace: (row id, record)."""
    row = connection.execute(_statements(with_template=False).tenant, {"tenant": slug_or_namespace}).first()
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
    statements = _statements(with_template=template is not None)
    params: dict[str, Any] = {"tenant_id": tenant_id, "template": template}
    bound = tuple(
        _bound_row(row, tenant=tenant.slug, with_template=template is not None)
        for row in connection.execute(statements.bound, params)
    )
    server_names: dict[int | None, str] = {row.server.row_id: row.server.name for row in bound}
    # Server names come from the bound rows rather than a join: the same servers, and no join for the planner
    # to answer by scanning every server. A row whose server is not among them can only be one committed
    # between the two statements, and is skipped like such a token below.
    connection_rows = tuple(
        _offered_connection(row, tenant=tenant.slug, server=server_names[row.server_id])
        for row in connection.execute(statements.connections, params)
        if row.server_id in server_names
    )
    connection_names: dict[int | None, str] = {record.row_id: record.name for record in connection_rows}
    grant_rows = connection.execute(statements.grants, {**params, "user": user, "teams": sorted(set(teams))})
    grants = tuple(
        GrantMatch(
            grant=row["name"],
            subject=GrantSubjectRecord(kind=row["subject_kind"], name=row["subject_name"]),
            target_server=server_names.get(row["target_server_id"]),
            target_connection=connection_names.get(row["target_connection_id"]),
        )
        for row in grant_rows.mappings()
    )
    # The caller's tokens and the organization's (an organization-level connection serves members without one).
    tokens = tuple(
        conversion.user_token_of(
            row,
            tenant=tenant.slug,
            server=server_names[row["server_id"]],
            connection=None if row["connection_id"] is None else connection_names.get(row["connection_id"]),
        )
        for row in connection.execute(statements.tokens, {**params, "user": user or ORGANIZATION_MEMBER}).mappings()
        if row["server_id"] in server_names
    )
    return ResolutionInputs(
        tenant=tenant,
        bound=bound,
        connections=connection_rows,
        grants=grants,
        tokens=tokens,
        bindings=tuple(dict.fromkeys(row.binding for row in bound if row.binding is not None)),
    )


def _bound_row(row: sa.Row[Any], *, tenant: str, with_template: bool) -> BoundServerRow:
    server = ServerRecord(
        tenant=tenant,
        name=row.name,
        row_id=row.id,
        display_name=row.display_name,
        description=row.description,
        url=row.url,
        transport=row.transport,
        enabled=row.enabled,
        featured=row.featured,
        headers=conversion.headers_of(row.headers),
        auth_type=row.auth_type,
        auth=row.auth if row.auth is not None else {},
        owner_kind=row.owner_kind,
        owner_name=row.owner_name,
        tool_policy=row.tool_policy,
        approved_hash=row.approved_hash,
        tools_allow=conversion.strings_of(row.tools_allow),
        tools_deny=conversion.strings_of(row.tools_deny),
        allow_private=row.allow_private,
        discovery_enabled=row.discovery_enabled,
        discovery_interval_seconds=row.discovery_interval_seconds,
        discovery_connection=row.discovery_connection_name,
    )
    # Only names and hints: full tool records (schemas and all) are for `fetch_tool_snapshots`, not every resolve.
    tools = row.snapshot_tools or ()
    tool_names = tuple(item["name"] for item in tools)
    read_only_tools = frozenset(item["name"] for item in tools if _says_read_only(item))
    tool_risk = conversion.strings_of(row.probe_tool_risk)
    if not with_template:
        return BoundServerRow(
            server=server,
            blocked_reason=row.probe_blocked_reason,
            snapshot_hash=row.snapshot_hash,
            tool_names=tool_names,
            read_only_tools=read_only_tools,
            tool_risk=tool_risk,
        )
    return BoundServerRow(
        server=server,
        binding=row.binding_name,
        binding_agents=conversion.strings_of(row.binding_agents),
        pinned_connection=row.pinned_connection_name,
        pinned_connection_server=row.pinned_connection_server,
        tools_allow=conversion.strings_of(row.bound_tools_allow),
        tools_deny=conversion.strings_of(row.bound_tools_deny),
        tools_read_only=bool(row.bound_tools_read_only),
        blocked_reason=row.probe_blocked_reason,
        snapshot_hash=row.snapshot_hash,
        tool_names=tool_names,
        read_only_tools=read_only_tools,
        tool_risk=tool_risk,
    )


def _says_read_only(tool: dict[str, Any]) -> bool:
    """`readOnlyHint: true` in a stored tool (`ToolAnnotationHints.as_json`'s shape), read without building it."""
    annotations = tool.get("annotations")
    return isinstance(annotations, dict) and annotations.get("readOnlyHint") is True


def _offered_connection(row: sa.Row[Any], *, tenant: str, server: str) -> ConnectionRecord:
    return ConnectionRecord(
        tenant=tenant,
        name=row.name,
        row_id=row.id,
        server=server,
        scope=row.scope,
        subject=row.subject,
        credential_mode=row.credential_mode,
        secret_ref=row.secret_ref,
        fingerprint=row.fingerprint,
        authorization_scheme=row.authorization_scheme,
        headers=conversion.headers_of(row.headers),
        active=row.active,
        use_for_discovery=row.use_for_discovery,
        member_headers=conversion.member_headers_of(row.member_headers),
    )


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
class _Statements:
    tenant: sa.Select[Any]
    bound: sa.Select[Any]
    connections: sa.Select[Any]
    grants: sa.Select[Any]
    tokens: sa.Select[Any]


@functools.cache
def _statements(*, with_template: bool) -> _Statements:
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
    return _Statements(
        tenant=tenant,
        bound=_bound_query(tenant_id, template if with_template else None),
        connections=_connections_query(tenant_id, offered),
        grants=_grants_query(tenant_id, offered, user=user, teams=teams),
        tokens=_tokens_query(tenant_id, offered, user=user),
    )


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
        *(servers.c[name] for name in _SERVER_COLUMNS),
        blocked_reason.label("probe_blocked_reason"),
        tool_risk.label("probe_tool_risk"),
        latest.c.hash.label("snapshot_hash"),
        latest.c.tools.label("snapshot_tools"),
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
            bindings.c.agents.label("binding_agents"),
            bound.c.tools_allow.label("bound_tools_allow"),
            bound.c.tools_deny.label("bound_tools_deny"),
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
        sa.select(*(connections.c[name] for name in _CONNECTION_COLUMNS))
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

    def naming_caller(query: sa.Select[Any], target: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return query.join(subjects, subjects.c.grant_id == grants.c.id).where(
            grants.c.tenant_id == tenant_id, target, names_caller
        )

    target_connection = schema.connections.alias("target_connection")
    # Two arms rather than one OR, so each is answered from its own target index. The connection arm joins the
    # target connection (one row per grant) within the tenant instead of testing `IN (connections of offered
    # servers)`: that nested semi-join made PostgreSQL hash every connection of the registry.
    both = sa.union_all(
        naming_caller(sa.select(*columns), grants.c.target_server_id.in_(offered)),
        naming_caller(
            sa.select(*columns).join(target_connection, target_connection.c.id == grants.c.target_connection_id),
            sa.and_(target_connection.c.tenant_id == tenant_id, target_connection.c.server_id.in_(offered)),
        ),
    ).subquery()
    return sa.select(both).order_by(both.c.name, both.c.position)


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
        tokens.c.value_keys,
        tokens.c.refresh_token_ref,
        tokens.c.issued_at,
        tokens.c.client_id,
        tokens.c.issuer,
        tokens.c.scopes,
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
