"""Per-member header values: a connection's member headers, and the keys of each member's stored values.

Revision ID: 0009_member_values
Revises: 0008_binding_agents
Create Date: 2026-12-05

`connections.member_headers` lists `{"name", "key"}`: headers of a per-member connection valued from the
member's own stored values. `user_tokens.value_keys` lists the keys a runtime stored next to the member's token
(same Secret). Both default to `[]`, what every row written before this revision means.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_member_values"
down_revision: str | Sequence[str] | None = "0008_binding_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table, column in (("connections", "member_headers"), ("user_tokens", "value_keys")):
        op.add_column(
            table, sa.Column(column, sa.JSON(none_as_null=True), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite >= 3.35): a batch copy would trip the change-stamp triggers that name the tables.
    op.drop_column("user_tokens", "value_keys")
    op.drop_column("connections", "member_headers")
