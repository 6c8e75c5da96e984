"""The initial registry schema.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-22

Explicit operations only, so later revisions build on exactly this. `servers.discovery_connection_id` and
`connections.server_id` point at each other: SQLite accepts the forward reference inside CREATE TABLE (and
cannot add a constraint afterwards), PostgreSQL needs the key added once both tables exist.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", _timestamp(), server_default=_now(), nullable=False),
        sa.Column("updated_at", _timestamp(), server_default=_now(), nullable=False),
    ]


def _ownership() -> list[sa.Column[Any]]:
    return [
        sa.Column("manager", sa.Text(), nullable=True),
        sa.Column("source_kind", sa.Text(), nullable=True),
        sa.Column("source_namespace", sa.Text(), nullable=True),
        sa.Column("source_name", sa.Text(), nullable=True),
        sa.Column("spec_hash", sa.Text(), nullable=True),
        sa.Column("deletion_policy", sa.Text(), server_default="Delete", nullable=False),
        *_timestamps(),
    ]


def _fk(column: str, target: str, *, table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}", ondelete=ondelete)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"

    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("created_at", _timestamp(), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )

    discovery_fk = (
        [_fk("discovery_connection_id", "connections", table="servers", ondelete="SET NULL")] if sqlite else []
    )
    op.create_table(
        "servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("transport", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("featured", sa.Boolean(), nullable=False),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("auth_type", sa.Text(), nullable=False),
        sa.Column("auth", _json(), nullable=False),
        sa.Column("owner_kind", sa.Text(), nullable=True),
        sa.Column("owner_name", sa.Text(), nullable=True),
        sa.Column("tool_policy", sa.Text(), nullable=False),
        sa.Column("approved_hash", sa.Text(), nullable=True),
        sa.Column("tools_allow", _json(), nullable=False),
        sa.Column("tools_deny", _json(), nullable=False),
        sa.Column("allow_private", sa.Boolean(), nullable=False),
        sa.Column("discovery_enabled", sa.Boolean(), nullable=False),
        sa.Column("discovery_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("discovery_connection_id", sa.Integer(), nullable=True),
        *_ownership(),
        sa.PrimaryKeyConstraint("id", name="pk_servers"),
        _fk("tenant_id", "tenants", table="servers"),
        *discovery_fk,
        sa.UniqueConstraint("tenant_id", "name", name="uq_servers_tenant_id_name"),
    )
    op.create_index("ix_servers_discovery_connection_id", "servers", ["discovery_connection_id"])

    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("credential_mode", sa.Text(), nullable=False),
        sa.Column("secret_ref", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("authorization_scheme", sa.Text(), nullable=True),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("use_for_discovery", sa.Boolean(), nullable=False),
        *_ownership(),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        _fk("tenant_id", "tenants", table="connections"),
        _fk("server_id", "servers", table="connections"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_connections_tenant_id_name"),
    )
    op.create_index("ix_connections_server_id_scope_subject", "connections", ["server_id", "scope", "subject"])
    if not sqlite:
        op.create_foreign_key(
            "fk_servers_discovery_connection_id",
            "servers",
            "connections",
            ["discovery_connection_id"],
            ["id"],
            ondelete="SET NULL",
        )

    op.create_table(
        "access_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("target_server_id", sa.Integer(), nullable=True),
        sa.Column("target_connection_id", sa.Integer(), nullable=True),
        *_ownership(),
        sa.PrimaryKeyConstraint("id", name="pk_access_grants"),
        _fk("tenant_id", "tenants", table="access_grants"),
        _fk("target_server_id", "servers", table="access_grants"),
        _fk("target_connection_id", "connections", table="access_grants"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_access_grants_tenant_id_name"),
    )
    op.create_index("ix_access_grants_target_server_id", "access_grants", ["target_server_id"])
    op.create_index("ix_access_grants_target_connection_id", "access_grants", ["target_connection_id"])

    op.create_table(
        "access_grant_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_access_grant_subjects"),
        _fk("grant_id", "access_grants", table="access_grant_subjects"),
    )
    op.create_index("ix_access_grant_subjects_grant_id", "access_grant_subjects", ["grant_id"])
    op.create_index("ix_access_grant_subjects_kind_name", "access_grant_subjects", ["kind", "name"])

    op.create_table(
        "template_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        *_ownership(),
        sa.PrimaryKeyConstraint("id", name="pk_template_bindings"),
        _fk("tenant_id", "tenants", table="template_bindings"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_template_bindings_tenant_id_name"),
    )
    op.create_index("ix_template_bindings_tenant_id_template", "template_bindings", ["tenant_id", "template"])

    op.create_table(
        "template_binding_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("binding_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("tools_allow", _json(), nullable=False),
        sa.Column("tools_deny", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_template_binding_servers"),
        _fk("binding_id", "template_bindings", table="template_binding_servers"),
        _fk("server_id", "servers", table="template_binding_servers"),
        _fk("connection_id", "connections", table="template_binding_servers"),
    )
    op.create_index("ix_template_binding_servers_binding_id", "template_binding_servers", ["binding_id"])
    op.create_index("ix_template_binding_servers_server_id", "template_binding_servers", ["server_id"])
    op.create_index("ix_template_binding_servers_connection_id", "template_binding_servers", ["connection_id"])

    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret_ref", sa.Text(), nullable=True),
        sa.Column("registration_client_uri", sa.Text(), nullable=True),
        sa.Column("registration_access_token_ref", sa.Text(), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), server_default=_now(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_clients"),
        _fk("server_id", "servers", table="oauth_clients"),
        sa.UniqueConstraint("server_id", "issuer", name="uq_oauth_clients_server_id_issuer"),
    )

    op.create_table(
        "tool_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("tools", _json(), nullable=False),
        sa.Column("protocol_version", sa.Text(), nullable=True),
        sa.Column("server_info", _json(), nullable=False),
        sa.Column("capabilities", _json(), nullable=False),
        sa.Column("taken_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tool_snapshots"),
        _fk("server_id", "servers", table="tool_snapshots"),
    )
    op.create_index("ix_tool_snapshots_server_id_taken_at", "tool_snapshots", ["server_id", "taken_at"])

    op.create_table(
        "server_probe_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("discovery", _json(), nullable=True),
        sa.Column("last_test", _json(), nullable=True),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        sa.Column("probed_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_server_probe_state"),
        _fk("server_id", "servers", table="server_probe_state"),
        sa.UniqueConstraint("server_id", name="uq_server_probe_state_server_id"),
    )

    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("uid", sa.Text(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("spec_hash", sa.Text(), nullable=False),
        sa.Column("labels", _json(), nullable=False),
        sa.Column("annotations", _json(), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("status", _json(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_resources"),
        sa.UniqueConstraint("kind", "namespace", "name", name="uq_resources_kind_namespace_name"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_kind", sa.Text(), nullable=True),
        sa.Column("source_namespace", sa.Text(), nullable=True),
        sa.Column("source_name", sa.Text(), nullable=True),
        sa.Column("diff", _json(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant", "id"])

    op.create_table(
        "user_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("secret_ref", sa.Text(), nullable=False),
        sa.Column("created_at", _timestamp(), server_default=_now(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_user_tokens"),
        _fk("tenant_id", "tenants", table="user_tokens"),
        _fk("server_id", "servers", table="user_tokens"),
        _fk("connection_id", "connections", table="user_tokens"),
        sa.UniqueConstraint(
            "server_id", "user_id", "connection_id", name="uq_user_tokens_server_id_user_id_connection_id"
        ),
    )
    op.create_index("ix_user_tokens_connection_id", "user_tokens", ["connection_id"])
    op.create_index("ix_user_tokens_tenant_id", "user_tokens", ["tenant_id"])
    op.create_index(
        "uq_user_tokens_server_id_user_id_no_connection",
        "user_tokens",
        ["server_id", "user_id"],
        unique=True,
        sqlite_where=sa.text("connection_id IS NULL"),
        postgresql_where=sa.text("connection_id IS NULL"),
    )

    op.create_table(
        "registry_meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_registry_meta"),
    )


def downgrade() -> None:
    for table in (
        "registry_meta",
        "user_tokens",
        "audit_log",
        "resources",
        "server_probe_state",
        "tool_snapshots",
        "oauth_clients",
        "template_binding_servers",
        "template_bindings",
        "access_grant_subjects",
        "access_grants",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_servers_discovery_connection_id", "servers", type_="foreignkey")
    op.drop_table("connections")
    op.drop_table("servers")
    op.drop_table("tenants")
