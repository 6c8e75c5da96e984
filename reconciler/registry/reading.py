"""Reads of the registry's state, as records with names (never ids) in a fixed number of queries per call.

`Registry`'s fetch methods run these on a short connection of their own; `RegistryTransaction.fetch_state`
runs `read_state` inside its transaction so the engine sees its own writes. Every function takes the
connection it reads through, so the same query serves both. The runtime's resolution reads live apart, in
`lookups.py`, because they are shaped by what one resolution decides from, not by the tables.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from reconciler.records import OAuthClientRecord
from reconciler.registry import conversion, schema
from reconciler.registry.records import (
    AuditEntry,
    BindingRecord,
    BoundServerRecord,
    GrantSubjectRecord,
    MemberTokenTally,
    ObservedState,
    ProbeStateRecord,
    Record,
    ResourceRecord,
    RowSelection,
    SourceRef,
    Table,
    TenantRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
    key_of,
)
from reconciler.registry.rows import AuditLogRow

FINGERPRINT_KEY_NAME = "fingerprint_key"
"""The `registry_meta` key under which the fingerprint key (hex) is stored."""


def resources(
    connection: sa.Connection,
    *,
    kind: str | None,
    namespace: str | None,
    name: str | None,
    tenants: Collection[str] | None,
) -> list[ResourceRecord]:
    table = schema.resources
    filters = [
        column == value
        for column, value in ((table.c.kind, kind), (table.c.namespace, namespace), (table.c.name, name))
        if value is not None
    ]
    if tenants is not None:
        filters.append(table.c.tenant.in_(sorted(tenants)))
    query = sa.select(table).where(*filters).order_by(table.c.kind, table.c.namespace, table.c.name)
    return [conversion.resource_of(row) for row in _mappings(connection, query)]


def audit(connection: sa.Connection, *, limit: int, tenant: str | None) -> list[AuditLogRow]:
    table = schema.audit_log
    query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(table.c.tenant == tenant)
    return [_audit_row_of(row) for row in _mappings(connection, query)]


def tool_snapshots(connection: sa.Connection, *, tenant: str, server: str) -> list[ToolSnapshotRecord]:
    table = schema.tool_snapshots
    query = (
        sa.select(table)
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
        .order_by(table.c.taken_at.desc(), table.c.id.desc())
        .limit(2)
    )
    return [conversion.snapshot_of(row, tenant=tenant, server=server) for row in _mappings(connection, query)]


def probe_states(
    connection: sa.Connection,
    *,
    tenants: Collection[str] | None,
    servers: Collection[tuple[str, str]] | None = None,
) -> dict[tuple[str, str], ProbeStateRecord]:
    """Probe states by (tenant, server) of `tenants` (None: all), or of just `servers` among them."""
    if servers is not None and len(servers) > MAX_SELECTED_KEYS:
        servers = None
    table = schema.server_probe_state
    query = (
        sa.select(table, schema.tenants.c.slug.label("tenant_slug"), schema.servers.c.name.label("server_name"))
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(*_slug_filter(tenants))
    )
    if servers is not None:
        if not servers:
            return {}
        query = query.where(schema.servers.c.name.in_(sorted({name for _, name in servers})))
    found = {
        (row["tenant_slug"], row["server_name"]): conversion.probe_state_of(
            row, tenant=row["tenant_slug"], server=row["server_name"]
        )
        for row in _mappings(connection, query)
    }
    if servers is not None:
        wanted = set(servers)
        found = {key: state for key, state in found.items() if key in wanted}
    return found


def user_tokens(connection: sa.Connection, *, tenant: str, server: str) -> list[UserTokenRecord]:
    table = schema.user_tokens
    query = (
        sa.select(table, schema.connections.c.name.label("connection_name"))
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .outerjoin(schema.connections, schema.connections.c.id == table.c.connection_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
        .order_by(table.c.id)
    )
    return [
        conversion.user_token_of(row, tenant=tenant, server=server, connection=row["connection_name"])
        for row in _mappings(connection, query)
    ]


def user_token_counts(connection: sa.Connection, *, tenants: Collection[str] | None) -> dict[tuple[str, str], int]:
    table = schema.user_tokens
    query = (
        sa.select(schema.tenants.c.slug, schema.servers.c.name, sa.func.count(table.c.id))
        .select_from(table)
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(*_slug_filter(tenants))
        .group_by(schema.tenants.c.slug, schema.servers.c.name)
    )
    return {(slug, name): count for slug, name, count in connection.execute(query)}


def connected_member_counts(
    connection: sa.Connection, *, tenants: Collection[str] | None
) -> dict[tuple[str, str, str | None], int]:
    table = schema.user_tokens
    query = (
        sa.select(
            schema.tenants.c.slug,
            schema.servers.c.name,
            schema.connections.c.name,
            sa.func.count(sa.distinct(table.c.user_id)),
        )
        .select_from(table)
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .outerjoin(schema.connections, schema.connections.c.id == table.c.connection_id)
        .where(*_slug_filter(tenants))
        .group_by(schema.tenants.c.slug, schema.servers.c.name, schema.connections.c.name)
    )
    return {(slug, server, name): count for slug, server, name, count in connection.execute(query)}


def member_token_tallies(
    connection: sa.Connection,
    servers: Collection[tuple[str, str]],
    *,
    now: dt.datetime,
    horizon: dt.datetime,
) -> dict[tuple[str, str], MemberTokenTally]:
    """One grouped aggregate over `user_tokens` for `servers` ((tenant, server) pairs): each server's tallies at
    `now`, counting as expiring the tokens that lapse after `now` and by `horizon`. Servers without tokens are
    absent."""
    if not servers:
        return {}
    table = schema.user_tokens
    no_refresh = table.c.refresh_token_ref.is_(None)
    expired = sa.and_(table.c.expires_at.is_not(None), table.c.expires_at <= now)
    expiring = sa.and_(table.c.expires_at > now, table.c.expires_at <= horizon)

    def tally(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    query = (
        sa.select(
            schema.tenants.c.slug,
            schema.servers.c.name,
            sa.func.count(table.c.id),
            tally(expiring),
            tally(sa.and_(expired, no_refresh)),
            tally(no_refresh),
        )
        .select_from(table)
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(sa.tuple_(schema.tenants.c.slug, schema.servers.c.name).in_(sorted(set(servers))))
        .group_by(schema.tenants.c.slug, schema.servers.c.name)
    )
    return {
        (slug, name): MemberTokenTally(
            connected=int(count),
            expiring=int(soon or 0),
            needs_reauthorization=int(lapsed or 0),
            without_refresh_token=int(bare or 0),
        )
        for slug, name, count, soon, lapsed, bare in connection.execute(query)
    }


def oauth_clients(connection: sa.Connection, *, tenant: str, server: str) -> list[OAuthClientRecord]:
    table = schema.oauth_clients
    query = (
        sa.select(table)
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
        .order_by(table.c.issuer)
    )
    return [_oauth_client_of(row, tenant=tenant, server=server) for row in _mappings(connection, query)]


def published_client_keys(connection: sa.Connection, *, tenant: str) -> list[dict[str, Any]]:
    """The public keys (JWKs) the engine recorded for `tenant`'s CIMD client-credentials servers
    (`clientAssertionPublicKey` in their auth), in server order: what `serve` publishes at that tenant's CIMD
    client's `jwks_uri`. Another tenant's keys are never in it: each signs for its own tenant's client only."""
    table = schema.servers
    query = (
        sa.select(table.c.auth)
        .join(schema.tenants, schema.tenants.c.id == table.c.tenant_id)
        .where(table.c.auth_type == "oauthClientCredentials", schema.tenants.c.slug == tenant)
        .order_by(table.c.id)
    )
    return [
        dict(auth["clientAssertionPublicKey"])
        for auth in connection.execute(query).scalars()
        if isinstance(auth, Mapping) and isinstance(auth.get("clientAssertionPublicKey"), Mapping)
    ]


