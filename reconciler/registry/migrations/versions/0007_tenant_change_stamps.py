"""A change stamp per tenant, so a resync reads only the tenants whose rows moved.

Revision ID: 0007_tenant_change_stamps
Revises: 0006_tool_list_cache_hints
Create Date: 2026-11-23

Migration 0004's triggers bump one global stamp on every write to the managed tables: once it moved, a resync
had to read every row of every tenant to find what changed. The same triggers now also set
`tenants.change_stamp` of each tenant a write touched to the global stamp's new value, so "which tenants moved
since the stamp I last reconciled at?" is one read of the tenants table. Values come from the one global
sequence, so they only grow, even for a tenant deleted and created again. A TRUNCATE (PostgreSQL) still bumps
only the global stamp: the engine then reads everything, as before. `user_tokens` (the runtime's) stays
unwatched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_tenant_change_stamps"
down_revision: str | Sequence[str] | None = "0006_tool_list_cache_hints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = "UPDATE registry_changes SET stamp = stamp + 1 WHERE id = 1"
DIRECT = ("servers", "connections", "access_grants", "template_bindings")
"""Tables with their own `tenant_id`."""
CHILDREN = {"access_grant_subjects": ("access_grants", "grant_id"), "template_binding_servers": ("template_bindings", "binding_id")}
"""Tables whose tenant is their parent's: (parent table, foreign key column)."""
WATCHED = (*DIRECT, *CHILDREN)


def _tenant_ids(table: str, rows: str) -> str:
    """SQL for the tenant ids of `rows` (a transition table, or SQLite's NEW/OLD pseudo-row as `rows.column`)."""
    if table in CHILDREN:
        parent, column = CHILDREN[table]
        return f"SELECT {parent}.tenant_id FROM {parent} WHERE {parent}.id IN (SELECT {column} FROM {rows})"
    return f"SELECT tenant_id FROM {rows}"


def _sqlite_tenant_ids(table: str, row: str) -> str:
    if table in CHILDREN:
        parent, column = CHILDREN[table]
        return f"SELECT tenant_id FROM {parent} WHERE id = {row}.{column}"
    return f"SELECT {row}.tenant_id"


def upgrade() -> None:
    op.add_column("tenants", sa.Column("change_stamp", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.create_index("ix_resources_tenant", "resources", ["tenant"])
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_change_stamp ON {table}")
        # Branches are planned only when run, so each names only the transition tables its event has.
        op.execute(
            f"CREATE FUNCTION mcp_registry_stamp_{table}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "DECLARE bumped bigint;\n"
            "BEGIN\n"
            f"  {BUMP} RETURNING stamp INTO bumped;\n"
            "  IF TG_OP = 'INSERT' THEN\n"
            f"    UPDATE tenants SET change_stamp = bumped WHERE id IN ({_tenant_ids(table, 'new_rows')});\n"
            "  ELSIF TG_OP = 'UPDATE' THEN\n"
            f"    UPDATE tenants SET change_stamp = bumped WHERE id IN ({_tenant_ids(table, 'new_rows')}"
            f" UNION {_tenant_ids(table, 'old_rows')});\n"
            "  ELSE\n"
            f"    UPDATE tenants SET change_stamp = bumped WHERE id IN ({_tenant_ids(table, 'old_rows')});\n"
            "  END IF;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
        transitions = {
            "insert": "REFERENCING NEW TABLE AS new_rows",
            "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
            "delete": "REFERENCING OLD TABLE AS old_rows",
        }
        for event, referencing in transitions.items():
            op.execute(
                f"CREATE TRIGGER {table}_{event}_change_stamp AFTER {event.upper()} ON {table} {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION mcp_registry_stamp_{table}()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_truncate_change_stamp AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION mcp_registry_bump_stamp()"
        )


def _upgrade_sqlite() -> None:
    for table in WATCHED:
        for event, rows in (("INSERT", ("NEW",)), ("UPDATE", ("NEW", "OLD")), ("DELETE", ("OLD",))):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{event.lower()}_change_stamp")
            ids = " UNION ".join(_sqlite_tenant_ids(table, row) for row in rows)
            op.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_change_stamp AFTER {event} ON {table} BEGIN {BUMP}; "
                "UPDATE tenants SET change_stamp = (SELECT stamp FROM registry_changes WHERE id = 1) "
                f"WHERE id IN ({ids}); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            for event in ("insert", "update", "delete", "truncate"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_change_stamp ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS mcp_registry_stamp_{table}()")
            op.execute(
                f"CREATE TRIGGER {table}_change_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION mcp_registry_bump_stamp()"
            )
    else:
        for table in WATCHED:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event.lower()}_change_stamp")
                op.execute(
                    f"CREATE TRIGGER {table}_{event.lower()}_change_stamp AFTER {event} ON {table} "
                    f"BEGIN {BUMP}; END"
                )
    op.drop_index("ix_resources_tenant", table_name="resources")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("change_stamp")
