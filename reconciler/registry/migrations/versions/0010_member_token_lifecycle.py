"""Members' token lifecycle: what refreshing a member's token needs, and the lease that makes it single-flight.

Revision ID: 0010_member_token_lifecycle
Revises: 0009_member_values
Create Date: 2026-12-05

`user_tokens` gains `refresh_token_ref` (where the member's refresh token is sealed, a `local:` reference; never
the value), `issued_at`, the `client_id` and `issuer` the token was obtained with (a refresh goes to that issuer
with that client and no other, SEP-2352), `scopes`, and `refresh_lease_holder` / `refresh_lease_until`: the
compare-and-set lease one refresher takes so that many concurrent resolutions send one refresh request. Every
column is nullable (`scopes` defaults to `[]`): a row written before this revision is a token nobody can refresh,
which is what it was.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_member_token_lifecycle"
down_revision: str | Sequence[str] | None = "0009_member_values"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("refresh_token_ref", "issued_at", "client_id", "issuer", "scopes", "refresh_lease_holder", "refresh_lease_until")


def upgrade() -> None:
    op.add_column("user_tokens", sa.Column("refresh_token_ref", sa.Text(), nullable=True))
    op.add_column("user_tokens", sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("user_tokens", sa.Column("client_id", sa.Text(), nullable=True))
    op.add_column("user_tokens", sa.Column("issuer", sa.Text(), nullable=True))
    op.add_column(
        "user_tokens",
        sa.Column("scopes", sa.JSON(none_as_null=True), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column("user_tokens", sa.Column("refresh_lease_holder", sa.Text(), nullable=True))
    op.add_column("user_tokens", sa.Column("refresh_lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite >= 3.35), as in 0009.
    for column in reversed(_COLUMNS):
        op.drop_column("user_tokens", column)
