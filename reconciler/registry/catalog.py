"""The reads behind the Registry API (v0.1): every server with its timestamps, latest snapshot and probe state.

`Registry.fetch_catalog` and `Registry.fetch_removed_servers` run these; `reconciler.runtime.publishing` turns the
rows into `server.json` entries. Three queries whatever the number of servers: the servers with their tenants,
the latest snapshot of each (a window over the snapshots), and the probe states. A removed server has no row
left, so removals come from the audit log, which outlives the rows it describes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from reconciler.registry import conversion, schema
from reconciler.registry.records import ProbeStateRecord, ServerRecord, TenantRecord, ToolSnapshotRecord

REMOVED_ACTIONS = ("delete", "orphan")
"""Audit actions after which a server is no longer managed here: it leaves the catalog."""


@dataclass(frozen=True)
class CatalogRow:
    """One server as the Registry API publishes it: the row, when it appeared and changed, its live facts."""

    tenant: TenantRecord
    server: ServerRecord
    published_at: dt.datetime
    updated_at: dt.datetime
    snapshot: ToolSnapshotRecord | None = None
    probe: ProbeStateRecord | None = None


@dataclass(frozen=True)
class RemovedServer:
    """A server row deleted (or orphaned) at `removed_at`, from the audit log."""

    tenant: str
    name: str
    removed_at: dt.datetime


def read_catalog(connection: sa.Connection) -> list[CatalogRow]:
    """Every server row, ordered by tenant slug and name, with its latest snapshot and probe state."""
    servers, tenants = schema.servers, schema.tenants
    rows = (
        connection.execute(
            sa.select(servers, tenants.c.slug.label("tenant_slug"), tenants.c.namespace.label("tenant_namespace"))
            .join(tenants, tenants.c.id == servers.c.tenant_id)
            .order_by(tenants.c.slug, servers.c.name)
        )
        .mappings()
        .all()
    )
    names = {row["id"]: (row["tenant_slug"], row["name"]) for row in rows}
    snapshots = _latest_snapshots(connection, names)
    probes = _probe_states(connection, names)
    return [
        CatalogRow(
            tenant=TenantRecord(slug=row["tenant_slug"], namespace=row["tenant_namespace"]),
            server=conversion.server_of(row, tenant=row["tenant_slug"], discovery_connection=None),
            published_at=row["created_at"],
            updated_at=row["updated_at"],
            snapshot=snapshots.get(row["id"]),
            probe=probes.get(row["id"]),
        )
        for row in rows
    ]


def read_removed_servers(connection: sa.Connection, *, since: dt.datetime | None) -> list[RemovedServer]:
    """Servers removed after `since` (every recorded removal without it), newest removal per name."""
    audit = schema.audit_log
    query = sa.select(
        audit.c.tenant, audit.c.name, sa.func.max(audit.c.at, type_=schema.UtcDateTime()).label("removed_at")
    ).where(audit.c.table_name == "servers", audit.c.action.in_(REMOVED_ACTIONS))
    if since is not None:
        query = query.where(audit.c.at > since)
    query = query.group_by(audit.c.tenant, audit.c.name).order_by(audit.c.tenant, audit.c.name)
    return [
        RemovedServer(tenant=row.tenant, name=row.name, removed_at=_utc(row.removed_at))
        for row in connection.execute(query)
    ]


def _latest_snapshots(connection: sa.Connection, names: dict[int, tuple[str, str]]) -> dict[int, ToolSnapshotRecord]:
    table = schema.tool_snapshots
    rank = (
        sa.func.row_number()
        .over(partition_by=table.c.server_id, order_by=(table.c.taken_at.desc(), table.c.id.desc()))
        .label("rank")
    )
    ranked = sa.select(table, rank).subquery()
    found: dict[int, ToolSnapshotRecord] = {}
    for row in connection.execute(sa.select(ranked).where(ranked.c.rank == 1)).mappings():
        if row["server_id"] in names:
            tenant, server = names[row["server_id"]]
            found[row["server_id"]] = conversion.snapshot_of(row, tenant=tenant, server=server)
    return found


def _probe_states(connection: sa.Connection, names: dict[int, tuple[str, str]]) -> dict[int, ProbeStateRecord]:
    found: dict[int, ProbeStateRecord] = {}
    for row in connection.execute(sa.select(schema.server_probe_state)).mappings():
        if row["server_id"] in names:
            tenant, server = names[row["server_id"]]
            found[row["server_id"]] = conversion.probe_state_of(row, tenant=tenant, server=server)
    return found


def _utc(value: dt.datetime | str) -> dt.datetime:
    """`max()` over a UtcDateTime column comes back untyped on SQLite (a string); make it an aware datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
