"""The registry API: open a database, read what is there, and write records in one transaction.

The engine (apply, observe), the probe (snapshots, probe state), the credentials package (OAuth clients), the
runtime resolution API and the CLI call this module; nothing else in the product speaks SQL. It is a facade:
`Registry` and `RegistryTransaction` keep the public methods, their transactions and error translation, and hand the
SQL to modules split by concern: `reading.py` (state and per-server reads), `writing.py` (the one table-spec-driven
write path of the managed tables), `recording.py` (tenants, audit, stored objects, per-server rows), `lookups.py` (the
runtime's reads), `secret_store.py` and `stamps.py`. Reads return the record types of `records.py` with names, never
ids; writes take records and resolve names to ids themselves, batched per table, so the cost of a call grows with the
rows it touches, never with one query per row. Driver errors surface as the domain errors of `errors.py`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

from reconciler.records import OAuthClientRecord, SealedKey, SealedSecret
from reconciler.registry import catalog, lookups, member_tokens, reading, recording, secret_store, stamps, writing
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
from reconciler.registry.errors import ConcurrentChange
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.registry.migrating import stored_revision, upgrade_registry
from reconciler.registry.records import (
    AuditEntry,
    MemberTokenTally,
    ObservedState,
    ProbeStateRecord,
    Record,
    RefreshableMemberToken,
    ResourceRecord,
    RowKey,
    RowSelection,
    TenantRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
)
from reconciler.registry.rows import AuditLogRow

__all__ = [
    "DEFAULT_MANAGER",
    "DEFAULT_REGISTRY_URL",
    "REGISTRY_URL_ENV",
    "Registry",
    "RegistryTransaction",
    "open_registry",
    "open_registry_if_present",
    "resolve_registry_url",
]

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


def open_registry_if_present(url: str | None = None, *, manager: str = DEFAULT_MANAGER) -> Registry | None:
    """`open_registry` for a caller that must not create one: None when there is no registry there yet (no SQLite
    file, or a database without the registry's schema), and nothing is created or migrated in that case.

    Test Connection on a server nobody applied calls this, so trying a server out leaves no database behind.
    """
    parsed = parse_registry_url(resolve_registry_url(url))
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and (
        not database or database == ":memory:" or (not database.startswith("file:") and not os.path.exists(database))
    ):
        return None
    check_sqlite_file(parsed)
    engine = create_registry_engine(parsed)
    try:
        with translated_errors(parsed):
            present = stored_revision(engine) is not None
    finally:
        engine.dispose()
    return open_registry(url, manager=manager) if present else None


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

    def fingerprint_key(self, *, proposed: bytes | None = None) -> bytes:
        """This registry's key for fingerprinting secrets: random, created on first use, stable afterwards.

        `proposed` is the key to store if none is yet (a caller that already fingerprinted with it can keep its
        work when it wins); a concurrent creator may win instead, so the caller compares what comes back."""
        if self._fingerprint_key is None:
            stored = self._read(reading.read_fingerprint_key)
            if stored is None:
                with self.transaction() as transaction:
                    stored = transaction.ensure_fingerprint_key(proposed=proposed)
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

    def fetch_state(self, *, tenants: Collection[str] | None = None, only: RowSelection | None = None) -> ObservedState:
        """Every row of the four managed tables (owned or not) as records with `row_id` and `ownership`, in a fixed
        number of queries; of `tenants` only, or only the rows a few objects' pass consults (`only`: `RowSelection`)."""
        return self._read(lambda connection: reading.read_state(connection, tenants, only))

    def fetch_resources(
        self,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        tenants: Collection[str] | None = None,
    ) -> list[ResourceRecord]:
        """The stored copies of applied objects; `tenants` limits them to those slugs."""
        return self._read(
            lambda connection: reading.resources(connection, kind=kind, namespace=namespace, name=name, tenants=tenants)
        )

    def fetch_audit(self, *, limit: int = 100, tenant: str | None = None) -> list[AuditLogRow]:
        """The newest `limit` audit entries, newest first."""
        return self._read(lambda connection: reading.audit(connection, limit=limit, tenant=tenant))

    def fetch_tool_snapshots(self, tenant: str, server: str) -> list[ToolSnapshotRecord]:
        """The latest snapshot and the one before it (when there is one), newest first."""
        return self._read(lambda connection: reading.tool_snapshots(connection, tenant=tenant, server=server))

    def fetch_probe_states(
        self, *, tenants: Collection[str] | None = None, servers: Collection[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str], ProbeStateRecord]:
        """Probe state by (tenant, server) of `tenants` (None: all), or of just `servers` among them."""
        return self._read(lambda connection: reading.probe_states(connection, tenants=tenants, servers=servers))

    def fetch_user_tokens(self, *, tenant: str, server: str) -> list[UserTokenRecord]:
        """Members' own tokens for one server, oldest first."""
        return self._read(lambda connection: reading.user_tokens(connection, tenant=tenant, server=server))

    def count_user_tokens(self, *, tenants: Collection[str] | None = None) -> dict[tuple[str, str], int]:
        """How many member tokens each server has, by (tenant, server); servers without tokens are absent."""
        return self._read(lambda connection: reading.user_token_counts(connection, tenants=tenants))

    def count_connected_members(
        self, *, tenants: Collection[str] | None = None
    ) -> dict[tuple[str, str, str | None], int]:
        """How many distinct members stored their own token, by (tenant, server, connection); the connection is
        None for tokens of the server itself. Pairs nobody connected are absent."""
        return self._read(lambda connection: reading.connected_member_counts(connection, tenants=tenants))

    def tally_member_tokens(
        self, servers: Collection[tuple[str, str]], *, now: dt.datetime, horizon: dt.datetime
    ) -> dict[tuple[str, str], MemberTokenTally]:
        """Members' tokens of `servers` ((tenant, server) pairs) counted at `now` in one grouped query: connected,
        expiring by `horizon`, needing re-authorization, without a refresh token. Servers without tokens are
        absent."""
        return self._read(
            lambda connection: reading.member_token_tallies(connection, servers, now=now, horizon=horizon)
        )

    def fetch_oauth_clients(self, *, tenant: str, server: str) -> list[OAuthClientRecord]:
        """Dynamically registered clients of one server, one per issuer."""
        return self._read(lambda connection: reading.oauth_clients(connection, tenant=tenant, server=server))

    def fetch_catalog(self) -> list[catalog.CatalogRow]:
        """Every server with its timestamps, latest tool snapshot and probe state: what the Registry API serves."""
        return self._read(catalog.read_catalog)

    def fetch_removed_servers(self, *, since: dt.datetime | None = None) -> list[catalog.RemovedServer]:
        """Servers deleted or orphaned after `since`, from the audit log (the rows themselves are gone)."""
        return self._read(lambda connection: catalog.read_removed_servers(connection, since=since))

    def fetch_published_client_keys(self, *, tenant: str) -> list[dict[str, Any]]:
        """The public halves (JWKs) of the client-assertion keys of `tenant`'s servers that use its CIMD client:
        what `serve` publishes as that client's JWKS. Public keys only; the registry holds no private key."""
        return self._read(lambda connection: reading.published_client_keys(connection, tenant=tenant))

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table as plain dicts, in key order: for tests that look for leaked values."""
        return self._read(reading.every_row)

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

    def find_tenant(self, slug_or_namespace: str) -> TenantRecord | None:
        """The tenant with this slug, else the one whose namespace this is."""
        found = self._read(lambda connection: lookups.read_tenant(connection, slug_or_namespace))
        return None if found is None else found[1]

    def fetch_resolution_inputs(
        self,
        slug_or_namespace: str,
        *,
        template: str | None,
        user: str | None = None,
        teams: Collection[str] = (),
    ) -> lookups.ResolutionInputs | None:
        """What one runtime resolution decides from, in a fixed number of queries; None for an unknown tenant."""

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
        stored = self._read(reading.read_fingerprint_key)
        if stored is not None:
            self._fingerprint_key = bytes.fromhex(stored)
        return self._fingerprint_key

    # -- the local encrypted secret store (reconciler.credentials); the SQL lives in secret_store.py --------------

    def fetch_local_secret(self, tenant: str, name: str, purpose: str) -> SealedSecret | None:
        """One sealed value of the local secret store, or None."""
        return self._read(
            lambda connection: secret_store.read_sealed(connection, tenant=tenant, name=name, purpose=purpose)
        )

    def fetch_local_secrets(self, tenant: str, name: str | None = None) -> list[SealedSecret]:
        """Every sealed value one owner (or a whole tenant) has in the local secret store."""
        return self._read(lambda connection: secret_store.read_sealed_of(connection, tenant=tenant, name=name))

    def fetch_local_secrets_by_key(self, keys: Collection[SealedKey]) -> dict[SealedKey, SealedSecret]:
        """Many sealed values by (tenant, name, purpose), in one query: a bulk renewal reads its batch at once."""
        return self._read(lambda connection: secret_store.read_sealed_many(connection, keys))

    # -- members' tokens: the runtime's refresh (reconciler.runtime.renewing) -----------------------------------

    def fetch_member_token(self, row_id: int) -> UserTokenRecord | None:
        """One member token row by id (what a refresher and its waiters re-read); None once it is gone."""
        return self._read(lambda connection: member_tokens.fetch_member_token(connection, row_id))

    def fetch_refreshable_member_tokens(
        self, *, tenants: Collection[str] | None = None, namespaces: Collection[str] | None = None
    ) -> list[RefreshableMemberToken]:
        """Every member token with a refresh token (of `tenants` and `namespaces`, or all) and its server's URL and
        network switch."""
        slugs = None if tenants is None else sorted(tenants)
        spaces = None if namespaces is None else sorted(namespaces)
        return self._read(
            lambda connection: member_tokens.refreshable_tokens(connection, tenants=slugs, namespaces=spaces)
        )

    def claim_token_refresh(
        self,
        row_id: int,
        *,
        holder: str,
        seen_expires_at: dt.datetime | None,
        lease: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> bool:
        """Compare-and-set: True when `holder` now holds the refresh lease of the row until `now + lease`.

        Only one of many concurrent callers gets True: the lease must be free (or run out) and the row must still
        expire at `seen_expires_at`, so a caller that read the token before someone else renewed it gets False
        and re-reads instead of refreshing again."""
        moment = now or _now()
        with self.transaction() as transaction:
            return member_tokens.claim_refresh(
                transaction._live(),
                row_id,
                holder=holder,
                seen_expires_at=seen_expires_at,
                now=moment,
                until=moment + lease,
            )

    def claim_token_refreshes(
        self,
        seen: Mapping[int, dt.datetime],
        *,
        holder: str,
        lease: dt.timedelta,
        now: dt.datetime | None = None,
    ) -> set[int]:
        """`claim_token_refresh` for a batch, in one transaction of two statements: the ids of `seen` (row id → the
        expiry the caller read) that `holder` now holds until `now + lease`."""
        moment = now or _now()
        with self.transaction() as transaction:
            return member_tokens.claim_refreshes(
                transaction._live(), seen, holder=holder, now=moment, until=moment + lease
            )

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

    def fetch_state(self, *, tenants: Collection[str] | None = None, only: RowSelection | None = None) -> ObservedState:
        """`Registry.fetch_state`, seeing this transaction's own writes."""
        return reading.read_state(self._live(), tenants, only)

    def ensure_tenants(self, tenants: Iterable[TenantRecord]) -> None:
        """Insert the tenants the registry does not have yet; existing ones are left as they are."""
        recording.ensure_tenants(self._live(), tenants, now=_now())

    def insert(self, records: Sequence[Record]) -> dict[RowKey, int]:
        """Insert new rows (servers, then connections, grants, bindings) and return their ids by key.

        Name references resolve within the tenant, against rows already stored or inserted in this same
        call; a reference to nothing raises `MissingReference`, an existing key raises `DuplicateRow`.
        """
        if not records:
            return {}
        return writing.insert(self._live(), records, now=_now())

    def update(self, records: Sequence[Record]) -> None:
        """Rewrite rows in place by `row_id`: content and ownership columns, children replaced.

        Ids never change, so nothing hanging off a row (member tokens, snapshots, probe state, OAuth clients)
        is touched. A row that vanished since it was observed raises `ConcurrentChange`.
        """
        if records:
            writing.update(self._live(), records, now=_now())

    def delete(self, keys: Sequence[RowKey]) -> None:
        """Delete rows by key, with everything that cascades from them; keys with no row are ignored."""
        if keys:
            writing.delete(self._live(), keys)

    def release(self, keys: Sequence[RowKey]) -> None:
        """Stop managing rows without deleting them: ownership is cleared, so they read as hand-made rows."""
        if keys:
            writing.release(self._live(), keys, now=_now())

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries (already masked by the caller), all stamped with the same time."""
        if entries:
            recording.audit(self._live(), entries, now=_now())

    def put_resources(self, resources: Sequence[ResourceRecord]) -> None:
        """Store applied objects (CLI mode), replacing earlier copies; `created_at` of a copy never changes."""
        if resources:
            recording.put_resources(self._live(), resources, now=_now())

    def delete_resources(self, ids: Sequence[tuple[str, str, str]]) -> None:
        """Forget stored objects by (kind, namespace, name); unknown ones are ignored."""
        if ids:
            recording.delete_resources(self._live(), ids)

    def change_status(self, kind: str, namespace: str, name: str, change: recording.StatusChange) -> bool:
        """Rewrite a stored object's status as `change` (current status → new) says, read and written under the
        row's lock, so a concurrent writer's status is never lost; False when unchanged or the object is absent."""
        return recording.change_status(self._live(), kind, namespace, name, change, now=_now())

    def put_tool_snapshot(self, snapshot: ToolSnapshotRecord) -> None:
        """Record a server's tool list, keeping only it and the previous, different one.

        A snapshot with the same hash as the latest refreshes that row instead, so "previous" keeps meaning
        "the tool set before the last change".
        """
        recording.put_tool_snapshot(self._live(), snapshot)

    def put_probe_state(self, state: ProbeStateRecord) -> None:
        """Create or replace a server's probe state."""
        recording.put_probe_state(self._live(), state)

    def put_oauth_client(self, client: OAuthClientRecord) -> int:
        """Create or replace the client registered with `client.issuer` for a server; returns its row id."""
        return recording.put_oauth_client(self._live(), client, now=_now())

    def insert_user_token(self, token: UserTokenRecord) -> int:
        """Store a member's own token reference (what the runtime does when a member connects); returns its id."""
        return recording.insert_user_token(self._live(), token, now=_now())

    def delete_user_tokens(self, *, tenant: str, server: str, user_id: str, connection: str | None = None) -> int:
        """Forget a member's own token rows for a server, or for its `connection` (a reconnect replaces them, a
        disconnect ends them)."""
        return recording.delete_user_tokens(
            self._live(), tenant=tenant, server=server, user_id=user_id, through=connection
        )

    def put_member_token(self, token: UserTokenRecord) -> int:
        """Store a member's token set (the references of access and refresh token, issued/expiry, client,
        issuer, scopes), replacing the member's earlier row for the same server and connection in place."""
        return member_tokens.put_member_token(self._live(), token, now=_now())

    def store_refreshed_token(
        self,
        row_id: int,
        *,
        holder: str,
        secret_ref: str,
        expires_at: dt.datetime | None,
        issued_at: dt.datetime,
        refresh_token_ref: str | None,
        scopes: Sequence[str] = (),
    ) -> None:
        """Record a renewed token and release the lease; `ConcurrentChange` (rolling back the transaction, the
        sealed values with it) when `holder` no longer holds the lease."""
        stored = member_tokens.store_refreshed(
            self._live(),
            row_id,
            holder=holder,
            secret_ref=secret_ref,
            expires_at=expires_at,
            issued_at=issued_at,
            refresh_token_ref=refresh_token_ref,
            scopes=tuple(scopes),
        )
        if not stored:
            raise ConcurrentChange(f"member token {row_id}: the refresh lease was taken over before the refresh stored")

    def release_token_refresh(self, row_id: int, *, holder: str, forget_refresh_token: bool = False) -> bool:
        """Give the refresh lease back after a failed refresh; `forget_refresh_token` when the authorization server
        refused the refresh token for good (`invalid_grant`). False when the lease was not `holder`'s."""
        return member_tokens.release_refresh(
            self._live(), row_id, holder=holder, forget_refresh_token=forget_refresh_token
        )

    def store_refreshed_tokens(self, tokens: Sequence[UserTokenRecord], *, holder: str) -> set[int]:
        """Record renewed tokens (`row_id` and the new facts) and release their leases, for the rows `holder` still
        holds (locked until the transaction ends); returns their ids. The caller seals values only for those."""
        return member_tokens.store_refreshed_many(self._live(), tokens, holder=holder)

    def release_token_refreshes(self, row_ids: Collection[int], *, holder: str) -> int:
        """Give back the leases `holder` holds on `row_ids` (refreshes that failed or were never sent)."""
        return member_tokens.release_refreshes(self._live(), row_ids, holder=holder)

    def ensure_fingerprint_key(self, *, proposed: bytes | None = None) -> str:
        """The stored fingerprint key (hex), created (as `proposed`, if given) when absent; concurrent creators
        agree on one value."""
        return recording.ensure_fingerprint_key(self._live(), proposed=proposed)

    def lock_change_stamp(self) -> int | None:
        """The change stamp, held so no other writer can move it before this transaction commits."""
        return stamps.read_stamp(self._live(), lock=True)

    def record_applied(self, manager: str, *, stamp: int, digest: str) -> None:
        """Remember that `manager`'s input with `digest` was fully reconciled at `stamp` (no write if unchanged)."""
        stamps.write_marker(self._live(), manager, stamp=stamp, digest=digest)

    def forget_applied(self, manager: str) -> None:
        stamps.forget_marker(self._live(), manager)

    # -- the local encrypted secret store and OAuth-client clean-up (reconciler.credentials) ---------------------

    def put_local_secrets(self, secrets: Sequence[SealedSecret]) -> None:
        """Create or replace sealed values by (tenant, name, purpose)."""
        secret_store.write_sealed(self._live(), secrets, now=_now())

    def fetch_local_secret(self, tenant: str, name: str, purpose: str) -> SealedSecret | None:
        """`Registry.fetch_local_secret`, seeing this transaction's own writes."""
        return secret_store.read_sealed(self._live(), tenant=tenant, name=name, purpose=purpose)

    def delete_local_secrets(self, tenant: str, name: str, purposes: Collection[str] | None = None) -> int:
        """Delete an owner's sealed values (all, or only `purposes`); returns how many were deleted."""
        return secret_store.delete_sealed(self._live(), tenant=tenant, name=name, purposes=purposes)

    def delete_oauth_client(self, tenant: str, server: str, issuer: str) -> bool:
        """Forget the client a server registered with `issuer`; False when there was none."""
        return secret_store.delete_oauth_client(self._live(), tenant=tenant, server=server, issuer=issuer)

    def _live(self) -> sa.Connection:
        if self.closed:
            raise RuntimeError("this registry transaction has ended")
        return self._connection


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
