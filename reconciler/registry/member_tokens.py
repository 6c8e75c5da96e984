"""The runtime's writes to `user_tokens`: storing a member's token set, and the lease that makes refresh single-flight.

Called through `Registry` / `RegistryTransaction` by `reconciler.runtime.renewing`. The values themselves are
sealed elsewhere (the local secret store); a row holds only their references. A refresh is claimed by one
compare-and-set UPDATE: it succeeds only while nobody holds an unexpired lease *and* the row still carries the
expiry the claimant read, so a caller with a stale view never refreshes a token someone else just renewed. The
holder's later writes are guarded by its holder id, so a refresher whose lease ran out and was taken over
cannot overwrite the newer token. `writing.delete` calls `delete_sealed_values` so that deleting a server or a
connection takes its members' sealed tokens with the rows that cascade.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from reconciler.registry import conversion, row_ids, schema
from reconciler.registry.recording import insert_user_token
from reconciler.registry.records import RefreshableMemberToken, UserTokenRecord


def fetch_member_token(connection: sa.Connection, row_id: int) -> UserTokenRecord | None:
    """One token row by id, with its tenant, server and connection names; None once it is gone."""
    table = schema.user_tokens
    query = (
        sa.select(
            table,
            schema.tenants.c.slug.label("tenant_slug"),
            schema.servers.c.name.label("server_name"),
            schema.connections.c.name.label("connection_name"),
        )
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .outerjoin(schema.connections, schema.connections.c.id == table.c.connection_id)
        .where(table.c.id == row_id)
    )
    row = connection.execute(query).mappings().first()
    if row is None:
        return None
    return conversion.user_token_of(
        row, tenant=row["tenant_slug"], server=row["server_name"], connection=row["connection_name"]
    )


def put_member_token(connection: sa.Connection, token: UserTokenRecord, *, now: dt.datetime) -> int:
    """Create or replace the member's row for (server, member, connection) in place (same id); returns the id."""
    tenant_id = row_ids.required_tenants(connection, {token.tenant})[token.tenant][0]
    server_id = row_ids.server_id(connection, token.tenant, token.server, purpose="a user token")
    table = schema.user_tokens
    query = sa.select(table.c.id).where(table.c.server_id == server_id, table.c.user_id == token.user_id)
    if token.connection is None:
        query = query.where(table.c.connection_id.is_(None))
    else:
        query = query.join(schema.connections, schema.connections.c.id == table.c.connection_id).where(
            schema.connections.c.tenant_id == tenant_id, schema.connections.c.name == token.connection
        )
    existing = connection.execute(query).scalar_one_or_none()
    if existing is None:
        return insert_user_token(connection, token, now=now)
    connection.execute(
        sa.update(table)
        .where(table.c.id == existing)
        .values(
            secret_ref=token.secret_ref,
            value_keys=list(token.value_keys),
            expires_at=token.expires_at,
            refresh_token_ref=token.refresh_token_ref,
            issued_at=token.issued_at,
            client_id=token.client_id,
            issuer=token.issuer,
            scopes=list(token.scopes),
            refresh_lease_holder=None,
            refresh_lease_until=None,
        )
    )
    return int(existing)


def claim_refresh(
    connection: sa.Connection,
    row_id: int,
    *,
    holder: str,
    seen_expires_at: dt.datetime | None,
    now: dt.datetime,
    until: dt.datetime,
) -> bool:
    """Take the refresh lease if it is free (or ran out) and the row still expires when the caller saw it."""
    table = schema.user_tokens
    statement = (
        sa.update(table)
        .where(
            table.c.id == row_id,
            table.c.expires_at.is_not_distinct_from(seen_expires_at),
            sa.or_(table.c.refresh_lease_until.is_(None), table.c.refresh_lease_until <= now),
        )
        .values(refresh_lease_holder=holder, refresh_lease_until=until)
    )
    return connection.execute(statement).rowcount == 1


