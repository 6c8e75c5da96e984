"""The one write path of the managed tables: a small spec per table and one loop that inserts, updates and deletes.

`RegistryTransaction.insert` / `update` / `delete` / `release` call this module. What differs between servers,
connections, access grants and template bindings is data (`TableSpec`): the SQL table, the record's content
columns (from `conversion.py`), the names it references and the ordered child rows it owns. Everything else is
one loop for all four, as in a generic SQL reconcile loop with a small strategy per kind: resolve tenants, check
every name reference at once (`MissingReference`, `DuplicateRow`), insert per table in write order with
INSERT ... RETURNING, link references to rows inserted later in the same call, replace children. Each table
costs a fixed number of statements (executemany), never one per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from reconciler.errors import MissingReference, Problem
from reconciler.registry import conversion, member_tokens, row_ids, schema
from reconciler.registry.errors import ConcurrentChange, DuplicateRow
from reconciler.registry.records import (
    KIND_OF_TABLE,
    BindingRecord,
    ConnectionRecord,
    GrantRecord,
    Record,
    RowKey,
    ServerRecord,
    Table,
    key_of,
)
from reconciler.registry.row_ids import NameIds, Tenants

Values = dict[str, Any]
_DESCRIBED_KEYS = 10


@dataclass(frozen=True)
class Reference:
    """A name on a record (or child) stored as the id of a row of `target` in the same tenant."""

    field: str
    """The attribute holding the name; also the field a `MissingReference` problem points at."""
    target: Table
    column: str
    """The id column that stores the resolved reference."""


@dataclass(frozen=True)
class ChildSpec:
    """Ordered rows a record owns in a child table: written with it, replaced wholesale when it is updated."""

    table: sa.Table
    field: str
    """The record attribute holding the children (a tuple, stored in that order)."""
    parent_column: str
    values: Callable[..., Values]
    """Called as `values(child, <parent_column>=id, position=n, <reference columns>=ids)`."""
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """Everything the write loop needs to know about one managed table."""

    name: Table
    noun: str
    """What a row is called in a `MissingReference` message ("server")."""
    table: sa.Table
    record_type: type[Record]
    values: Callable[[Any], Values]
    """The record's content and ownership columns (`conversion.*_values`); ids are resolved by the loop."""
    references: tuple[Reference, ...] = ()
    children: tuple[ChildSpec, ...] = ()


TABLE_SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        name="servers",
        noun="server",
        table=schema.servers,
        record_type=ServerRecord,
        values=conversion.server_values,
        references=(Reference("discovery_connection", "connections", "discovery_connection_id"),),
    ),
    TableSpec(
        name="connections",
        noun="connection",
        table=schema.connections,
        record_type=ConnectionRecord,
        values=conversion.connection_values,
        references=(Reference("server", "servers", "server_id"),),
    ),
    TableSpec(
        name="grants",
        noun="grant",
        table=schema.access_grants,
        record_type=GrantRecord,
        values=conversion.grant_values,
        references=(
            Reference("target_server", "servers", "target_server_id"),
            Reference("target_connection", "connections", "target_connection_id"),
        ),
        children=(
            ChildSpec(
                table=schema.access_grant_subjects,
                field="subjects",
                parent_column="grant_id",
                values=conversion.subject_values,
            ),
        ),
    ),
    TableSpec(
        name="bindings",
        noun="template binding",
        table=schema.template_bindings,
        record_type=BindingRecord,
        values=conversion.binding_values,
        children=(
            ChildSpec(
                table=schema.template_binding_servers,
                field="servers",
                parent_column="binding_id",
                values=conversion.bound_server_values,
                references=(
                    Reference("server", "servers", "server_id"),
                    Reference("connection", "connections", "connection_id"),
                ),
            ),
        ),
    ),
)
"""In write order: a table only references tables before it, except where a late link fills the id in."""

