"""The registry's tables, as SQLAlchemy Core metadata: the single description of the database schema.

The registry's modules build every statement from these tables (`writing.py` adds one spec per managed
table); the Alembic migrations in `migrations/versions/` create the same schema step by step, and a test
compares the migrated database with this module so the two never drift. Agent runtimes read these tables
directly, which is why names are plain and every lookup they make has an index. Rows the reconciler manages
carry ownership columns; runtime-owned tables (`user_tokens`) and probe-owned tables (snapshots, probe state,
OAuth clients) hang off servers with ON DELETE CASCADE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION: dict[str, str] = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite has no time zone support, so values are stored as naive UTC and given `tzinfo=UTC` on the way
    out; PostgreSQL stores `timestamptz` and answers in the session time zone, which is normalised to UTC.
    Naive values handed in are taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[dt.datetime | None], Any] | None:
        """The processing `TypeDecorator` composes (ours, then the dialect's), remembering its last answer: a write
        binds one time (the transaction's) into every row it inserts, 50,000 times in a cold apply of 10,000
        objects. Known by identity, which the remembered pair keeps alive; a datetime is immutable, and the pair
        is replaced whole, so threads sharing the processor never read one value's answer for another."""
        process = super().bind_processor(dialect)
        if process is None:
            return None
        composed = process
        last: list[tuple[Any, Any]] = [(None, None)]

        def remembering(value: dt.datetime | None) -> Any:
            seen, answer = last[0]
            if value is seen and value is not None:
                return answer
            answer = composed(value)
            last[0] = (value, answer)
            return answer

        return remembering


def json_type() -> sa.JSON:
    """JSON stored as text on every backend, with Python None as SQL NULL so "absent" and "empty" stay distinct.

    Deliberately `json`, not `jsonb`, on PostgreSQL: the text comes back verbatim, so a fetched record hashes
    exactly like the one written (`jsonb` rewrites numbers, e.g. 1e16 as 10000000000000000).
    """
    return sa.JSON(none_as_null=True)


def _now_default() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=_now_default()),
        sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=_now_default()),
    ]


def _ownership_columns() -> list[sa.Column[Any]]:
    """Who manages a row; `manager IS NULL` marks a row made by hand, which the reconciler never touches."""
    return [
        sa.Column("manager", sa.Text(), nullable=True),
        sa.Column("source_kind", sa.Text(), nullable=True),
        sa.Column("source_namespace", sa.Text(), nullable=True),
        sa.Column("source_name", sa.Text(), nullable=True),
        sa.Column("spec_hash", sa.Text(), nullable=True),
        sa.Column("deletion_policy", sa.Text(), nullable=False, server_default="Delete"),
        *_timestamps(),
    ]


def _tenant_fk() -> sa.Column[int]:
    return sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def _server_fk(*, nullable: bool = False) -> sa.Column[int]:
    return sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=nullable)


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("slug", sa.Text(), nullable=False, unique=True),
    sa.Column("namespace", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=_now_default()),
    # The change stamp of the last write to this tenant's managed rows, set by the triggers (migration 0007).
    sa.Column("change_stamp", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    # Runtimes name their tenant by slug or by namespace (migration 0005).
    sa.Index(None, "namespace"),
)

