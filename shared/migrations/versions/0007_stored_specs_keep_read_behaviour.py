"""stored specs: settings that had no effect are stored as what the reader did

Before this revision the processor ignored `format.schema.inference` and `format.compression`:
every column was typed from its values, and Spark chose the codec by the file name. Both are
now honoured ('none' keeps every column a string; 'gzip' and 'none' fail a file named
otherwise), and parquet refuses inference 'none'. Specs stored before keep what they got:
their tables are typed and their files decompressed by name, so they are set to 'auto'. An
ingestion that wants string columns asks for them again, into a new table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE ingestions SET spec = jsonb_set(spec, '{format,schema,inference}', '\"auto\"') "
        "WHERE spec->'format'->'schema'->>'inference' = 'none'"
    )
    op.execute(
        "UPDATE ingestions SET spec = jsonb_set(spec, '{format,compression}', '\"auto\"') "
        "WHERE spec->'format'->>'compression' IN ('gzip', 'none')"
    )


def downgrade() -> None:
    """Irreversible, and nothing to undo: the values replaced had no effect."""