_SPEC_OF: dict[Table, TableSpec] = {spec.name: spec for spec in TABLE_SPECS}
_POSITION: dict[Table, int] = {spec.name: position for position, spec in enumerate(TABLE_SPECS)}
REFERENCED: tuple[Table, ...] = tuple(
    spec.name
    for spec in TABLE_SPECS
    if any(
        reference.target == spec.name
        for other in TABLE_SPECS
        for reference in (*other.references, *(ref for child in other.children for ref in child.references))
    )
)
"""Tables whose ids every insert and update reads up front, to resolve and check references."""

Grouped = dict[Table, list[Record]]


def insert(connection: sa.Connection, records: Sequence[Record], *, now: dt.datetime) -> dict[RowKey, int]:
    """`RegistryTransaction.insert`: new rows in write order, their ids by key."""
    grouped = _group_by_table(records)
    tenants = row_ids.required_tenants(connection, {record.tenant for record in records})
    tenant_ids = row_ids.tenant_ids(tenants)
    scope = sorted(set(tenant_ids.values()))
    existing: dict[Table, NameIds] = {
        spec.name: row_ids.ids_by_name(connection, spec.name, scope)
        for spec in TABLE_SPECS
        if grouped[spec.name] or spec.name in REFERENCED
    }
    clashes = [
        key_of(record)
        for spec in TABLE_SPECS
        for record in grouped[spec.name]
        if (tenant_ids[record.tenant], record.name) in existing[spec.name]
    ]
    if clashes:
        raise DuplicateRow(f"already in the registry: {_describe_keys(clashes)}")
    known = {
        table: set(existing[table]) | {(tenant_ids[record.tenant], record.name) for record in grouped[table]}
        for table in REFERENCED
    }
    _check_references(grouped, tenants=tenants, known=known)

    ids: dict[RowKey, int] = {}
    resolved: dict[Table, NameIds] = {table: dict(existing[table]) for table in REFERENCED}
    for spec in TABLE_SPECS:
        records_of_table = grouped[spec.name]
        new_ids = _insert_returning_ids(
            connection,
            spec.table,
            [
                {
                    **spec.values(record),
                    "tenant_id": tenant_ids[record.tenant],
                    **_resolve(spec.references, record, tenant_ids[record.tenant], resolved),
                    "created_at": now,
                    "updated_at": now,
                }
                for record in records_of_table
            ],
        )
        for record, row_id in zip(records_of_table, new_ids, strict=True):
            ids[key_of(record)] = row_id
            if spec.name in resolved:
                resolved[spec.name][(tenant_ids[record.tenant], record.name)] = row_id
        _insert_children(connection, spec, records_of_table, new_ids, tenant_ids=tenant_ids, resolved=resolved)
        _link_late(connection, spec.name, grouped, ids=ids, tenant_ids=tenant_ids, existing=existing, resolved=resolved)
    return ids


def update(connection: sa.Connection, records: Sequence[Record], *, now: dt.datetime) -> None:
    """`RegistryTransaction.update`: rows rewritten in place by `row_id`, children replaced."""
    grouped = _group_by_table(records)
    unidentified = [key_of(record) for record in records if record.row_id is None]
    if unidentified:
        raise ValueError(f"update needs observed rows (row_id set): {_describe_keys(unidentified)}")
    tenants = row_ids.required_tenants(connection, {record.tenant for record in records})
    tenant_ids = row_ids.tenant_ids(tenants)
    scope = sorted(set(tenant_ids.values()))
    resolved = {table: row_ids.ids_by_name(connection, table, scope) for table in REFERENCED}
    _check_references(grouped, tenants=tenants, known={table: set(ids) for table, ids in resolved.items()})
    for spec in TABLE_SPECS:
        records_of_table = grouped[spec.name]
        _update_rows(
            connection,
            spec,
            [
                {
                    **spec.values(record),
                    "b_row_id": record.row_id,
                    "tenant_id": tenant_ids[record.tenant],
                    "updated_at": now,
                    **_resolve(spec.references, record, tenant_ids[record.tenant], resolved),
                }
                for record in records_of_table
            ],
        )
        if spec.children:
            parent_ids = [_row_id(record) for record in records_of_table]
            for child in spec.children:
                for chunk in row_ids.chunks(parent_ids):
                    connection.execute(sa.delete(child.table).where(child.table.c[child.parent_column].in_(chunk)))
            _insert_children(connection, spec, records_of_table, parent_ids, tenant_ids=tenant_ids, resolved=resolved)


