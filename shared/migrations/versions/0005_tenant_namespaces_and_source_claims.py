"""tenant namespaces granted by operators, and tenants' claims on source buckets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_namespaces",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("namespace", sa.String(300), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "namespace"),
    )
    op.create_table(
        "source_claims",
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("granted_by", sa.String(16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bucket", "prefix", "tenant_id"),
    )
    # What tenants already use stays theirs: review it with `autoloader tenants show`.
    op.execute(
        "INSERT INTO tenant_namespaces (tenant_id, namespace) "
        "SELECT DISTINCT tenant_id, concat_ws('.', "
        "coalesce(spec->'destination'->>'catalog', 'spark_catalog'), "
        "coalesce(spec->'destination'->>'database', 'default')) "
        "FROM ingestions WHERE deleted_at IS NULL"
    )
    op.execute(
        "INSERT INTO source_claims (bucket, prefix, tenant_id, granted_by) "
        "SELECT DISTINCT source_bucket, '', tenant_id, 'first-use' FROM ingestions "
        "WHERE source_bucket IS NOT NULL AND deleted_at IS NULL"
    )


def downgrade() -> None:
    op.drop_table("source_claims")
    op.drop_table("tenant_namespaces")