def every_row(connection: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    return {
        table.name: [dict(row) for row in _mappings(connection, sa.select(table).order_by(*table.primary_key.columns))]
        for table in schema.metadata.sorted_tables
    }


def _mappings(connection: sa.Connection, query: sa.Executable) -> Sequence[sa.RowMapping]:
    return connection.execute(query).mappings().all()


def _slug_filter(tenants: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    return [] if tenants is None else [schema.tenants.c.slug.in_(sorted(tenants))]


def _tenant_scope(table: sa.Table, tenants: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    if tenants is None:
        return []
    return [table.c.tenant_id.in_(sa.select(schema.tenants.c.id).where(*_slug_filter(tenants)))]


MAX_SELECTED_KEYS = 2_000
"""Above this many keys a row selection reads its tenants whole: one statement's bound parameters stay far below
the backends' limits, and a pass that large covers much of its tenants anyway."""


def read_state(
    connection: sa.Connection, tenants: Collection[str] | None, only: RowSelection | None = None
) -> ObservedState:
    """Seven queries: tenants, the four tables, grant subjects and bound servers (children in stored order); with
    `only`, just the selected rows of those (two more for the names of rows they reference but that were not read)."""
    if only is not None and len(only.keys) > MAX_SELECTED_KEYS:
        tenants, only = (only.tenants if tenants is None else set(tenants) & only.tenants), None
    elif only is not None:
        tenants = only.tenants if tenants is None else set(tenants) & only.tenants
    tenant_rows = _mappings(connection, sa.select(schema.tenants).where(*_slug_filter(tenants)))
    slug_of = {row["id"]: row["slug"] for row in tenant_rows}
    state = ObservedState(tenants={row["slug"]: TenantRecord(row["slug"], row["namespace"]) for row in tenant_rows})
    id_of = {slug: row_id for row_id, slug in slug_of.items()}

    def rows_of(table: sa.Table, selected: Table) -> Sequence[sa.RowMapping]:
        if only is None:
            scope = _tenant_scope(table, tenants)
        else:
            chosen = _selected(table, selected, only, id_of)
            if chosen is None:  # nothing of this table is selected: no statement (a pass over servers alone)
                return ()
            scope = [chosen]
        return _mappings(connection, sa.select(table).where(*scope).order_by(table.c.id))

    server_rows = rows_of(schema.servers, "servers")
    connection_rows = rows_of(schema.connections, "connections")
    grant_rows = rows_of(schema.access_grants, "grants")
    binding_rows = rows_of(schema.template_bindings, "bindings")
    server_names = {row["id"]: row["name"] for row in server_rows}
    connection_names = {row["id"]: row["name"] for row in connection_rows}

    subjects = schema.access_grant_subjects
    subjects_of: dict[int, list[GrantSubjectRecord]] = defaultdict(list)
    subject_query = sa.select(subjects).order_by(subjects.c.grant_id, subjects.c.position, subjects.c.id)
    if only is None:
        subject_query = subject_query.join(
            schema.access_grants, schema.access_grants.c.id == subjects.c.grant_id
        ).where(*_tenant_scope(schema.access_grants, tenants))
    else:
        subject_query = subject_query.where(subjects.c.grant_id.in_([row["id"] for row in grant_rows]))
    for row in _mappings(connection, subject_query) if only is None or grant_rows else ():
        subjects_of[row["grant_id"]].append(conversion.subject_of(row))

    bound = schema.template_binding_servers
    bound_rows: Sequence[sa.RowMapping] = ()
    bound_query = sa.select(bound).order_by(bound.c.binding_id, bound.c.position, bound.c.id)
    if only is None:
        bound_query = bound_query.join(
            schema.template_bindings, schema.template_bindings.c.id == bound.c.binding_id
        ).where(*_tenant_scope(schema.template_bindings, tenants))
        bound_rows = _mappings(connection, bound_query)
    elif binding_rows:
        bound_rows = _mappings(
            connection, bound_query.where(bound.c.binding_id.in_([row["id"] for row in binding_rows]))
        )
    if only is not None:  # rows read name rows that were not read: their names, by id
        server_names.update(
            _names(
                connection,
                schema.servers,
                [row["server_id"] for row in connection_rows]
                + [row["target_server_id"] for row in grant_rows]
                + [row["server_id"] for row in bound_rows],
                known=server_names,
            )
        )
        connection_names.update(
            _names(
                connection,
                schema.connections,
                [row["discovery_connection_id"] for row in server_rows]
                + [row["target_connection_id"] for row in grant_rows]
                + [row["connection_id"] for row in bound_rows],
                known=connection_names,
            )
        )
    bound_of: dict[int, list[BoundServerRecord]] = defaultdict(list)
    for row in bound_rows:
        bound_of[row["binding_id"]].append(
            conversion.bound_server_of(
                row,
                server=server_names.get(row["server_id"], ""),
                connection=_name_or_none(connection_names, row["connection_id"]),
            )
        )

    records: list[Record] = []
    records.extend(
        conversion.server_of(
            row,
            tenant=slug_of[row["tenant_id"]],
            discovery_connection=_name_or_none(connection_names, row["discovery_connection_id"]),
        )
        for row in server_rows
    )
    records.extend(
        conversion.connection_of(row, tenant=slug_of[row["tenant_id"]], server=server_names.get(row["server_id"], ""))
        for row in connection_rows
    )
    records.extend(
        conversion.grant_of(
            row,
            tenant=slug_of[row["tenant_id"]],
            target_server=_name_or_none(server_names, row["target_server_id"]),
            target_connection=_name_or_none(connection_names, row["target_connection_id"]),
            subjects=subjects_of.get(row["id"], ()),
        )
        for row in grant_rows
    )
    records.extend(
        BindingRecord(
            tenant=slug_of[row["tenant_id"]],
            name=row["name"],
            ownership=conversion.ownership_of(row),
            row_id=row["id"],
            template=row["template"],
            servers=tuple(bound_of.get(row["id"], ())),
            agents=conversion.strings_of(row["agents"]),
        )
        for row in binding_rows
    )
    state.rows = {key_of(record): record for record in records}
    return state


def _selected(
    table: sa.Table, selected: Table, only: RowSelection, tenant_ids: Mapping[str, int]
) -> sa.ColumnElement[bool] | None:
    """The rows of `table` (rows of `selected` in `only`'s keys) that `only` selects (see `RowSelection`), among
    tenants that exist; None when it selects none."""
    names: dict[int, set[str]] = defaultdict(set)
    for row_table, tenant, name in only.keys:
        if row_table == selected and tenant in tenant_ids:
            names[tenant_ids[tenant]].add(name)
    chosen = [
        sa.and_(table.c.tenant_id == tenant_id, table.c.name.in_(sorted(wanted)))
        for tenant_id, wanted in sorted(names.items())
    ]
    if table is schema.servers:
        urls: dict[int, set[str]] = defaultdict(set)
        for tenant, url in only.server_urls:
            if tenant in tenant_ids:
                urls[tenant_ids[tenant]].add(url)
        chosen.extend(
            sa.and_(table.c.tenant_id == tenant_id, table.c.url.in_(sorted(wanted)))
            for tenant_id, wanted in sorted(urls.items())
        )
        key_tenants = sorted({tenant_ids[tenant] for _, tenant, _ in only.keys if tenant in tenant_ids})
        if only.server_auth_types and key_tenants:
            chosen.append(
                sa.and_(table.c.tenant_id.in_(key_tenants), table.c.auth_type.in_(sorted(only.server_auth_types)))
            )
    return sa.or_(*chosen) if chosen else None


def _names(
    connection: sa.Connection, table: sa.Table, ids: Iterable[int | None], *, known: Mapping[int, str]
) -> dict[int, str]:
    """Names of the rows of `table` with these ids, for those not `known` yet (none: no query)."""
    missing = sorted({row_id for row_id in ids if row_id is not None and row_id not in known})
    if not missing:
        return {}
    query = sa.select(table.c.id, table.c.name).where(table.c.id.in_(missing))
    return {row_id: name for row_id, name in connection.execute(query).all()}


def read_fingerprint_key(connection: sa.Connection) -> str | None:
    table = schema.registry_meta
    value = connection.execute(sa.select(table.c.value).where(table.c.key == FINGERPRINT_KEY_NAME)).scalar()
    return None if value is None else str(value)


def _audit_row_of(row: sa.RowMapping) -> AuditLogRow:
    source = None
    if row["source_kind"] is not None:
        source = SourceRef(kind=row["source_kind"], namespace=row["source_namespace"], name=row["source_name"])
    entry = AuditEntry(
        action=row["action"],
        table=row["table_name"],
        tenant=row["tenant"],
        name=row["name"],
        actor=row["actor"],
        diff=row["diff"],
        source=source,
        message=row["message"],
    )
    return AuditLogRow(id=row["id"], at=row["at"], entry=entry)


def _oauth_client_of(row: sa.RowMapping, *, tenant: str, server: str) -> OAuthClientRecord:
    return OAuthClientRecord(
        tenant=tenant,
        server=server,
        issuer=row["issuer"],
        client_id=row["client_id"],
        client_secret_ref=row["client_secret_ref"],
        registration_client_uri=row["registration_client_uri"],
        registration_access_token_ref=row["registration_access_token_ref"],
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        row_id=row["id"],
    )


def _name_or_none(names: Mapping[int, str], row_id: int | None) -> str | None:
    return None if row_id is None else names.get(row_id)