def delete(connection: sa.Connection, keys: Sequence[RowKey]) -> None:
    """`RegistryTransaction.delete`: by key, referencing tables first; what cascades from a row goes with it."""
    by_table = _keys_by_table(connection, keys)
    # Members' token rows cascade from their server or connection; their sealed values must go explicitly.
    member_tokens.delete_sealed_values(connection, servers=by_table["servers"], connections=by_table["connections"])
    for spec in reversed(TABLE_SPECS):
        if by_table[spec.name]:
            connection.execute(sa.delete(spec.table).where(*_key_match(spec.table)), by_table[spec.name])


def release(connection: sa.Connection, keys: Sequence[RowKey], *, now: dt.datetime) -> None:
    """`RegistryTransaction.release`: ownership cleared by key, so the rows read as hand-made ones."""
    by_table = _keys_by_table(connection, keys)
    for spec in TABLE_SPECS:
        if by_table[spec.name]:
            statement = (
                sa.update(spec.table)
                .where(*_key_match(spec.table))
                .values(
                    manager=None,
                    source_kind=None,
                    source_namespace=None,
                    source_name=None,
                    spec_hash=None,
                    deletion_policy="Delete",
                    updated_at=now,
                )
            )
            connection.execute(statement, by_table[spec.name])


def _group_by_table(records: Sequence[Record]) -> Grouped:
    """Records by table; the same key twice in one batch is a caller error the database would reject anyway."""
    grouped: Grouped = {spec.name: [] for spec in TABLE_SPECS}
    seen: set[RowKey] = set()
    repeated: list[RowKey] = []
    for record in records:
        key = key_of(record)
        if key in seen:
            repeated.append(key)
        seen.add(key)
        spec = next((spec for spec in TABLE_SPECS if isinstance(record, spec.record_type)), None)
        if spec is None:
            raise TypeError(f"not a registry record: {type(record).__name__}")
        grouped[spec.name].append(record)
    if repeated:
        raise DuplicateRow(f"the same row is written twice in one batch: {_describe_keys(repeated)}")
    return grouped


def _check_references(grouped: Grouped, *, tenants: Tenants, known: Mapping[Table, set[tuple[int, str]]]) -> None:
    """Every name reference must resolve within its tenant; report all the dangling ones at once."""
    problems: list[Problem] = []
    for spec in TABLE_SPECS:
        for record in grouped[spec.name]:
            tenant_id, namespace = tenants[record.tenant]
            named = [(reference, getattr(record, reference.field), reference.field) for reference in spec.references]
            named += [
                (reference, getattr(item, reference.field), f"{child.field}[{position}].{reference.field}")
                for child in spec.children
                for position, item in enumerate(getattr(record, child.field))
                for reference in child.references
            ]
            for reference, target, path in named:
                if target is None or (tenant_id, target) in known[reference.target]:
                    continue
                source = record.ownership.source
                problems.append(
                    Problem(
                        f"{_SPEC_OF[reference.target].noun} {target!r} does not exist in tenant {record.tenant!r}",
                        kind=source.kind if source else KIND_OF_TABLE[spec.name],
                        namespace=source.namespace if source else namespace,
                        name=source.name if source else record.name,
                        field=path,
                    )
                )
    if problems:
        raise MissingReference(problems)


