"""each ingestion's last commit: when, which snapshot, which table

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingestions", sa.Column("last_commit_at", sa.DateTime(timezone=True)))
    op.add_column("ingestions", sa.Column("last_snapshot_id", sa.BigInteger()))
    op.add_column("ingestions", sa.Column("last_commit_table", sa.Text()))


def downgrade() -> None:
    op.drop_column("ingestions", "last_commit_table")
    op.drop_column("ingestions", "last_snapshot_id")
    op.drop_column("ingestions", "last_commit_at")
