"""A change stamp on the managed tables, bumped by triggers on every write from anyone.

Revision ID: 0004_change_stamp
Revises: 0003_secret_store
Create Date: 2026-11-22

A resync can skip reading ten thousand rows only if it knows none changed; a trigger sees every write,
including hand edits and other processes, so the stamp is a sound witness. PostgreSQL bumps once per
statement; SQLite, which only has row triggers, once per row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_change_stamp"
down_revision: str | Sequence[str] | None = "0003_secret_store"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = (
    "servers",
    "connections",
    "access_grants",
    "access_grant_subjects",
    "template_bindings",
    "template_binding_servers",
)
BUMP = "UPDATE registry_changes SET stamp = stamp + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "registry_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_changes"),
    )
    op.execute("INSERT INTO registry_changes (id, stamp) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION mcp_registry_bump_stamp() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER {table}_change_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION mcp_registry_bump_stamp()"
            )
        return
    for table in WATCHED:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_change_stamp AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_change_stamp ON {table}")
        op.execute("DROP FUNCTION IF EXISTS mcp_registry_bump_stamp()")
    else:
        for table in WATCHED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_change_stamp")
    op.drop_table("registry_changes")
