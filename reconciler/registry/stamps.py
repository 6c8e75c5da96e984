"""The change stamp and the per-manager "applied" marker that let an unchanged resync skip reading rows.

Triggers (migration 0004) bump `registry_changes.stamp` on every write to the managed tables. After a run
that holds the write lock from its observation to its commit, the engine records (stamp, input digest)
for its manager; a later run with the same digest that still reads the same stamp knows that neither its
input nor any managed row moved. The triggers also copy the new stamp into `tenants.change_stamp` (migration
0007), so a run whose stamp moved can still tell which tenants' rows did. Called through
`Registry.fetch_applied_marker` / `fetch_tenant_stamps` and `RegistryTransaction.lock_change_stamp` /
`record_applied`.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from reconciler.registry import schema

MARKER_PREFIX = "applied:"


def marker_key(manager: str) -> str:
    return MARKER_PREFIX + manager


def read_stamp(connection: sa.Connection, *, lock: bool = False) -> int | None:
    query = sa.select(schema.registry_changes.c.stamp).where(schema.registry_changes.c.id == 1)
    if lock and connection.dialect.name == "postgresql":
        # Other writers' triggers wait on this row until we commit: nothing slips between observe and record.
        query = query.with_for_update()
    value = connection.execute(query).scalar_one_or_none()
    return None if value is None else int(value)


def read_tenant_stamps(connection: sa.Connection) -> dict[str, int]:
    table = schema.tenants
    rows = connection.execute(sa.select(table.c.slug, table.c.change_stamp))
    return {slug: int(stamp) for slug, stamp in rows}


def read_marker(connection: sa.Connection, manager: str) -> tuple[int, str] | None:
    table = schema.registry_meta
    text = connection.execute(sa.select(table.c.value).where(table.c.key == marker_key(manager))).scalar_one_or_none()
    if text is None:
        return None
    try:
        data = json.loads(text)
        return int(data["stamp"]), str(data["digest"])
    except (ValueError, KeyError, TypeError):
        return None


def write_marker(connection: sa.Connection, manager: str, *, stamp: int, digest: str) -> None:
    if read_marker(connection, manager) == (stamp, digest):
        return
    table = schema.registry_meta
    value = json.dumps({"stamp": stamp, "digest": digest})
    updated = connection.execute(sa.update(table).where(table.c.key == marker_key(manager)).values(value=value))
    if updated.rowcount == 0:
        connection.execute(sa.insert(table).values(key=marker_key(manager), value=value))


def forget_marker(connection: sa.Connection, manager: str) -> None:
    table = schema.registry_meta
    connection.execute(sa.delete(table).where(table.c.key == marker_key(manager)))
