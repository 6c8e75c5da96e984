"""Names to row ids inside one write transaction: tenants by slug, managed rows by (tenant, name), a server.

Records name what they point at; the database stores ids. `writing.py` (the managed tables) and `recording.py`
(rows hanging off a server) resolve through here, always within the transaction's own connection so they see
its earlier writes, and in chunks so a call's cost grows with its rows and never hits a bind-parameter limit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa

from reconciler.errors import MissingReference, Problem
from reconciler.registry import schema
from reconciler.registry.records import Table

IN_LIST_CHUNK = 5_000
"""Ids per IN (...) list: far below the bind-parameter limits of SQLite (32766) and PostgreSQL (65535)."""

NameIds = dict[tuple[int, str], int]
"""(tenant id, name) → row id."""
Tenants = dict[str, tuple[int, str]]
"""slug → (tenant id, namespace)."""
_T = TypeVar("_T")


def chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), IN_LIST_CHUNK):
        yield items[start : start + IN_LIST_CHUNK]


def tenants(connection: sa.Connection, slugs: Collection[str]) -> Tenants:
    """The tenants among `slugs` that exist."""
    table = schema.tenants
    found: Tenants = {}
    for chunk in chunks(sorted(slugs)):
        rows = connection.execute(sa.select(table.c.id, table.c.slug, table.c.namespace).where(table.c.slug.in_(chunk)))
        found.update({row.slug: (row.id, row.namespace) for row in rows})
    return found


def required_tenants(connection: sa.Connection, slugs: Collection[str]) -> Tenants:
    """Like `tenants`, raising `MissingReference` for every slug the registry does not have."""
    found = tenants(connection, slugs)
    missing = sorted(set(slugs) - set(found))
    if missing:
        raise MissingReference(
            [Problem(f"tenant {slug!r} is not in the registry (call ensure_tenants first)") for slug in missing]
        )
    return found


def tenant_ids(found: Tenants) -> dict[str, int]:
    return {slug: tenant_id for slug, (tenant_id, _namespace) in found.items()}


def ids_by_name(connection: sa.Connection, table_name: Table, scope: Sequence[int]) -> NameIds:
    """Every row of one managed table in the tenants `scope` (ids), by (tenant id, name)."""
    table = schema.MANAGED_TABLES[table_name]
    ids: NameIds = {}
    for chunk in chunks(scope):
        rows = connection.execute(
            sa.select(table.c.id, table.c.tenant_id, table.c.name).where(table.c.tenant_id.in_(chunk))
        )
        ids.update({(row.tenant_id, row.name): row.id for row in rows})
    return ids


def server_id(connection: sa.Connection, tenant: str, server: str, *, purpose: str) -> int:
    """The id of one server, in one query; `purpose` says what was to be stored when it does not exist."""
    query = (
        sa.select(schema.servers.c.id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
    )
    found = connection.execute(query).scalar()
    if found is None:
        raise MissingReference(
            [Problem(f"cannot store {purpose}: server {server!r} does not exist in tenant {tenant!r}")]
        )
    return int(found)
