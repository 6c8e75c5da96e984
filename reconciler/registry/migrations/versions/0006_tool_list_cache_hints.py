"""Keep the freshness hints a 2026-07-28 server attaches to its tool list.

Revision ID: 0006_tool_list_cache_hints
Revises: 0005_tenant_namespace_index
Create Date: 2026-11-23

MCP 2026-07-28 adds `ttlMs` and `cacheScope` to `tools/list`. A snapshot keeps both (status says whose view a
`private` list is); the probe state keeps the `ttlMs` of the last successful listing, which stretches the wait
before the next probe. All nullable: servers on older protocol revisions send no hints.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_tool_list_cache_hints"
down_revision: str | Sequence[str] | None = "0005_tenant_namespace_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tool_snapshots", sa.Column("cache_scope", sa.Text(), nullable=True))
    op.add_column("tool_snapshots", sa.Column("ttl_ms", sa.BigInteger(), nullable=True))
    op.add_column("server_probe_state", sa.Column("list_ttl_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_probe_state") as batch:
        batch.drop_column("list_ttl_ms")
    with op.batch_alter_table("tool_snapshots") as batch:
        batch.drop_column("ttl_ms")
        batch.drop_column("cache_scope")
