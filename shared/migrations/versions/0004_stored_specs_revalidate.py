"""stored specs: a notified ingestion with a schedule drops the stored default safety-net interval

Specs stored before this revision carry `safety_net_interval_minutes: 60` next to a schedule,
which no longer validates (the schedule is the safety net). Set it to null, as new specs are
stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 13:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTERVAL = "spec->'source'->'notifications'->'safety_net_interval_minutes'"


def upgrade() -> None:
    op.execute(
        "UPDATE ingestions SET spec = jsonb_set(spec, "
        "'{source,notifications,safety_net_interval_minutes}', 'null') "
        "WHERE spec->'schedule' IS NOT NULL AND spec->'schedule' <> 'null'::jsonb "
        f"AND {INTERVAL} IS NOT NULL AND {INTERVAL} <> 'null'::jsonb"
    )


def downgrade() -> None:
    """Irreversible: the value removed was the old default, not a choice of the user."""
