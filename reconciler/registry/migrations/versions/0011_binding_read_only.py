"""Let a template binding admit only read-only tools of a server, and keep the tool-risk changes that stand.

Revision ID: 0011_binding_read_only
Revises: 0010_member_token_lifecycle
Create Date: 2026-12-06

`template_binding_servers.tools_read_only` is the binding's `tools.readOnly` (or the server entry's). `false`
(every tool the allow/deny lists pass) is what every row written before this revision means.
`server_probe_state.tool_risk` lists the high-severity tool changes (`ToolRiskChanged`) a probe found, until a
later listing finds none; NULL (none) for every row before. The tool snapshots' JSON gains each tool's MCP
annotations without a schema change: a snapshot written before this revision reads as tools that sent no hints.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_binding_read_only"
down_revision: str | Sequence[str] | None = "0010_member_token_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "template_binding_servers",
        sa.Column("tools_read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("server_probe_state", sa.Column("tool_risk", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite >= 3.35): a batch copy would trip the change-stamp triggers that name the tables.
    op.drop_column("server_probe_state", "tool_risk")
    op.drop_column("template_binding_servers", "tools_read_only")
