"""backfill: per-run parameters and progress, file state per target table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parameters", postgresql.JSONB(), nullable=True))
    op.add_column("runs", sa.Column("progress", postgresql.JSONB(), nullable=True))
    op.add_column("file_state", sa.Column("target_table", sa.Text(), nullable=True))
    op.drop_constraint("uq_file_state_object", "file_state", type_="unique")
    # NULL (the ingestion's own table) counts as one value, so each object version has one
    # row per table it is written to.
    op.create_unique_constraint(
        "uq_file_state_object",
        "file_state",
        ["ingestion_id", "path", "etag", "target_table"],
        postgresql_nulls_not_distinct=True,
    )


def downgrade() -> None:
    op.execute("DELETE FROM file_state WHERE target_table IS NOT NULL")
    op.drop_constraint("uq_file_state_object", "file_state", type_="unique")
    op.create_unique_constraint(
        "uq_file_state_object", "file_state", ["ingestion_id", "path", "etag"]
    )
    op.drop_column("file_state", "target_table")
    op.drop_column("runs", "progress")
    op.drop_column("runs", "parameters")
