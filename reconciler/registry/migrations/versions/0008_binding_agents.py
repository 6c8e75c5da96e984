"""Let a template binding assign its servers to some agents of the template only.

Revision ID: 0008_binding_agents
Revises: 0007_tenant_change_stamps
Create Date: 2026-12-05

`template_bindings.agents` is a JSON list of agent ids; `[]` (every agent of the template) is what every binding
written before this revision means, so existing rows take it as the default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_binding_agents"
down_revision: str | Sequence[str] | None = "0007_tenant_change_stamps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "template_bindings",
        sa.Column("agents", sa.JSON(none_as_null=True), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy would trip the change-stamp triggers that name the table.
    op.drop_column("template_bindings", "agents")