def claim_refreshes(
    connection: sa.Connection,
    seen: Mapping[int, dt.datetime],
    *,
    holder: str,
    now: dt.datetime,
    until: dt.datetime,
) -> set[int]:
    """`claim_refresh` for many rows: each row is taken only if its lease is free (or ran out) and it still expires
    when the caller saw it (`seen`: row id → expiry). Returns the ids `holder` now holds.

    The free rows are selected and locked first, then leased. On PostgreSQL, rows another claimant is locking are
    skipped rather than waited for (they are being claimed by someone), so racing batches never wait on each
    other or deadlock; SQLite's writer holds the whole database anyway."""
    if not seen:
        return set()
    table = schema.user_tokens
    free = sa.select(table.c.id).where(
        sa.tuple_(table.c.id, table.c.expires_at).in_(sorted(seen.items())),
        sa.or_(table.c.refresh_lease_until.is_(None), table.c.refresh_lease_until <= now),
    )
    if connection.dialect.name == "postgresql":
        free = free.order_by(table.c.id).with_for_update(skip_locked=True)
    claimed = {int(row_id) for row_id in connection.execute(free).scalars()}
    if claimed:
        connection.execute(
            sa.update(table)
            .where(table.c.id.in_(sorted(claimed)))
            .values(refresh_lease_holder=holder, refresh_lease_until=until)
        )
    return claimed


def store_refreshed_many(connection: sa.Connection, tokens: Sequence[UserTokenRecord], *, holder: str) -> set[int]:
    """`store_refreshed` for many rows: the renewed facts of every row `holder` still holds, with their leases
    released, in two statements. The held rows are locked first (PostgreSQL; SQLite's writer already holds the
    database), so no claimant can take one between the check and the write. Returns the ids stored."""
    if not tokens:
        return set()
    table = schema.user_tokens
    check = sa.select(table.c.id).where(
        table.c.id.in_([token.row_id for token in tokens]), table.c.refresh_lease_holder == holder
    )
    if connection.dialect.name == "postgresql":
        check = check.with_for_update()
    held = {int(row_id) for row_id in connection.execute(check).scalars()}
    rows = [
        {
            "b_id": token.row_id,
            "secret_ref": token.secret_ref,
            "expires_at": token.expires_at,
            "issued_at": token.issued_at,
            "refresh_token_ref": token.refresh_token_ref,
            "scopes": list(token.scopes),
        }
        for token in tokens
        if token.row_id in held
    ]
    if rows:
        connection.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values(
                secret_ref=sa.bindparam("secret_ref"),
                expires_at=sa.bindparam("expires_at"),
                issued_at=sa.bindparam("issued_at"),
                refresh_token_ref=sa.bindparam("refresh_token_ref"),
                scopes=sa.bindparam("scopes"),
                refresh_lease_holder=None,
                refresh_lease_until=None,
            ),
            rows,
        )
    return held


def release_refreshes(connection: sa.Connection, row_ids: Collection[int], *, holder: str) -> int:
    """Give back the leases `holder` holds on `row_ids` (refreshes that failed or were never sent); how many."""
    if not row_ids:
        return 0
    table = schema.user_tokens
    statement = (
        sa.update(table)
        .where(table.c.id.in_(sorted(row_ids)), table.c.refresh_lease_holder == holder)
        .values(refresh_lease_holder=None, refresh_lease_until=None)
    )
    return int(connection.execute(statement).rowcount)


def store_refreshed(
    connection: sa.Connection,
    row_id: int,
    *,
    holder: str,
    secret_ref: str,
    expires_at: dt.datetime | None,
    issued_at: dt.datetime,
    refresh_token_ref: str | None,
    scopes: tuple[str, ...],
) -> bool:
    """The holder's renewed token facts, with the lease released; False when the lease is no longer its own."""
    table = schema.user_tokens
    statement = (
        sa.update(table)
        .where(table.c.id == row_id, table.c.refresh_lease_holder == holder)
        .values(
            secret_ref=secret_ref,
            expires_at=expires_at,
            issued_at=issued_at,
            refresh_token_ref=refresh_token_ref,
            scopes=list(scopes),
            refresh_lease_holder=None,
            refresh_lease_until=None,
        )
    )
    return connection.execute(statement).rowcount == 1


