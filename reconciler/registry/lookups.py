"""The runtime's read path: everything one resolution needs, in a fixed number of indexed queries.

Called through `Registry.find_tenant` / `Registry.fetch_resolution_inputs` by `reconciler.runtime` (the
resolution API, the CLI `resolve` command and the agent-facing MCP endpoint). An agent runtime resolves on
every invocation, so the cost here must not grow with the size of the registry or of the template: one query
for the tenant, one for the bound servers (with probe state and the latest tool snapshot joined in), one for
their connections, one for the grants naming the caller, and one for the caller's own tokens. The queries
select by the template's server ids through a subquery rather than an id list, so the statement text and
count stay the same whatever the template holds, and they are built once and reused with bind parameters
(`resolution_queries`, which also says how each is shaped to be answered by index). Only what the decision
needs is returned; choosing is `reconciler.runtime`'s job.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import conversion
from reconciler.registry.connecting import load_json
from reconciler.registry.records import (
    ConnectionRecord,
    GrantSubjectRecord,
    HeaderRecord,
    ServerRecord,
    TenantRecord,
    UserTokenRecord,
)
from reconciler.registry.resolution_queries import SERVER_FACTS, resolution_statements

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
    row = connection.execute(resolution_statements(with_template=False).tenant, {"tenant": slug_or_namespace}).first()
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
    statements = resolution_statements(with_template=with_template)
    params: dict[str, Any] = {"tenant_id": tenant_id, "template": template}
    bound = tuple(
        _bound_row(row, tenant=tenant.slug, with_template=with_template)
        for row in connection.execute(statements.bound, params).all()
    )
    server_names: dict[int | None, str] = {row.server.row_id: row.server.name for row in bound}
    # Server names come from the bound rows rather than a join: the same servers, and no join for the planner
    # to answer by scanning every server. A row whose server is not among them can only be one committed
    # between the two statements, and is skipped like such a token below.
    connection_rows = tuple(
        _offered_connection(row, tenant=tenant.slug, server=server_names[row[2]])
        for row in connection.execute(statements.connections, params).all()
        if row[2] in server_names
    )
    connection_names: dict[int | None, str] = {record.row_id: record.name for record in connection_rows}
    grant_rows = connection.execute(statements.grants, {**params, "user": user, "teams": sorted(set(teams))}).all()
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
        for row in connection.execute(statements.tokens, {**params, "user": user or ORGANIZATION_MEMBER}).all()
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


# Rows are fetched at once (`.all()`: one `fetchall`, not a driver call per row) and read by position
# (`_bound_query`, `_connections_query` and `_tokens_query` fix the order), not as mappings: a resolve builds a
# few dozen records from them, and by name each field costs a lookup. JSON columns
# arrive as text (`_as_text`) and are decoded here, once, with the registry's own decoder: most hold `[]`, which
# needs no decoder at all.


def _json(text: str | None) -> Any:
    return None if text is None else load_json(text)


def _strings(text: str | None) -> tuple[str, ...]:
    return () if text is None or text == "[]" else conversion.strings_of(load_json(text))


def _headers(text: str | None) -> tuple[HeaderRecord, ...]:
    return () if text is None or text == "[]" else conversion.headers_of(load_json(text))


def _auth(text: str | None) -> dict[str, Any]:
    if text is None or text == "{}":  # a server without auth settings: a fresh dict, as records may not share one
        return {}
    auth = load_json(text)
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
    ) = row[:SERVER_FACTS]
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
    names: list[str] = []
    read_only: list[str] = []
    for item in _json(snapshot_tools) or ():
        names.append(item["name"])
        if _says_read_only(item):
            read_only.append(item["name"])
    tool_names, read_only_tools = tuple(names), frozenset(read_only)
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
    ) = row[SERVER_FACTS:]
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
