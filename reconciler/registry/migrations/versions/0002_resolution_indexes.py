"""Index member tokens by (tenant, member) for resolution.

Revision ID: 0002_resolution_indexes
Revises: 0001_initial
Create Date: 2026-11-22

A member's view ("which servers have I connected?") and per-member resolution look tokens up by tenant and
member; the former single-column tenant index becomes the leading column of the new one.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_resolution_indexes"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_user_tokens_tenant_id", table_name="user_tokens")
    op.create_index("ix_user_tokens_tenant_id_user_id", "user_tokens", ["tenant_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_user_tokens_tenant_id_user_id", table_name="user_tokens")
    op.create_index("ix_user_tokens_tenant_id", "user_tokens", ["tenant_id"])