def release_refresh(connection: sa.Connection, row_id: int, *, holder: str, forget_refresh_token: bool) -> bool:
    """Give the lease back (a refresh that failed); `forget_refresh_token` when the server refused the token for
    good, so every later resolution knows the member must reconnect. False when the lease was not its own."""
    table = schema.user_tokens
    values: dict[str, object] = {"refresh_lease_holder": None, "refresh_lease_until": None}
    if forget_refresh_token:
        values["refresh_token_ref"] = None
    statement = sa.update(table).where(table.c.id == row_id, table.c.refresh_lease_holder == holder).values(values)
    return connection.execute(statement).rowcount == 1


LOCAL_PREFIX = "local:"


def delete_sealed_values(
    connection: sa.Connection, *, servers: Sequence[Mapping[str, Any]], connections: Sequence[Mapping[str, Any]]
) -> int:
    """Before servers or connections are deleted: the sealed values their members' token rows reference.

    The rows go by the foreign keys' cascade; their sealed values (`local:<tenant>/<name>#<purpose>` references,
    the local store's keys) would outlive them. Values behind other references (Kubernetes Secrets) are not the
    registry's to delete. `servers` / `connections` are the deletion's `{b_tenant_id, b_name}` keys."""
    tokens = schema.user_tokens
    owners: list[sa.ColumnElement[bool]] = []
    for table, column, keys in (
        (schema.servers, tokens.c.server_id, servers),
        (schema.connections, tokens.c.connection_id, connections),
    ):
        pairs = [(key["b_tenant_id"], key["b_name"]) for key in keys]
        if pairs:
            doomed = sa.select(table.c.id).where(sa.tuple_(table.c.tenant_id, table.c.name).in_(pairs))
            owners.append(column.in_(doomed))
    if not owners:
        return 0
    query = sa.select(tokens.c.secret_ref, tokens.c.refresh_token_ref).where(sa.or_(*owners))
    parts = {
        found
        for row in connection.execute(query)
        for reference in row
        if reference is not None and (found := _local_parts(reference)) is not None
    }
    if not parts:
        return 0
    sealed = schema.local_secrets
    statement = sa.delete(sealed).where(sa.tuple_(sealed.c.tenant, sealed.c.name, sealed.c.purpose).in_(sorted(parts)))
    return connection.execute(statement).rowcount


def _local_parts(reference: str) -> tuple[str, str, str] | None:
    """(tenant, name, purpose) of a `local:<tenant>/<name>#<purpose>` reference; None for any other reference."""
    if not reference.startswith(LOCAL_PREFIX):
        return None
    head, _, purpose = reference[len(LOCAL_PREFIX) :].partition("#")
    tenant, _, name = head.partition("/")
    return (tenant, name, purpose) if tenant and name and purpose else None


def refreshable_tokens(
    connection: sa.Connection, *, tenants: Sequence[str] | None, namespaces: Sequence[str] | None = None
) -> list[RefreshableMemberToken]:
    """Every member token with a stored refresh token (of `tenants` and `namespaces`, or all), with its server's
    URL, network switch and auth settings: what the engine's runs renew when due. Tokens nobody can refresh are
    not read."""
    table = schema.user_tokens
    query = (
        sa.select(
            table,
            schema.tenants.c.slug.label("tenant_slug"),
            schema.servers.c.name.label("server_name"),
            schema.servers.c.url.label("server_url"),
            schema.servers.c.allow_private.label("server_allow_private"),
            schema.servers.c.auth.label("server_auth"),
            schema.connections.c.name.label("connection_name"),
        )
        .join(schema.servers, schema.servers.c.id == table.c.server_id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .outerjoin(schema.connections, schema.connections.c.id == table.c.connection_id)
        .where(table.c.refresh_token_ref.is_not(None))
        .order_by(table.c.id)
    )
    if tenants is not None:
        query = query.where(schema.tenants.c.slug.in_(sorted(set(tenants))))
    if namespaces is not None:
        query = query.where(schema.tenants.c.namespace.in_(sorted(set(namespaces))))
    return [
        RefreshableMemberToken(
            token=conversion.user_token_of(
                row, tenant=row["tenant_slug"], server=row["server_name"], connection=row["connection_name"]
            ),
            server_url=row["server_url"],
            allow_private=bool(row["server_allow_private"]),
            server_auth=dict(row["server_auth"] or {}),
        )
        for row in connection.execute(query).mappings()
    ]
