"""The local encrypted secret store: values the reconciler mints itself (OAuth tokens, DCR client secrets).

Revision ID: 0003_secret_store
Revises: 0002_resolution_indexes
Create Date: 2025-11-22

Only ciphertext sealed by `reconciler.credentials` (AES-GCM, bound to its reference) and non-secret facts are
stored. Rows are keyed by tenant slug and owner name rather than foreign keys: deregistering a dynamically
registered client needs its registration token after the server row is gone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_secret_store"
down_revision: str | Sequence[str] | None = "0002_resolution_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "local_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_local_secrets"),
        sa.UniqueConstraint("tenant", "name", "purpose", name="uq_local_secrets_tenant_name_purpose"),
    )


def downgrade() -> None:
    op.drop_table("local_secrets")
