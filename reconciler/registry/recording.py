"""Writes outside the four managed tables: tenants, audit entries, stored objects, and rows hanging off a server.

`RegistryTransaction` calls these inside its transaction: tenants before anything names them, audit entries and
the CLI's stored copies of applied objects (with their status) after an apply, and the probe's and the
credentials package's per-server rows (tool snapshots, probe state, OAuth clients, member tokens). Unlike the
managed tables these have no ownership or table spec: each is one upsert-shaped statement or a few.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from reconciler.errors import InvalidInput, MissingReference, Problem
from reconciler.records import OAuthClientRecord
from reconciler.registry import conversion, row_ids, schema
from reconciler.registry.reading import FINGERPRINT_KEY_NAME, read_fingerprint_key
from reconciler.registry.records import (
    FINGERPRINT_KEY_BYTES,
    AuditEntry,
    ProbeStateRecord,
    ResourceRecord,
    TenantRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
)


def ensure_tenants(connection: sa.Connection, tenants: Iterable[TenantRecord], *, now: dt.datetime) -> None:
    wanted = {tenant.slug: tenant for tenant in tenants}
    if not wanted:
        return
    existing = row_ids.tenants(connection, wanted)
    missing = [tenant for slug, tenant in wanted.items() if slug not in existing]
    if missing:
        _refuse_aliases(connection, missing)
        connection.execute(
            sa.insert(schema.tenants),
            [{"slug": tenant.slug, "namespace": tenant.namespace, "created_at": now} for tenant in missing],
        )


SLUG_FIELD = "metadata.labels['mcp.reconciler.dev/tenant']"
"""Where a namespace sets its tenant slug (`engine.inputs.TENANT_LABEL`, which the registry may not import)."""


def _refuse_aliases(connection: sa.Connection, new: Sequence[TenantRecord]) -> None:
    """Refuse a new tenant whose slug is another tenant's namespace, or whose namespace is another's slug.

    Runtimes, connect links and `serve`'s callers name a tenant by slug or by namespace, slug first; either alias
    would make one tenant's name open another tenant (its servers, its members' logins)."""
    table = schema.tenants
    names = {tenant.slug for tenant in new} | {tenant.namespace for tenant in new}
    query = sa.select(table.c.slug, table.c.namespace).where(
        sa.or_(table.c.slug.in_(sorted(names)), table.c.namespace.in_(sorted(names)))
    )
    known = [TenantRecord(slug=row.slug, namespace=row.namespace) for row in connection.execute(query)]
    problems: list[Problem] = []
    for tenant in new:
        for other in (*known, *new):
            if other.slug == tenant.slug:
                continue
            if other.namespace == tenant.namespace:
                clash = f"it is already tenant {other.slug!r}, and a tenant's slug cannot change to {tenant.slug!r}"
                alias = tenant.namespace
            elif other.namespace == tenant.slug:
                clash, alias = f"its tenant slug {tenant.slug!r} is the namespace of tenant {other.slug!r}", tenant.slug
            elif other.slug == tenant.namespace:
                clash, alias = f"its name is the tenant slug of namespace {other.namespace!r}", tenant.namespace
            else:
                continue
            message = f"{clash}: a runtime naming {alias!r} would reach the wrong tenant; choose another tenant slug"
            problems.append(Problem(message, kind="Namespace", name=tenant.namespace, field=SLUG_FIELD))
    if problems:
        raise InvalidInput(problems)


def audit(connection: sa.Connection, entries: Sequence[AuditEntry], *, now: dt.datetime) -> None:
    connection.execute(sa.insert(schema.audit_log), [_audit_values(entry, at=now) for entry in entries])


def put_resources(connection: sa.Connection, resources: Sequence[ResourceRecord], *, now: dt.datetime) -> None:
    latest = {(r.kind, r.namespace, r.name): r for r in resources}  # one row per key per statement
    rows = [conversion.resource_values(resource, now=now) for resource in latest.values()]
    table = schema.resources
    statement = _dialect_insert(connection, table)
    replaced = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if column.name not in ("id", "kind", "namespace", "name", "created_at")
    }
    connection.execute(
        statement.on_conflict_do_update(index_elements=["kind", "namespace", "name"], set_=replaced), rows
    )


def delete_resources(connection: sa.Connection, ids: Sequence[tuple[str, str, str]]) -> None:
    table = schema.resources
    connection.execute(
        sa.delete(table).where(
            table.c.kind == sa.bindparam("b_kind"),
            table.c.namespace == sa.bindparam("b_namespace"),
            table.c.name == sa.bindparam("b_name"),
        ),
        [{"b_kind": kind, "b_namespace": namespace, "b_name": name} for kind, namespace, name in ids],
    )


StatusChange = Callable[[dict[str, Any]], dict[str, Any]]
"""A stored object's status → what it should become (a pure function of it)."""


def change_status(
    connection: sa.Connection,
    kind: str,
    namespace: str,
    name: str,
    change: StatusChange,
    *,
    now: dt.datetime,
) -> bool:
    """Read a stored object's status under the row's lock, and write `change`'s result when it differs."""
    table = schema.resources
    where = (table.c.kind == kind, table.c.namespace == namespace, table.c.name == name)
    row = connection.execute(sa.select(table.c.status).where(*where).with_for_update()).first()
    if row is None:
        return False
    current = row.status or {}
    changed = change(dict(current))
    if changed == current:
        return False
    connection.execute(sa.update(table).where(*where).values(status=changed, updated_at=now))
    return True


