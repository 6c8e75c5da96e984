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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import conversion, schema
from reconciler.registry.connecting import load_json
from reconciler.registry.records import (
    ConnectionRecord,
    GrantSubjectRecord,
    HeaderRecord,
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
    with_template = template is not None
    statements = _statements(with_template=with_template)
    params: dict[str, Any] = {"tenant_id": tenant_id, "template": template}
    bound = tuple(
        _bound_row(row, tenant=tenant.slug, with_template=with_template)
        for row in connection.execute(statements.bound, params)
    )
    server_names: dict[int | None, str] = {row.server.row_id: row.server.name for row in bound}
    # Server names come from the bound rows rather than a join: the same servers, and no join for the planner
    # to answer by scanning every server. A row whose server is not among them can only be one committed
    # between the two statements, and is skipped like such a token below.
    connection_rows = tuple(
        _offered_connection(row, tenant=tenant.slug, server=server_names[row[2]])
        for row in connection.execute(statements.connections, params)
        if row[2] in server_names
    )
    connection_names: dict[int | None, str] = {record.row_id: record.name for record in connection_rows}
    grant_rows = connection.execute(statements.grants, {**params, "user": user, "teams": sorted(set(teams))})
    grants = tuple(
        GrantMatch(
            grant=name,
            subject=GrantSubjectRecord(kind=subject_kind, name=subject_name),
            target_server=server_names.get(target_server_id),
            target_connection=connection_names.get(target_connection_id),
        )
        for name, target_server_id, target_connection_id, subject_kind, subject_name, _position in grant_rows
    )
    # The caller's tokens and the organization's (an organization-level connection serves members without one).
    tokens = tuple(
        _caller_token(row, tenant=tenant.slug, server=server_names[row[1]], connection_names=connection_names)
        for row in connection.execute(statements.tokens, {**params, "user": user or ORGANIZATION_MEMBER})
        if row[1] in server_names
    )
    return ResolutionInputs(
        tenant=tenant,
        bound=bound,
        connections=connection_rows,
        grants=grants,
        tokens=tokens,
        bindings=tuple(dict.fromkeys(row.binding for row in bound if row.binding is not None)),
    )


# Rows are read by position (`_bound_query`, `_connections_query` and `_tokens_query` fix the order), not as
# mappings: a resolve builds a few dozen records from them, and by name each field costs a lookup. JSON columns
# arrive as text (`_as_text`) and are decoded here, once, with the registry's own decoder: most hold `[]`, which
# needs no decoder at all.


def _json(text: str | None) -> Any:
    return None if text is None else load_json(text)


def _strings(text: str | None) -> tuple[str, ...]:
    return () if text is None or text == "[]" else conversion.strings_of(load_json(text))


def _headers(text: str | None) -> tuple[HeaderRecord, ...]:
    return () if text is None or text == "[]" else conversion.headers_of(load_json(text))


def _auth(text: str | None) -> dict[str, Any]:
    auth = _json(text)
    return auth if auth is not None else {}


def _bound_row(row: Sequence[Any], *, tenant: str, with_template: bool) -> BoundServerRow:
    (
        row_id,
        name,
        display_name,
        description,
        url,
        transport,
        enabled,
        featured,
        headers,
        auth_type,
        auth,
        owner_kind,
        owner_name,
        tool_policy,
        approved_hash,
        tools_allow,
        tools_deny,
        allow_private,
        discovery_enabled,
        discovery_interval_seconds,
        blocked_reason,
        tool_risk,
        snapshot_hash,
        snapshot_tools,
        discovery_connection_name,
    ) = row[:_SERVER_FACTS]
    server = ServerRecord(
        tenant=tenant,
        name=name,
        row_id=row_id,
        display_name=display_name,
        description=description,
        url=url,
        transport=transport,
        enabled=enabled,
        featured=featured,
        headers=_headers(headers),
        auth_type=auth_type,
        auth=_auth(auth),
        owner_kind=owner_kind,
        owner_name=owner_name,
        tool_policy=tool_policy,
        approved_hash=approved_hash,
        tools_allow=_strings(tools_allow),
        tools_deny=_strings(tools_deny),
        allow_private=allow_private,
        discovery_enabled=discovery_enabled,
        discovery_interval_seconds=discovery_interval_seconds,
        discovery_connection=discovery_connection_name,
    )
    # Only names and hints: full tool records (schemas and all) are for `fetch_tool_snapshots`, not every resolve.
    tools = _json(snapshot_tools) or ()
    tool_names = tuple(item["name"] for item in tools)
    read_only_tools = frozenset(item["name"] for item in tools if _says_read_only(item))
    if not with_template:
        return BoundServerRow(
            server=server,
            blocked_reason=blocked_reason,
            snapshot_hash=snapshot_hash,
            tool_names=tool_names,
            read_only_tools=read_only_tools,
            tool_risk=_strings(tool_risk),
        )
    (
        binding_name,
        binding_agents,
        bound_tools_allow,
        bound_tools_deny,
        bound_tools_read_only,
        pinned_connection_name,
        pinned_connection_server,
    ) = row[_SERVER_FACTS:]
    return BoundServerRow(
        server=server,
        binding=binding_name,
        binding_agents=_strings(binding_agents),
        pinned_connection=pinned_connection_name,
        pinned_connection_server=pinned_connection_server,
        tools_allow=_strings(bound_tools_allow),
        tools_deny=_strings(bound_tools_deny),
        tools_read_only=bool(bound_tools_read_only),
        blocked_reason=blocked_reason,
        snapshot_hash=snapshot_hash,
        tool_names=tool_names,
        read_only_tools=read_only_tools,
        tool_risk=_strings(tool_risk),
    )


def _says_read_only(tool: dict[str, Any]) -> bool:
    """`readOnlyHint: true` in a stored tool (`ToolAnnotationHints.as_json`'s shape), read without building it."""
    annotations = tool.get("annotations")
    return isinstance(annotations, dict) and annotations.get("readOnlyHint") is True


def _offered_connection(row: Sequence[Any], *, tenant: str, server: str) -> ConnectionRecord:
    (
        row_id,
        name,
        _server_id,
        scope,
        subject,
        credential_mode,
        secret_ref,
        fingerprint,
        authorization_scheme,
        headers,
        active,
        use_for_discovery,
        member_headers,
    ) = row
    return ConnectionRecord(
        tenant=tenant,
        name=name,
        row_id=row_id,
        server=server,
        scope=scope,
        subject=subject,
        credential_mode=credential_mode,
        secret_ref=secret_ref,
        fingerprint=fingerprint,
        authorization_scheme=authorization_scheme,
        headers=_headers(headers),
        active=active,
        use_for_discovery=use_for_discovery,
        member_headers=()
        if member_headers is None or member_headers == "[]"
        else conversion.member_headers_of(load_json(member_headers)),
    )


def _caller_token(
    row: Sequence[Any], *, tenant: str, server: str, connection_names: dict[int | None, str]
) -> UserTokenRecord:
    (
        row_id,
        _server_id,
        connection_id,
        user_id,
        secret_ref,
        value_keys,
        refresh_token_ref,
        issued_at,
        client_id,
        issuer,
        scopes,
        refresh_lease_until,
        expires_at,
    ) = row
    return UserTokenRecord(
        tenant=tenant,
        server=server,
        user_id=user_id,
        secret_ref=secret_ref,
        connection=None if connection_id is None else connection_names.get(connection_id),
        expires_at=expires_at,
        row_id=row_id,
        value_keys=_strings(value_keys),
        refresh_token_ref=refresh_token_ref,
        issued_at=issued_at,
        client_id=client_id,
        issuer=issuer,
        scopes=_strings(scopes),
        refresh_lease_until=refresh_lease_until,
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
_SERVER_FACTS = len(_SERVER_COLUMNS) + 5
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
