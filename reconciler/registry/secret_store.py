"""The SQL of the local encrypted secret store: rows of ciphertext the credentials package seals and unseals.

`reconciler.credentials.local_store` encrypts values the reconciler mints (OAuth access tokens, DCR client
secrets and registration tokens) and calls the `Registry` / `RegistryTransaction` methods that delegate here.
This module never sees a plaintext value: it stores `SealedSecret`s (ciphertext, the id of the key that sealed
it, non-secret metadata) keyed by (tenant, name, purpose), the parts of a `local:<tenant>/<name>#<purpose>`
reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from reconciler.records import SealedSecret
from reconciler.registry import schema


def _sealed_of(row: sa.RowMapping) -> SealedSecret:
    return SealedSecret(
        tenant=row["tenant"],
        name=row["name"],
        purpose=row["purpose"],
        ciphertext=row["ciphertext"],
        key_id=row["key_id"],
        meta=dict(row["meta"] or {}),
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
    )


def read_sealed(connection: sa.Connection, *, tenant: str, name: str, purpose: str) -> SealedSecret | None:
    table = schema.local_secrets
    query = sa.select(table).where(table.c.tenant == tenant, table.c.name == name, table.c.purpose == purpose)
    row = connection.execute(query).mappings().first()
    return None if row is None else _sealed_of(row)


def read_sealed_many(
    connection: sa.Connection, keys: Collection[tuple[str, str, str]]
) -> dict[tuple[str, str, str], SealedSecret]:
    """The stored values of many (tenant, name, purpose) keys in one query; absent keys are absent."""
    if not keys:
        return {}
    table = schema.local_secrets
    query = sa.select(table).where(sa.tuple_(table.c.tenant, table.c.name, table.c.purpose).in_(sorted(keys)))
    return {
        (row["tenant"], row["name"], row["purpose"]): _sealed_of(row) for row in connection.execute(query).mappings()
    }


def read_sealed_of(connection: sa.Connection, *, tenant: str, name: str | None = None) -> list[SealedSecret]:
    """Every stored value of one owner (or of a whole tenant), by purpose."""
    table = schema.local_secrets
    filters = [table.c.tenant == tenant] + ([table.c.name == name] if name is not None else [])
    query = sa.select(table).where(*filters).order_by(table.c.name, table.c.purpose)
    return [_sealed_of(row) for row in connection.execute(query).mappings()]


def write_sealed(connection: sa.Connection, secrets: Sequence[SealedSecret], *, now: dt.datetime) -> None:
    """Create or replace values by (tenant, name, purpose) in one statement; `created_at` of a value is kept."""
    if not secrets:
        return
    table = schema.local_secrets
    latest = {(item.tenant, item.name, item.purpose): item for item in secrets}
    rows = [
        {
            "tenant": item.tenant,
            "name": item.name,
            "purpose": item.purpose,
            "ciphertext": item.ciphertext,
            "key_id": item.key_id,
            "meta": dict(item.meta),
            "expires_at": item.expires_at,
            "created_at": now,
            "updated_at": now,
        }
        for item in latest.values()
    ]
    insert: Any = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)
    replaced = {name: insert.excluded[name] for name in ("ciphertext", "key_id", "meta", "expires_at", "updated_at")}
    connection.execute(insert.on_conflict_do_update(index_elements=["tenant", "name", "purpose"], set_=replaced), rows)


def delete_sealed(connection: sa.Connection, *, tenant: str, name: str, purposes: Collection[str] | None = None) -> int:
    """Delete an owner's values (all, or only `purposes`); returns how many rows went."""
    table = schema.local_secrets
    filters = [table.c.tenant == tenant, table.c.name == name]
    if purposes is not None:
        if not purposes:
            return 0
        filters.append(table.c.purpose.in_(sorted(purposes)))
    return int(connection.execute(sa.delete(table).where(*filters)).rowcount)


def delete_oauth_client(connection: sa.Connection, *, tenant: str, server: str, issuer: str) -> bool:
    """Forget the client registered with `issuer` for a server; False when there was none."""
    table = schema.oauth_clients
    server_ids = (
        sa.select(schema.servers.c.id)
        .join(schema.tenants, schema.tenants.c.id == schema.servers.c.tenant_id)
        .where(schema.tenants.c.slug == tenant, schema.servers.c.name == server)
    )
    result = connection.execute(sa.delete(table).where(table.c.server_id.in_(server_ids), table.c.issuer == issuer))
    return bool(result.rowcount)
