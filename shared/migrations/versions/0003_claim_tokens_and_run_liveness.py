"""exactly once: claim tokens on file state; run liveness and flow attempts on runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Who holds a claim now: a fresh token per claim, so a holder that lost its claim (even one
    # with the same worker id, as after a container restart) can tell.
    op.add_column("file_state", sa.Column("claim_token", sa.String(32), nullable=True))
    # Discovery's heartbeat, and how many flow runs a run has had: the run watchdog retries a
    # run whose flow run died, and closes it with the reason once the attempts are spent.
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "runs", sa.Column("flow_attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index(
        "ix_runs_unfinished",
        "runs",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_unfinished", "runs")
    op.drop_column("runs", "flow_attempts")
    op.drop_column("runs", "heartbeat_at")
    op.drop_column("file_state", "claim_token")