def put_tool_snapshot(connection: sa.Connection, snapshot: ToolSnapshotRecord) -> None:
    server_id = row_ids.server_id(connection, snapshot.tenant, snapshot.server, purpose="a tool snapshot")
    table = schema.tool_snapshots
    latest = connection.execute(
        sa.select(table.c.id, table.c.hash)
        .where(table.c.server_id == server_id)
        .order_by(table.c.taken_at.desc(), table.c.id.desc())
        .limit(1)
    ).first()
    values = conversion.snapshot_values(snapshot)
    if latest is not None and latest.hash == snapshot.hash:
        connection.execute(sa.update(table).where(table.c.id == latest.id).values(values))
        return
    connection.execute(sa.insert(table).values(server_id=server_id, **values))
    newest_two = (
        sa.select(table.c.id)
        .where(table.c.server_id == server_id)
        .order_by(table.c.taken_at.desc(), table.c.id.desc())
        .limit(2)
    )
    connection.execute(sa.delete(table).where(table.c.server_id == server_id, table.c.id.not_in(newest_two)))


def put_probe_state(connection: sa.Connection, state: ProbeStateRecord) -> None:
    server_id = row_ids.server_id(connection, state.tenant, state.server, purpose="probe state")
    table = schema.server_probe_state
    statement = _dialect_insert(connection, table).values(server_id=server_id, **conversion.probe_state_values(state))
    replaced = {name: statement.excluded[name] for name in conversion.probe_state_values(state)}
    connection.execute(statement.on_conflict_do_update(index_elements=["server_id"], set_=replaced))


def put_oauth_client(connection: sa.Connection, client: OAuthClientRecord, *, now: dt.datetime) -> int:
    server_id = row_ids.server_id(connection, client.tenant, client.server, purpose="an OAuth client")
    table = schema.oauth_clients
    values = {
        "client_id": client.client_id,
        "client_secret_ref": client.client_secret_ref,
        "registration_client_uri": client.registration_client_uri,
        "registration_access_token_ref": client.registration_access_token_ref,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "expires_at": client.expires_at,
    }
    statement = _dialect_insert(connection, table).values(
        server_id=server_id, issuer=client.issuer, created_at=client.created_at or now, **values
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["server_id", "issuer"], set_={name: statement.excluded[name] for name in values}
    ).returning(table.c.id)
    return int(connection.execute(upsert).scalar_one())


def insert_user_token(connection: sa.Connection, token: UserTokenRecord, *, now: dt.datetime) -> int:
    server_id = row_ids.server_id(connection, token.tenant, token.server, purpose="a user token")
    tenant_id = row_ids.required_tenants(connection, {token.tenant})[token.tenant][0]
    connection_id = None
    if token.connection is not None:
        connection_id = row_ids.ids_by_name(connection, "connections", [tenant_id]).get((tenant_id, token.connection))
        if connection_id is None:
            raise MissingReference(
                [Problem(f"connection {token.connection!r} does not exist in tenant {token.tenant!r}")]
            )
    table = schema.user_tokens
    statement = (
        sa.insert(table)
        .values(
            tenant_id=tenant_id,
            server_id=server_id,
            connection_id=connection_id,
            user_id=token.user_id,
            secret_ref=token.secret_ref,
            value_keys=list(token.value_keys),
            created_at=now,
            expires_at=token.expires_at,
            refresh_token_ref=token.refresh_token_ref,
            issued_at=token.issued_at,
            client_id=token.client_id,
            issuer=token.issuer,
            scopes=list(token.scopes),
        )
        .returning(table.c.id)
    )
    return int(connection.execute(statement).scalar_one())


def delete_user_tokens(
    connection: sa.Connection, *, tenant: str, server: str, user_id: str, through: str | None = None
) -> int:
    """A member's own token rows for a server, on the server itself (`through` None) or through its connection
    `through`; how many were deleted."""
    table = schema.user_tokens
    server_ids = (
        sa.select(schema.servers.c.id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
        .scalar_subquery()
    )
    scoped: sa.ColumnElement[bool]
    if through is None:
        scoped = table.c.connection_id.is_(None)
    else:
        connection_ids = (
            sa.select(schema.connections.c.id)
            .join(schema.tenants, schema.tenants.c.id == schema.connections.c.tenant_id)
            .where(schema.tenants.c.slug == tenant, schema.connections.c.name == through)
            .scalar_subquery()
        )
        scoped = table.c.connection_id == connection_ids
    statement = sa.delete(table).where(table.c.server_id == server_ids, table.c.user_id == user_id, scoped)
    return int(connection.execute(statement).rowcount or 0)


def ensure_fingerprint_key(connection: sa.Connection, *, proposed: bytes | None = None) -> str:
    table = schema.registry_meta
    value = (proposed or os.urandom(FINGERPRINT_KEY_BYTES)).hex()
    statement = (
        _dialect_insert(connection, table)
        .values(key=FINGERPRINT_KEY_NAME, value=value)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    connection.execute(statement)
    stored = read_fingerprint_key(connection)
    assert stored is not None
    return stored


def _dialect_insert(connection: sa.Connection, table: sa.Table) -> Any:
    """An INSERT supporting ON CONFLICT, which both backends spell the same way."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _audit_values(entry: AuditEntry, *, at: dt.datetime) -> dict[str, Any]:
    source = entry.source
    return {
        "at": at,
        "actor": entry.actor,
        "action": entry.action,
        "table_name": entry.table,
        "tenant": entry.tenant,
        "name": entry.name,
        "source_kind": source.kind if source else None,
        "source_namespace": source.namespace if source else None,
        "source_name": source.name if source else None,
        "diff": entry.diff,
        "message": entry.message,
    }