def _resolve(
    references: Sequence[Reference], holder: Any, tenant_id: int, resolved: Mapping[Table, NameIds]
) -> dict[str, int | None]:
    """The id columns of `holder`'s references; a name not (yet) known stays None until a late link."""
    columns: dict[str, int | None] = {}
    for reference in references:
        name = getattr(holder, reference.field)
        columns[reference.column] = None if name is None else resolved[reference.target].get((tenant_id, name))
    return columns


def _link_late(
    connection: sa.Connection,
    inserted: Table,
    grouped: Grouped,
    *,
    ids: Mapping[RowKey, int],
    tenant_ids: Mapping[str, int],
    existing: Mapping[Table, NameIds],
    resolved: Mapping[Table, NameIds],
) -> None:
    """Fill in references from rows inserted earlier in this call to `inserted` rows that did not exist then.

    (A server may name its discovery connection, which can only be inserted after the server.)
    """
    for spec in TABLE_SPECS[: _POSITION[inserted]]:
        for reference in spec.references:
            if reference.target != inserted:
                continue
            links = [
                {
                    "b_row_id": ids[key_of(record)],
                    reference.column: resolved[inserted][(tenant_ids[record.tenant], name)],
                }
                for record in grouped[spec.name]
                if (name := getattr(record, reference.field)) is not None
                and (tenant_ids[record.tenant], name) not in existing[inserted]
            ]
            if links:
                connection.execute(sa.update(spec.table).where(spec.table.c.id == sa.bindparam("b_row_id")), links)


def _insert_children(
    connection: sa.Connection,
    spec: TableSpec,
    records: Sequence[Record],
    parent_ids: Sequence[int],
    *,
    tenant_ids: Mapping[str, int],
    resolved: Mapping[Table, NameIds],
) -> None:
    for child in spec.children:
        rows = [
            child.values(
                item,
                **{child.parent_column: parent_id, "position": position},
                **_resolve(child.references, item, tenant_ids[record.tenant], resolved),
            )
            for record, parent_id in zip(records, parent_ids, strict=True)
            for position, item in enumerate(getattr(record, child.field))
        ]
        if rows:
            connection.execute(sa.insert(child.table), rows)


def _insert_returning_ids(connection: sa.Connection, table: sa.Table, rows: list[Values]) -> list[int]:
    if not rows:
        return []
    result = connection.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
    return [int(row_id) for row_id in result.scalars()]


def _update_rows(connection: sa.Connection, spec: TableSpec, rows: list[Values]) -> None:
    if not rows:
        return
    result = connection.execute(sa.update(spec.table).where(spec.table.c.id == sa.bindparam("b_row_id")), rows)
    if result.rowcount != len(rows):
        raise ConcurrentChange(
            f"{len(rows) - result.rowcount} of {len(rows)} {spec.name} rows to update no longer exist; "
            "observe the registry again"
        )


def _keys_by_table(connection: sa.Connection, keys: Sequence[RowKey]) -> dict[Table, list[Values]]:
    """Bind parameters per table for keys whose tenant exists (a missing tenant has no rows to touch)."""
    tenant_ids = row_ids.tenant_ids(row_ids.tenants(connection, {key[1] for key in keys}))
    by_table: dict[Table, list[Values]] = {spec.name: [] for spec in TABLE_SPECS}
    for table, tenant, name in dict.fromkeys(keys):
        if tenant in tenant_ids:
            by_table[table].append({"b_tenant_id": tenant_ids[tenant], "b_name": name})
    return by_table


def _key_match(table: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [table.c.tenant_id == sa.bindparam("b_tenant_id"), table.c.name == sa.bindparam("b_name")]


def _row_id(record: Record) -> int:
    assert record.row_id is not None
    return record.row_id


def _describe_keys(keys: Sequence[RowKey]) -> str:
    described = ", ".join(f"{table} {tenant}/{name}" for table, tenant, name in keys[:_DESCRIBED_KEYS])
    more = len(keys) - _DESCRIBED_KEYS
    return described + (f" and {more} more" if more > 0 else "")