servers = sa.Table(
    "servers",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _tenant_fk(),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("display_name", sa.Text(), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("transport", sa.Text(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("featured", sa.Boolean(), nullable=False),
    sa.Column("headers", json_type(), nullable=False),
    sa.Column("auth_type", sa.Text(), nullable=False),
    sa.Column("auth", json_type(), nullable=False),
    sa.Column("owner_kind", sa.Text(), nullable=True),
    sa.Column("owner_name", sa.Text(), nullable=True),
    sa.Column("tool_policy", sa.Text(), nullable=False),
    sa.Column("approved_hash", sa.Text(), nullable=True),
    sa.Column("tools_allow", json_type(), nullable=False),
    sa.Column("tools_deny", json_type(), nullable=False),
    sa.Column("allow_private", sa.Boolean(), nullable=False),
    sa.Column("discovery_enabled", sa.Boolean(), nullable=False),
    sa.Column("discovery_interval_seconds", sa.Integer(), nullable=False),
    # Servers and connections point at each other, so this key is added after both tables exist.
    sa.Column(
        "discovery_connection_id",
        sa.Integer(),
        sa.ForeignKey("connections.id", ondelete="SET NULL", use_alter=True),
        nullable=True,
        index=True,
    ),
    *_ownership_columns(),
    sa.UniqueConstraint("tenant_id", "name"),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _tenant_fk(),
    sa.Column("name", sa.Text(), nullable=False),
    _server_fk(),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("subject", sa.Text(), nullable=True),
    sa.Column("credential_mode", sa.Text(), nullable=False),
    sa.Column("secret_ref", sa.Text(), nullable=True),
    sa.Column("fingerprint", sa.Text(), nullable=True),
    sa.Column("authorization_scheme", sa.Text(), nullable=True),
    sa.Column("headers", json_type(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("use_for_discovery", sa.Boolean(), nullable=False),
    # [{"name", "key"}]: headers valued from each member's stored values (0009; [] before).
    sa.Column("member_headers", json_type(), nullable=False, server_default=sa.text("'[]'")),
    *_ownership_columns(),
    sa.UniqueConstraint("tenant_id", "name"),
    # Runtimes pick a credential by server, then scope (user > agent > platform), then subject.
    sa.Index(None, "server_id", "scope", "subject"),
)

access_grants = sa.Table(
    "access_grants",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _tenant_fk(),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column(
        "target_server_id",
        sa.Integer(),
        sa.ForeignKey("servers.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column(
        "target_connection_id",
        sa.Integer(),
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    *_ownership_columns(),
    sa.UniqueConstraint("tenant_id", "name"),
)

access_grant_subjects = sa.Table(
    "access_grant_subjects",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "grant_id",
        sa.Integer(),
        sa.ForeignKey("access_grants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=True),
    # "Which grants name this member/team?" is the runtime's access check.
    sa.Index(None, "kind", "name"),
)

template_bindings = sa.Table(
    "template_bindings",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _tenant_fk(),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("template", sa.Text(), nullable=False),
    # The agents the binding assigns its servers to; [] (every agent of the template) for bindings before 0008.
    sa.Column("agents", json_type(), nullable=False, server_default=sa.text("'[]'")),
    *_ownership_columns(),
    sa.UniqueConstraint("tenant_id", "name"),
    sa.Index(None, "tenant_id", "template"),
)

template_binding_servers = sa.Table(
    "template_binding_servers",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "binding_id",
        sa.Integer(),
        sa.ForeignKey("template_bindings.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("server_id", sa.Integer(), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column(
        "connection_id",
        sa.Integer(),
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column("tools_allow", json_type(), nullable=False),
    sa.Column("tools_deny", json_type(), nullable=False),
    # Admit read-only tools only (pinned servers only); false for every row before 0011.
    sa.Column("tools_read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
)

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _server_fk(),
    sa.Column("issuer", sa.Text(), nullable=False),
    sa.Column("client_id", sa.Text(), nullable=False),
    sa.Column("client_secret_ref", sa.Text(), nullable=True),
    sa.Column("registration_client_uri", sa.Text(), nullable=True),
    sa.Column("registration_access_token_ref", sa.Text(), nullable=True),
    sa.Column("token_endpoint_auth_method", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=_now_default()),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("server_id", "issuer"),
)

tool_snapshots = sa.Table(
    "tool_snapshots",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _server_fk(),
    sa.Column("hash", sa.Text(), nullable=False),
    sa.Column("tools", json_type(), nullable=False),
    sa.Column("protocol_version", sa.Text(), nullable=True),
    sa.Column("server_info", json_type(), nullable=False),
    sa.Column("capabilities", json_type(), nullable=False),
    sa.Column("taken_at", UtcDateTime(), nullable=False),
    sa.Column("cache_scope", sa.Text(), nullable=True),
    sa.Column("ttl_ms", sa.BigInteger(), nullable=True),
    sa.Index(None, "server_id", "taken_at"),
)

server_probe_state = sa.Table(
    "server_probe_state",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _server_fk(),
    sa.Column("discovery", json_type(), nullable=True),
    sa.Column("last_test", json_type(), nullable=True),
    sa.Column("blocked_reason", sa.Text(), nullable=True),
    sa.Column("probed_at", UtcDateTime(), nullable=True),
    sa.Column("list_ttl_ms", sa.BigInteger(), nullable=True),
    # High-severity tool changes standing since a probe found them (a JSON list of lines); NULL: none.
    sa.Column("tool_risk", json_type(), nullable=True),
    sa.UniqueConstraint("server_id"),
)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("namespace", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("uid", sa.Text(), nullable=True),
    sa.Column("generation", sa.Integer(), nullable=False),
    sa.Column("spec_hash", sa.Text(), nullable=False),
    sa.Column("labels", json_type(), nullable=False),
    sa.Column("annotations", json_type(), nullable=False),
    sa.Column("spec", json_type(), nullable=False),
    sa.Column("status", json_type(), nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("kind", "namespace", "name"),
    # A resync whose change stamps moved in a few tenants reads only their copies (migration 0007).
    sa.Index(None, "tenant"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("table_name", sa.Text(), nullable=False),
    # The tenant slug, not a key: the history outlives the rows and tenants it describes.
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("source_kind", sa.Text(), nullable=True),
    sa.Column("source_namespace", sa.Text(), nullable=True),
    sa.Column("source_name", sa.Text(), nullable=True),
    sa.Column("diff", json_type(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Index(None, "tenant", "id"),
)

user_tokens = sa.Table(
    "user_tokens",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    _tenant_fk(),
    _server_fk(),
    sa.Column(
        "connection_id",
        sa.Integer(),
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column("user_id", sa.Text(), nullable=False),
    sa.Column("secret_ref", sa.Text(), nullable=False),
    # Keys of the member's other values in the token's Secret (0009; [] before).
    sa.Column("value_keys", json_type(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=_now_default()),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    # What a refresh needs (0010): the sealed refresh token's `local:` reference, when the token was issued, and
    # the client and issuer it was obtained with (a refresh goes nowhere else).
    sa.Column("refresh_token_ref", sa.Text(), nullable=True),
    sa.Column("issued_at", UtcDateTime(), nullable=True),
    sa.Column("client_id", sa.Text(), nullable=True),
    sa.Column("issuer", sa.Text(), nullable=True),
    sa.Column("scopes", json_type(), nullable=False, server_default=sa.text("'[]'")),
    # The single-flight lease (0010): set by compare-and-set by the one refresher, cleared when it stores.
    sa.Column("refresh_lease_holder", sa.Text(), nullable=True),
    sa.Column("refresh_lease_until", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("server_id", "user_id", "connection_id"),
    # NULLs never collide in a unique constraint, so one token per member without a connection needs its own index.
    sa.Index(
        "uq_user_tokens_server_id_user_id_no_connection",
        "server_id",
        "user_id",
        unique=True,
        sqlite_where=sa.text("connection_id IS NULL"),
        postgresql_where=sa.text("connection_id IS NULL"),
    ),
    sa.Index(None, "tenant_id", "user_id"),
)

registry_meta = sa.Table(
    "registry_meta",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

MANAGED_TABLES: dict[str, sa.Table] = {
    "servers": servers,
    "connections": connections,
    "grants": access_grants,
    "bindings": template_bindings,
}
"""Record table name (as in `records.Table`) → the SQL table holding those rows."""

local_secrets = sa.Table(
    "local_secrets",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    # Slugs and names, not keys: a minted value may outlive its server row until the credentials package cleans
    # up, and deregistering a client (RFC 7592) needs its registration token after the server row is gone.
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("purpose", sa.Text(), nullable=False),
    sa.Column("ciphertext", sa.Text(), nullable=False),
    sa.Column("key_id", sa.Text(), nullable=False),
    sa.Column("meta", json_type(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("tenant", "name", "purpose"),
)
"""Values the reconciler mints itself (OAuth tokens, DCR client secrets), encrypted by `reconciler.credentials`;
only ciphertext and non-secret facts (`meta`, `expires_at`) are stored. Written through `secret_store.py`."""

registry_changes = sa.Table(
    "registry_changes",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("stamp", sa.BigInteger(), nullable=False),
)
"""One row whose `stamp` database triggers bump on every write to the managed tables (migration 0004): the
witness that lets a resync skip reading rows when nothing changed. The same triggers copy the new value into
`tenants.change_stamp` of the tenants written (migration 0007), so a resync reads only those tenants."""
