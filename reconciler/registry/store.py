"""The registry API: open a database, read what is there, and write records in one transaction.

The engine (apply, observe), the probe (snapshots, probe state), the credentials package (OAuth clients), the
runtime resolution API and the CLI call this module; nothing else in the product speaks SQL. Reads return the
record types of `records.py` with names, never ids; writes take records and resolve names to ids themselves,
batched per table (executemany / multi-row INSERT ... RETURNING), so the cost of a call grows with the rows it
touches, never with one query per row. Driver errors surface as the domain errors of `errors.py`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from reconciler.errors import MissingReference, Problem
from reconciler.registry import conversion, schema, stamps
from reconciler.registry.connecting import (
    DEFAULT_REGISTRY_URL,
    REGISTRY_URL_ENV,
    WRITE_TRANSACTION,
    StatementCounter,
    check_sqlite_file,
    create_registry_engine,
    masked_url,
    parse_registry_url,
    resolve_registry_url,
    single_statement_reads,
    translated_errors,
)
from reconciler.registry.errors import ConcurrentChange, DuplicateRow
from reconciler.registry.migrating import upgrade_registry
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    KIND_OF_TABLE,
    TABLES,
    AuditEntry,
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    ObservedState,
    ProbeStateRecord,
    Record,
    ResourceRecord,
    RowKey,
    ServerRecord,
    SourceRef,
    Table,
    TenantRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
    key_of,
    table_of,
)
from reconciler.registry.rows import AuditLogRow, OAuthClientRecord

__all__ = [
    "DEFAULT_MANAGER",
    "DEFAULT_REGISTRY_URL",
    "REGISTRY_URL_ENV",
    "Registry",
    "RegistryTransaction",
    "open_registry",
    "resolve_registry_url",
]

IN_LIST_CHUNK = 5_000
"""Ids per IN (...) list: far below the bind-parameter limits of SQLite (32766) and PostgreSQL (65535)."""
FINGERPRINT_KEY_NAME = "fingerprint_key"
FINGERPRINT_KEY_BYTES = 32
_DESCRIBED_KEYS = 10

_WRITE_ORDER: tuple[Table, ...] = ("servers", "connections", "grants", "bindings")
_DELETE_ORDER: tuple[Table, ...] = ("bindings", "grants", "connections", "servers")

NameIds = dict[tuple[int, str], int]
"""(tenant id, name) → row id."""
_T = TypeVar("_T")


def open_registry(url: str | None = None, *, manager: str = DEFAULT_MANAGER) -> Registry:
    """Connect, migrate to the current schema when needed, and return the registry.

    `url`: explicit URL, else `$MCP_RECONCILER_REGISTRY`, else `sqlite:///mcp-registry.db`. Bare
    `postgres://` / `postgresql://` URLs use psycopg 3. Raises `RegistryUnavailable` when the database
    cannot be reached, `InvalidRegistryUrl` / `IncompatibleRegistry` when it cannot be used at all.
    """
    parsed = parse_registry_url(resolve_registry_url(url))
    check_sqlite_file(parsed)
    engine = create_registry_engine(parsed)
    counter = StatementCounter()
    counter.attach(engine)
    try:
        with translated_errors(parsed):
            applied = upgrade_registry(engine)
    except BaseException:
        engine.dispose()
        raise
    counter.reset()
    return Registry(engine, url=parsed, manager=manager, applied_migrations=applied, counter=counter)


class Registry:
    """An open registry database. Reads open a short connection each; writes go through `transaction()`."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        url: URL,
        manager: str,
        applied_migrations: tuple[str, ...],
        counter: StatementCounter,
    ) -> None:
        self._engine = engine
        self._url = url
        self._manager = manager
        self._applied_migrations = applied_migrations
        self._counter = counter
        self._fingerprint_key: bytes | None = None

    def __repr__(self) -> str:
        return f"Registry({self.url!r}, manager={self._manager!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return masked_url(self._url)

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self._engine.dialect.name

    @property
    def manager(self) -> str:
        """The value this reconciler writes into `manager` on rows it owns."""
        return self._manager

    @property
    def applied_migrations(self) -> tuple[str, ...]:
        """Revisions this open applied; empty when the database was already up to date."""
        return self._applied_migrations

    @property
    def statement_counts(self) -> Counter[str]:
        """Statements executed since open (or the last reset), by verb; an executemany counts once."""
        return self._counter.snapshot()

    def reset_statement_counts(self) -> None:
        self._counter.reset()

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        """Raise `RegistryUnavailable` unless the database answers."""
        self._read(lambda connection: connection.execute(sa.text("SELECT 1")).scalar())

    def fingerprint_key(self) -> bytes:
        """This registry's key for fingerprinting secrets: random, created on first use, stable afterwards."""
        if self._fingerprint_key is None:
            stored = self._read(_read_fingerprint_key)
            if stored is None:
                with self.transaction() as transaction:
                    stored = transaction.ensure_fingerprint_key()
            self._fingerprint_key = bytes.fromhex(stored)
        return self._fingerprint_key

    @contextmanager
    def transaction(self) -> Iterator[RegistryTransaction]:
        """One database transaction: committed when the block ends normally, rolled back on any exception."""
        with translated_errors(self._url), self._engine.connect() as connection:
            connection.execution_options(**{WRITE_TRANSACTION: True})
            with connection.begin():
                transaction = RegistryTransaction(connection)
                try:
                    yield transaction
                finally:
                    transaction.closed = True

    def fetch_state(self, *, tenants: Collection[str] | None = None) -> ObservedState:
        """Every row of the four managed tables (owned or not), as records with `row_id` and `ownership` set.

        A fixed number of queries however many rows there are. `tenants` limits the read to those slugs.
        """
        return self._read(lambda connection: _read_state(connection, tenants))

    def fetch_resources(
        self,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        tenants: Collection[str] | None = None,
    ) -> list[ResourceRecord]:
        """The stored copies of applied objects; `tenants` limits them to those slugs."""
        table = schema.resources
        filters = [
            column == value
            for column, value in ((table.c.kind, kind), (table.c.namespace, namespace), (table.c.name, name))
            if value is not None
        ]
        if tenants is not None:
            filters.append(table.c.tenant.in_(sorted(tenants)))
        query = sa.select(table).where(*filters).order_by(table.c.kind, table.c.namespace, table.c.name)
        return self._read(lambda connection: [conversion.resource_of(row) for row in _mappings(connection, query)])

    def fetch_audit(self, *, limit: int = 100, tenant: str | None = None) -> list[AuditLogRow]:
        """The newest `limit` audit entries, newest first."""
        table = schema.audit_log
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(table.c.tenant == tenant)
        return self._read(lambda connection: [_audit_row_of(row) for row in _mappings(connection, query)])

    def fetch_tool_snapshots(self, tenant: str, server: str) -> list[ToolSnapshotRecord]:
        """The latest snapshot and the one before it (when there is one), newest first."""
        table = schema.tool_snapshots
        query = (
            sa.select(table)
            .join(schema.servers, schema.servers.c.id == table.c.server_id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
            .order_by(table.c.taken_at.desc(), table.c.id.desc())
            .limit(2)
        )
        return self._read(
            lambda connection: [
                conversion.snapshot_of(row, tenant=tenant, server=server) for row in _mappings(connection, query)
            ]
        )

    def fetch_probe_states(self, *, tenants: Collection[str] | None = None) -> dict[tuple[str, str], ProbeStateRecord]:
        """Probe state by (tenant, server)."""
        table = schema.server_probe_state
        query = (
            sa.select(table, schema.tenants.c.slug.label("tenant_slug"), schema.servers.c.name.label("server_name"))
            .join(schema.servers, schema.servers.c.id == table.c.server_id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .where(*_slug_filter(tenants))
        )
        return self._read(
            lambda connection: {
                (row["tenant_slug"], row["server_name"]): conversion.probe_state_of(
                    row, tenant=row["tenant_slug"], server=row["server_name"]
                )
                for row in _mappings(connection, query)
            }
        )

    def fetch_user_tokens(self, *, tenant: str, server: str) -> list[UserTokenRecord]:
        """Members' own tokens for one server, oldest first."""
        table = schema.user_tokens
        query = (
            sa.select(table, schema.connections.c.name.label("connection_name"))
            .join(schema.servers, schema.servers.c.id == table.c.server_id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .outerjoin(schema.connections, schema.connections.c.id == table.c.connection_id)
            .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
            .order_by(table.c.id)
        )
        return self._read(
            lambda connection: [
                conversion.user_token_of(row, tenant=tenant, server=server, connection=row["connection_name"])
                for row in _mappings(connection, query)
            ]
        )

    def count_user_tokens(self, *, tenants: Collection[str] | None = None) -> dict[tuple[str, str], int]:
        """How many member tokens each server has, by (tenant, server); servers without tokens are absent."""
        table = schema.user_tokens
        query = (
            sa.select(schema.tenants.c.slug, schema.servers.c.name, sa.func.count(table.c.id))
            .select_from(table)
            .join(schema.servers, schema.servers.c.id == table.c.server_id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .where(*_slug_filter(tenants))
            .group_by(schema.tenants.c.slug, schema.servers.c.name)
        )
        return self._read(lambda connection: {(slug, name): count for slug, name, count in connection.execute(query)})

    def fetch_oauth_clients(self, *, tenant: str, server: str) -> list[OAuthClientRecord]:
        """Dynamically registered clients of one server, one per issuer."""
        table = schema.oauth_clients
        query = (
            sa.select(table)
            .join(schema.servers, schema.servers.c.id == table.c.server_id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
            .order_by(table.c.issuer)
        )
        return self._read(
            lambda connection: [
                _oauth_client_of(row, tenant=tenant, server=server) for row in _mappings(connection, query)
            ]
        )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table as plain dicts, in key order: for tests that look for leaked values."""

        def read_all(connection: sa.Connection) -> dict[str, list[dict[str, Any]]]:
            return {
                table.name: [
                    dict(row) for row in _mappings(connection, sa.select(table).order_by(*table.primary_key.columns))
                ]
                for table in schema.metadata.sorted_tables
            }

        return self._read(read_all)

    def fetch_applied_marker(self, manager: str) -> tuple[int | None, tuple[int, str] | None]:
        """The current change stamp and `manager`'s last recorded (stamp, input digest), if any."""

        def read(connection: sa.Connection) -> tuple[int | None, tuple[int, str] | None]:
            return stamps.read_stamp(connection), stamps.read_marker(connection, manager)

        return self._read(read)

    def fetch_tenant_stamps(self) -> dict[str, int]:
        """Every tenant's change stamp by slug: the global stamp's value at the last write to its managed rows."""
        return self._read(stamps.read_tenant_stamps)

    def _read(self, reader: Callable[[sa.Connection], _T]) -> _T:
        with translated_errors(self._url), self._engine.connect() as connection:
            return reader(connection)

    # -- the runtime's read path (reconciler.runtime); the queries live in lookups.py -----------------------
    # Imported here (the annotations need it at class level) so appending these methods leaves the rest of the
    # module untouched.
    from reconciler.registry import lookups as _lookups

    def find_tenant(self, slug_or_namespace: str) -> TenantRecord | None:
        """The tenant with this slug, else the one whose namespace this is."""
        from reconciler.registry import lookups

        found = self._read(lambda connection: lookups.read_tenant(connection, slug_or_namespace))
        return None if found is None else found[1]

    def fetch_resolution_inputs(
        self,
        slug_or_namespace: str,
        *,
        template: str | None,
        user: str | None = None,
        teams: Collection[str] = (),
    ) -> _lookups.ResolutionInputs | None:
        """What one runtime resolution decides from, in a fixed number of queries; None for an unknown tenant."""
        from reconciler.registry import lookups

        def read(connection: sa.Connection) -> lookups.ResolutionInputs | None:
            # Every round trip waits on the server process (longest on a loaded host): no BEGIN/COMMIT for nothing.
            connection.execution_options(**single_statement_reads(connection.dialect))
            inputs = lookups.read_resolution_inputs(
                connection, slug_or_namespace, template=template, user=user, teams=teams
            )
            # End the read with COMMIT, not the pool's ROLLBACK: psycopg forgets its prepared statements on
            # rollback, and without them PostgreSQL plans every resolution query again (most of its cost).
            # (In autocommit there is nothing to end, and this sends nothing.)
            connection.commit()
            return inputs

        return self._read(read)

    def stored_fingerprint_key(self) -> bytes | None:
        """The fingerprint key if one was ever stored; unlike `fingerprint_key()` it never writes (dry runs)."""
        if self._fingerprint_key is not None:
            return self._fingerprint_key
        stored = self._read(_read_fingerprint_key)
        if stored is not None:
            self._fingerprint_key = bytes.fromhex(stored)
        return self._fingerprint_key

    # -- the local encrypted secret store (reconciler.credentials); the SQL lives in secret_store.py --------------
    from reconciler.registry import secret_store as _secret_store

    def fetch_local_secret(self, tenant: str, name: str, purpose: str) -> _secret_store.SealedSecret | None:
        """One sealed value of the local secret store, or None."""
        from reconciler.registry import secret_store

        return self._read(
            lambda connection: secret_store.read_sealed(connection, tenant=tenant, name=name, purpose=purpose)
        )

    def fetch_local_secrets(self, tenant: str, name: str | None = None) -> list[_secret_store.SealedSecret]:
        """Every sealed value one owner (or a whole tenant) has in the local secret store."""
        from reconciler.registry import secret_store

        return self._read(lambda connection: secret_store.read_sealed_of(connection, tenant=tenant, name=name))

    def database_path(self) -> str | None:
        """The SQLite file this registry lives in (absolute); None for PostgreSQL and in-memory databases."""
        database = self._url.database
        if self.dialect != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return None
        return os.path.abspath(database)


class RegistryTransaction:
    """Writes inside one `Registry.transaction()`; every method issues a fixed number of statements."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection
        self.closed = False

    def fetch_state(self, *, tenants: Collection[str] | None = None) -> ObservedState:
        """`Registry.fetch_state`, seeing this transaction's own writes."""
        return _read_state(self._live(), tenants)

    def ensure_tenants(self, tenants: Iterable[TenantRecord]) -> None:
        """Insert the tenants the registry does not have yet; existing ones are left as they are."""
        wanted = {tenant.slug: tenant for tenant in tenants}
        if not wanted:
            return
        existing = self._tenants(wanted)
        missing = [tenant for slug, tenant in wanted.items() if slug not in existing]
        if missing:
            now = _now()
            self._live().execute(
                sa.insert(schema.tenants),
                [{"slug": tenant.slug, "namespace": tenant.namespace, "created_at": now} for tenant in missing],
            )

    def insert(self, records: Sequence[Record]) -> dict[RowKey, int]:
        """Insert new rows (servers, then connections, grants, bindings) and return their ids by key.

        Name references resolve within the tenant, against rows already stored or inserted in this same
        call; a reference to nothing raises `MissingReference`, an existing key raises `DuplicateRow`.
        """
        if not records:
            return {}
        grouped = _group_by_table(records)
        tenants = self._required_tenants(records)
        tenant_ids = {slug: tenant_id for slug, (tenant_id, _namespace) in tenants.items()}
        scope = sorted(set(tenant_ids.values()))
        existing: dict[Table, NameIds] = {
            table: self._ids_by_name(table, scope)
            for table in _WRITE_ORDER
            if grouped.of(table) or table in ("servers", "connections")
        }
        clashes = [
            key_of(record)
            for table in _WRITE_ORDER
            for record in grouped.of(table)
            if (tenant_ids[record.tenant], record.name) in existing[table]
        ]
        if clashes:
            raise DuplicateRow(f"already in the registry: {_describe_keys(clashes)}")
        known_servers = set(existing["servers"]) | {(tenant_ids[r.tenant], r.name) for r in grouped.servers}
        known_connections = set(existing["connections"]) | {(tenant_ids[r.tenant], r.name) for r in grouped.connections}
        _check_references(grouped, tenants=tenants, known_servers=known_servers, known_connections=known_connections)

        now = _now()
        ids: dict[RowKey, int] = {}
        server_ids = dict(existing["servers"])
        connection_ids = dict(existing["connections"])

        servers = grouped.servers
        new_server_ids = self._insert_returning_ids(
            schema.servers,
            [
                {
                    **conversion.server_values(record),
                    "tenant_id": tenant_ids[record.tenant],
                    "discovery_connection_id": _optional_id(
                        connection_ids, tenant_ids[record.tenant], record.discovery_connection
                    ),
                    "created_at": now,
                    "updated_at": now,
                }
                for record in servers
            ],
        )
        for record, row_id in zip(servers, new_server_ids, strict=True):
            server_ids[(tenant_ids[record.tenant], record.name)] = row_id
            ids[key_of(record)] = row_id

        connections = grouped.connections
        new_connection_ids = self._insert_returning_ids(
            schema.connections,
            [
                {
                    **conversion.connection_values(connection),
                    "tenant_id": tenant_ids[connection.tenant],
                    "server_id": server_ids[(tenant_ids[connection.tenant], connection.server)],
                    "created_at": now,
                    "updated_at": now,
                }
                for connection in connections
            ],
        )
        for connection, row_id in zip(connections, new_connection_ids, strict=True):
            connection_ids[(tenant_ids[connection.tenant], connection.name)] = row_id
            ids[key_of(connection)] = row_id

        # A server may name a connection created in this same call: link it now that the connection exists.
        late_links = [
            {
                "b_row_id": ids[key_of(record)],
                "discovery_connection_id": connection_ids[(tenant_ids[record.tenant], record.discovery_connection)],
            }
            for record in servers
            if record.discovery_connection is not None
            and (tenant_ids[record.tenant], record.discovery_connection) not in existing["connections"]
        ]
        if late_links:
            self._live().execute(
                sa.update(schema.servers).where(schema.servers.c.id == sa.bindparam("b_row_id")), late_links
            )

        grants = grouped.grants
        new_grant_ids = self._insert_returning_ids(
            schema.access_grants,
            [
                {
                    **conversion.grant_values(grant),
                    **_grant_targets(
                        grant, tenant_ids[grant.tenant], server_ids=server_ids, connection_ids=connection_ids
                    ),
                    "tenant_id": tenant_ids[grant.tenant],
                    "created_at": now,
                    "updated_at": now,
                }
                for grant in grants
            ],
        )
        for grant, row_id in zip(grants, new_grant_ids, strict=True):
            ids[key_of(grant)] = row_id
        self._insert_subjects(grants, new_grant_ids)

        bindings = grouped.bindings
        new_binding_ids = self._insert_returning_ids(
            schema.template_bindings,
            [
                {
                    **conversion.binding_values(binding),
                    "tenant_id": tenant_ids[binding.tenant],
                    "created_at": now,
                    "updated_at": now,
                }
                for binding in bindings
            ],
        )
        for binding, row_id in zip(bindings, new_binding_ids, strict=True):
            ids[key_of(binding)] = row_id
        self._insert_bound_servers(
            bindings, new_binding_ids, tenant_ids=tenant_ids, server_ids=server_ids, connection_ids=connection_ids
        )
        return ids

    def update(self, records: Sequence[Record]) -> None:
        """Rewrite rows in place by `row_id`: content and ownership columns, children replaced.

        Ids never change, so nothing hanging off a row (member tokens, snapshots, probe state, OAuth clients)
        is touched. A row that vanished since it was observed raises `ConcurrentChange`.
        """
        if not records:
            return
        grouped = _group_by_table(records)
        unidentified = [key_of(record) for record in records if record.row_id is None]
        if unidentified:
            raise ValueError(f"update needs observed rows (row_id set): {_describe_keys(unidentified)}")
        tenants = self._required_tenants(records)
        tenant_ids = {slug: tenant_id for slug, (tenant_id, _namespace) in tenants.items()}
        scope = sorted(set(tenant_ids.values()))
        server_ids = self._ids_by_name("servers", scope)
        connection_ids = self._ids_by_name("connections", scope)
        _check_references(
            grouped, tenants=tenants, known_servers=set(server_ids), known_connections=set(connection_ids)
        )
        now = _now()

        def common(record: Record) -> dict[str, Any]:
            return {"b_row_id": record.row_id, "tenant_id": tenant_ids[record.tenant], "updated_at": now}

        servers = grouped.servers
        self._update_rows(
            "servers",
            [
                {
                    **conversion.server_values(record),
                    **common(record),
                    "discovery_connection_id": _optional_id(
                        connection_ids, tenant_ids[record.tenant], record.discovery_connection
                    ),
                }
                for record in servers
            ],
        )
        connections = grouped.connections
        self._update_rows(
            "connections",
            [
                {
                    **conversion.connection_values(record),
                    **common(record),
                    "server_id": server_ids[(tenant_ids[record.tenant], record.server)],
                }
                for record in connections
            ],
        )
        grants = grouped.grants
        self._update_rows(
            "grants",
            [
                {
                    **conversion.grant_values(record),
                    **common(record),
                    **_grant_targets(
                        record, tenant_ids[record.tenant], server_ids=server_ids, connection_ids=connection_ids
                    ),
                }
                for record in grants
            ],
        )
        grant_ids = [_row_id(record) for record in grants]
        self._delete_children(schema.access_grant_subjects, schema.access_grant_subjects.c.grant_id, grant_ids)
        self._insert_subjects(grants, grant_ids)

        bindings = grouped.bindings
        self._update_rows(
            "bindings",
            [{**conversion.binding_values(record), **common(record)} for record in bindings],
        )
        binding_ids = [_row_id(record) for record in bindings]
        self._delete_children(
            schema.template_binding_servers, schema.template_binding_servers.c.binding_id, binding_ids
        )
        self._insert_bound_servers(
            bindings, binding_ids, tenant_ids=tenant_ids, server_ids=server_ids, connection_ids=connection_ids
        )

    def delete(self, keys: Sequence[RowKey]) -> None:
        """Delete rows by key, with everything that cascades from them; keys with no row are ignored."""
        if not keys:
            return
        tenant_ids = {slug: tenant_id for slug, (tenant_id, _namespace) in self._tenants({k[1] for k in keys}).items()}
        by_table = _keys_by_table(keys, tenant_ids)
        for table_name in _DELETE_ORDER:
            if by_table[table_name]:
                table = schema.MANAGED_TABLES[table_name]
                self._live().execute(sa.delete(table).where(*_key_match(table)), by_table[table_name])

    def release(self, keys: Sequence[RowKey]) -> None:
        """Stop managing rows without deleting them: ownership is cleared, so they read as hand-made rows."""
        if not keys:
            return
        tenant_ids = {slug: tenant_id for slug, (tenant_id, _namespace) in self._tenants({k[1] for k in keys}).items()}
        by_table = _keys_by_table(keys, tenant_ids)
        now = _now()
        for table_name in _WRITE_ORDER:
            if by_table[table_name]:
                table = schema.MANAGED_TABLES[table_name]
                statement = (
                    sa.update(table)
                    .where(*_key_match(table))
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
                self._live().execute(statement, by_table[table_name])

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries (already masked by the caller), all stamped with the same time."""
        if not entries:
            return
        now = _now()
        self._live().execute(sa.insert(schema.audit_log), [_audit_values(entry, at=now) for entry in entries])

    def put_resources(self, resources: Sequence[ResourceRecord]) -> None:
        """Store applied objects (CLI mode), replacing earlier copies; `created_at` of a copy never changes."""
        if not resources:
            return
        now = _now()
        latest = {(r.kind, r.namespace, r.name): r for r in resources}  # one row per key per statement
        rows = [conversion.resource_values(resource, now=now) for resource in latest.values()]
        table = schema.resources
        statement = self._dialect_insert(table)
        replaced = {
            column.name: statement.excluded[column.name]
            for column in table.columns
            if column.name not in ("id", "kind", "namespace", "name", "created_at")
        }
        self._live().execute(
            statement.on_conflict_do_update(index_elements=["kind", "namespace", "name"], set_=replaced), rows
        )

    def delete_resources(self, ids: Sequence[tuple[str, str, str]]) -> None:
        """Forget stored objects by (kind, namespace, name); unknown ones are ignored."""
        if not ids:
            return
        table = schema.resources
        self._live().execute(
            sa.delete(table).where(
                table.c.kind == sa.bindparam("b_kind"),
                table.c.namespace == sa.bindparam("b_namespace"),
                table.c.name == sa.bindparam("b_name"),
            ),
            [{"b_kind": kind, "b_namespace": namespace, "b_name": name} for kind, namespace, name in ids],
        )

    def put_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace a stored object's status; nothing happens when the object is not stored."""
        table = schema.resources
        self._live().execute(
            sa.update(table)
            .where(table.c.kind == kind, table.c.namespace == namespace, table.c.name == name)
            .values(status=status, updated_at=_now())
        )

    def put_tool_snapshot(self, snapshot: ToolSnapshotRecord) -> None:
        """Record a server's tool list, keeping only it and the previous, different one.

        A snapshot with the same hash as the latest refreshes that row instead, so "previous" keeps meaning
        "the tool set before the last change".
        """
        server_id = self._server_id(snapshot.tenant, snapshot.server, purpose="a tool snapshot")
        table = schema.tool_snapshots
        live = self._live()
        latest = live.execute(
            sa.select(table.c.id, table.c.hash)
            .where(table.c.server_id == server_id)
            .order_by(table.c.taken_at.desc(), table.c.id.desc())
            .limit(1)
        ).first()
        values = conversion.snapshot_values(snapshot)
        if latest is not None and latest.hash == snapshot.hash:
            live.execute(sa.update(table).where(table.c.id == latest.id).values(values))
            return
        live.execute(sa.insert(table).values(server_id=server_id, **values))
        newest_two = (
            sa.select(table.c.id)
            .where(table.c.server_id == server_id)
            .order_by(table.c.taken_at.desc(), table.c.id.desc())
            .limit(2)
        )
        live.execute(sa.delete(table).where(table.c.server_id == server_id, table.c.id.not_in(newest_two)))

    def put_probe_state(self, state: ProbeStateRecord) -> None:
        """Create or replace a server's probe state."""
        server_id = self._server_id(state.tenant, state.server, purpose="probe state")
        table = schema.server_probe_state
        statement = self._dialect_insert(table).values(server_id=server_id, **conversion.probe_state_values(state))
        replaced = {name: statement.excluded[name] for name in conversion.probe_state_values(state)}
        self._live().execute(statement.on_conflict_do_update(index_elements=["server_id"], set_=replaced))

    def put_oauth_client(self, client: OAuthClientRecord) -> int:
        """Create or replace the client registered with `client.issuer` for a server; returns its row id."""
        server_id = self._server_id(client.tenant, client.server, purpose="an OAuth client")
        table = schema.oauth_clients
        values = {
            "client_id": client.client_id,
            "client_secret_ref": client.client_secret_ref,
            "registration_client_uri": client.registration_client_uri,
            "registration_access_token_ref": client.registration_access_token_ref,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "expires_at": client.expires_at,
        }
        statement = self._dialect_insert(table).values(
            server_id=server_id, issuer=client.issuer, created_at=client.created_at or _now(), **values
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["server_id", "issuer"], set_={name: statement.excluded[name] for name in values}
        ).returning(table.c.id)
        return int(self._live().execute(upsert).scalar_one())

    def insert_user_token(self, token: UserTokenRecord) -> int:
        """Store a member's own token reference (what the runtime does when a member connects); returns its id."""
        server_id = self._server_id(token.tenant, token.server, purpose="a user token")
        tenant_id = self._required_tenants_by_slug({token.tenant})[token.tenant][0]
        connection_id = None
        if token.connection is not None:
            connection_id = self._ids_by_name("connections", [tenant_id]).get((tenant_id, token.connection))
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
                created_at=_now(),
                expires_at=token.expires_at,
            )
            .returning(table.c.id)
        )
        return int(self._live().execute(statement).scalar_one())

    def ensure_fingerprint_key(self) -> str:
        """The stored fingerprint key (hex), created if absent; concurrent creators agree on one value."""
        table = schema.registry_meta
        statement = (
            self._dialect_insert(table)
            .values(key=FINGERPRINT_KEY_NAME, value=os.urandom(FINGERPRINT_KEY_BYTES).hex())
            .on_conflict_do_nothing(index_elements=["key"])
        )
        live = self._live()
        live.execute(statement)
        stored = _read_fingerprint_key(live)
        assert stored is not None
        return stored

    # -- helpers -------------------------------------------------------------------------------------------

    def lock_change_stamp(self) -> int | None:
        """The change stamp, held so no other writer can move it before this transaction commits."""
        return stamps.read_stamp(self._live(), lock=True)

    def record_applied(self, manager: str, *, stamp: int, digest: str) -> None:
        """Remember that `manager`'s input with `digest` was fully reconciled at `stamp` (no write if unchanged)."""
        stamps.write_marker(self._live(), manager, stamp=stamp, digest=digest)

    def forget_applied(self, manager: str) -> None:
        stamps.forget_marker(self._live(), manager)

    def _live(self) -> sa.Connection:
        if self.closed:
            raise RuntimeError("this registry transaction has ended")
        return self._connection

    def _dialect_insert(self, table: sa.Table) -> Any:
        """An INSERT supporting ON CONFLICT, which both backends spell the same way."""
        if self._connection.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _tenants(self, slugs: Collection[str]) -> dict[str, tuple[int, str]]:
        """slug → (id, namespace) for the tenants that exist."""
        table = schema.tenants
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(sorted(slugs)):
            rows = self._live().execute(
                sa.select(table.c.id, table.c.slug, table.c.namespace).where(table.c.slug.in_(chunk))
            )
            found.update({row.slug: (row.id, row.namespace) for row in rows})
        return found

    def _required_tenants_by_slug(self, slugs: Collection[str]) -> dict[str, tuple[int, str]]:
        found = self._tenants(slugs)
        missing = sorted(set(slugs) - set(found))
        if missing:
            raise MissingReference(
                [Problem(f"tenant {slug!r} is not in the registry (call ensure_tenants first)") for slug in missing]
            )
        return found

    def _required_tenants(self, records: Sequence[Record]) -> dict[str, tuple[int, str]]:
        return self._required_tenants_by_slug({record.tenant for record in records})

    def _ids_by_name(self, table_name: Table, tenant_ids: Sequence[int]) -> NameIds:
        table = schema.MANAGED_TABLES[table_name]
        ids: NameIds = {}
        for chunk in _chunks(tenant_ids):
            rows = self._live().execute(
                sa.select(table.c.id, table.c.tenant_id, table.c.name).where(table.c.tenant_id.in_(chunk))
            )
            ids.update({(row.tenant_id, row.name): row.id for row in rows})
        return ids

    def _server_id(self, tenant: str, server: str, *, purpose: str) -> int:
        query = (
            sa.select(schema.servers.c.id)
            .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
            .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
        )
        server_id = self._live().execute(query).scalar()
        if server_id is None:
            raise MissingReference(
                [Problem(f"cannot store {purpose}: server {server!r} does not exist in tenant {tenant!r}")]
            )
        return int(server_id)

    def _insert_returning_ids(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        if not rows:
            return []
        result = self._live().execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return [int(row_id) for row_id in result.scalars()]

    def _update_rows(self, table_name: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = schema.MANAGED_TABLES[table_name]
        result = self._live().execute(sa.update(table).where(table.c.id == sa.bindparam("b_row_id")), rows)
        if result.rowcount != len(rows):
            raise ConcurrentChange(
                f"{len(rows) - result.rowcount} of {len(rows)} {table_name} rows to update no longer exist; "
                "observe the registry again"
            )

    def _delete_children(self, table: sa.Table, parent_column: sa.Column[int], parent_ids: Sequence[int]) -> None:
        for chunk in _chunks(parent_ids):
            self._live().execute(sa.delete(table).where(parent_column.in_(chunk)))

    def _insert_subjects(self, grants: Sequence[GrantRecord], grant_ids: Sequence[int]) -> None:
        rows = [
            conversion.subject_values(subject, grant_id=grant_id, position=position)
            for record, grant_id in zip(grants, grant_ids, strict=True)
            for position, subject in enumerate(record.subjects)
        ]
        if rows:
            self._live().execute(sa.insert(schema.access_grant_subjects), rows)

    def _insert_bound_servers(
        self,
        bindings: Sequence[BindingRecord],
        binding_ids: Sequence[int],
        *,
        tenant_ids: Mapping[str, int],
        server_ids: NameIds,
        connection_ids: NameIds,
    ) -> None:
        rows = [
            conversion.bound_server_values(
                bound,
                binding_id=binding_id,
                position=position,
                server_id=server_ids[(tenant_ids[record.tenant], bound.server)],
                connection_id=_optional_id(connection_ids, tenant_ids[record.tenant], bound.connection),
            )
            for record, binding_id in zip(bindings, binding_ids, strict=True)
            for position, bound in enumerate(record.servers)
        ]
        if rows:
            self._live().execute(sa.insert(schema.template_binding_servers), rows)

    # -- the local encrypted secret store and OAuth-client clean-up (reconciler.credentials) ---------------------
    from reconciler.registry import secret_store as _secret_store

    def put_local_secrets(self, secrets: Sequence[_secret_store.SealedSecret]) -> None:
        """Create or replace sealed values by (tenant, name, purpose)."""
        from reconciler.registry import secret_store

        secret_store.write_sealed(self._live(), secrets, now=_now())

    def fetch_local_secret(self, tenant: str, name: str, purpose: str) -> _secret_store.SealedSecret | None:
        """`Registry.fetch_local_secret`, seeing this transaction's own writes."""
        from reconciler.registry import secret_store

        return secret_store.read_sealed(self._live(), tenant=tenant, name=name, purpose=purpose)

    def delete_local_secrets(self, tenant: str, name: str, purposes: Collection[str] | None = None) -> int:
        """Delete an owner's sealed values (all, or only `purposes`); returns how many were deleted."""
        from reconciler.registry import secret_store

        return secret_store.delete_sealed(self._live(), tenant=tenant, name=name, purposes=purposes)

    def delete_oauth_client(self, tenant: str, server: str, issuer: str) -> bool:
        """Forget the client a server registered with `issuer`; False when there was none."""
        from reconciler.registry import secret_store

        return secret_store.delete_oauth_client(self._live(), tenant=tenant, server=server, issuer=issuer)


# -- reading -------------------------------------------------------------------------------------------------


def _mappings(connection: sa.Connection, query: sa.Executable) -> Sequence[sa.RowMapping]:
    return connection.execute(query).mappings().all()


def _slug_filter(tenants: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    return [] if tenants is None else [schema.tenants.c.slug.in_(sorted(tenants))]


def _tenant_scope(table: sa.Table, tenants: Collection[str] | None) -> list[sa.ColumnElement[bool]]:
    if tenants is None:
        return []
    return [table.c.tenant_id.in_(sa.select(schema.tenants.c.id).where(*_slug_filter(tenants)))]


def _read_state(connection: sa.Connection, tenants: Collection[str] | None) -> ObservedState:
    """Seven queries: tenants, the four tables, grant subjects and bound servers (children in stored order)."""
    tenant_rows = _mappings(connection, sa.select(schema.tenants).where(*_slug_filter(tenants)))
    slug_of = {row["id"]: row["slug"] for row in tenant_rows}
    state = ObservedState(tenants={row["slug"]: TenantRecord(row["slug"], row["namespace"]) for row in tenant_rows})

    def rows_of(table: sa.Table) -> Sequence[sa.RowMapping]:
        return _mappings(connection, sa.select(table).where(*_tenant_scope(table, tenants)).order_by(table.c.id))

    server_rows = rows_of(schema.servers)
    connection_rows = rows_of(schema.connections)
    grant_rows = rows_of(schema.access_grants)
    binding_rows = rows_of(schema.template_bindings)
    server_names = {row["id"]: row["name"] for row in server_rows}
    connection_names = {row["id"]: row["name"] for row in connection_rows}

    subjects = schema.access_grant_subjects
    subjects_of: dict[int, list[GrantSubjectRecord]] = defaultdict(list)
    subject_query = (
        sa.select(subjects)
        .join(schema.access_grants, schema.access_grants.c.id == subjects.c.grant_id)
        .where(*_tenant_scope(schema.access_grants, tenants))
        .order_by(subjects.c.grant_id, subjects.c.position, subjects.c.id)
    )
    for row in _mappings(connection, subject_query):
        subjects_of[row["grant_id"]].append(conversion.subject_of(row))

    bound = schema.template_binding_servers
    bound_of: dict[int, list[BoundServerRecord]] = defaultdict(list)
    bound_query = (
        sa.select(bound)
        .join(schema.template_bindings, schema.template_bindings.c.id == bound.c.binding_id)
        .where(*_tenant_scope(schema.template_bindings, tenants))
        .order_by(bound.c.binding_id, bound.c.position, bound.c.id)
    )
    for row in _mappings(connection, bound_query):
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
        )
        for row in binding_rows
    )
    state.rows = {key_of(record): record for record in records}
    return state


def _read_fingerprint_key(connection: sa.Connection) -> str | None:
    table = schema.registry_meta
    value = connection.execute(sa.select(table.c.value).where(table.c.key == FINGERPRINT_KEY_NAME)).scalar()
    return None if value is None else str(value)


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


# -- writing helpers -----------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), IN_LIST_CHUNK):
        yield items[start : start + IN_LIST_CHUNK]


def _row_id(record: Record) -> int:
    assert record.row_id is not None
    return record.row_id


def _name_or_none(names: Mapping[int, str], row_id: int | None) -> str | None:
    return None if row_id is None else names.get(row_id)


def _optional_id(ids: NameIds, tenant_id: int, name: str | None) -> int | None:
    return None if name is None else ids.get((tenant_id, name))


def _grant_targets(
    record: GrantRecord, tenant_id: int, *, server_ids: NameIds, connection_ids: NameIds
) -> dict[str, Any]:
    return {
        "target_server_id": _optional_id(server_ids, tenant_id, record.target_server),
        "target_connection_id": _optional_id(connection_ids, tenant_id, record.target_connection),
    }


@dataclass
class _Batch:
    """Records of one write call, split by table in write order."""

    servers: list[ServerRecord] = field(default_factory=list)
    connections: list[ConnectionRecord] = field(default_factory=list)
    grants: list[GrantRecord] = field(default_factory=list)
    bindings: list[BindingRecord] = field(default_factory=list)

    def of(self, table: Table) -> Sequence[Record]:
        batches: dict[Table, Sequence[Record]] = {
            "servers": self.servers,
            "connections": self.connections,
            "grants": self.grants,
            "bindings": self.bindings,
        }
        return batches[table]


def _group_by_table(records: Sequence[Record]) -> _Batch:
    """Records by table; the same key twice in one batch is a caller error the database would reject anyway."""
    batch = _Batch()
    seen: set[RowKey] = set()
    repeated: list[RowKey] = []
    for record in records:
        key = key_of(record)
        if key in seen:
            repeated.append(key)
        seen.add(key)
        if isinstance(record, ServerRecord):
            batch.servers.append(record)
        elif isinstance(record, ConnectionRecord):
            batch.connections.append(record)
        elif isinstance(record, GrantRecord):
            batch.grants.append(record)
        elif isinstance(record, BindingRecord):
            batch.bindings.append(record)
        else:
            raise TypeError(f"not a registry record: {type(record).__name__}")
    if repeated:
        raise DuplicateRow(f"the same row is written twice in one batch: {_describe_keys(repeated)}")
    return batch


def _keys_by_table(keys: Sequence[RowKey], tenant_ids: Mapping[str, int]) -> dict[Table, list[dict[str, Any]]]:
    by_table: dict[Table, list[dict[str, Any]]] = {table: [] for table in TABLES}
    for table, tenant, name in dict.fromkeys(keys):
        if tenant in tenant_ids:
            by_table[table].append({"b_tenant_id": tenant_ids[tenant], "b_name": name})
    return by_table


def _key_match(table: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [table.c.tenant_id == sa.bindparam("b_tenant_id"), table.c.name == sa.bindparam("b_name")]


def _describe_keys(keys: Sequence[RowKey]) -> str:
    described = ", ".join(f"{table} {tenant}/{name}" for table, tenant, name in keys[:_DESCRIBED_KEYS])
    more = len(keys) - _DESCRIBED_KEYS
    return described + (f" and {more} more" if more > 0 else "")


def _check_references(
    grouped: _Batch,
    *,
    tenants: Mapping[str, tuple[int, str]],
    known_servers: Collection[tuple[int, str]],
    known_connections: Collection[tuple[int, str]],
) -> None:
    """Every name reference must resolve within its tenant; report all the dangling ones at once."""
    problems: list[Problem] = []

    def check(record: Record, *, what: str, target: str | None, path: str) -> None:
        if target is None:
            return
        tenant_id, namespace = tenants[record.tenant]
        known = known_servers if what == "server" else known_connections
        if (tenant_id, target) in known:
            return
        source = record.ownership.source
        problems.append(
            Problem(
                f"{what} {target!r} does not exist in tenant {record.tenant!r}",
                kind=source.kind if source else KIND_OF_TABLE[table_of(record)],
                namespace=source.namespace if source else namespace,
                name=source.name if source else record.name,
                field=path,
            )
        )

    for server in grouped.servers:
        check(server, what="connection", target=server.discovery_connection, path="discovery_connection")
    for connection in grouped.connections:
        check(connection, what="server", target=connection.server, path="server")
    for grant in grouped.grants:
        check(grant, what="server", target=grant.target_server, path="target_server")
        check(grant, what="connection", target=grant.target_connection, path="target_connection")
    for binding in grouped.bindings:
        for position, bound in enumerate(binding.servers):
            check(binding, what="server", target=bound.server, path=f"servers[{position}].server")
            check(binding, what="connection", target=bound.connection, path=f"servers[{position}].connection")
    if problems:
        raise MissingReference(problems)
