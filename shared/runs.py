"""Closing a run once every one of its files is final, with its RunCompleted event.

Discovery (for a run whose files were all processed before it finished counting them) and the
processor (after each batch) both call this. The update only matches a running run whose
expected files are all final, so whichever comes last closes the run, and only once. The
RunCompleted event goes through the outbox, in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import RunCompleted
from shared.models import FileState, FileStatus, Run, RunStatus
from shared.repositories import OutboxRepository


def outcome(succeeded: int, failed: int) -> RunStatus:
    if failed == 0:
        return RunStatus.SUCCESS
    return RunStatus.FAILED if succeeded == 0 else RunStatus.PARTIAL


async def complete_run_if_done(session: AsyncSession, run_id: uuid.UUID) -> RunCompleted | None:
    """In the caller's transaction: close the run if all its files are final."""
    rows = await session.execute(
        select(
            FileState.status,
            func.count(),
            func.coalesce(func.sum(FileState.records), 0),
            func.coalesce(func.sum(FileState.size), 0),
        )
        .where(FileState.run_id == run_id)
        .group_by(FileState.status)
    )
    by_status = {status: (count, records, size) for status, count, records, size in rows.all()}
    if by_status.get(FileStatus.PENDING) or by_status.get(FileStatus.CLAIMED):
        return None
    succeeded, records, size = by_status.get(FileStatus.SUCCESS, (0, 0, 0))
    failed = by_status.get(FileStatus.FAILED, (0, 0, 0))[0]
    status = outcome(succeeded, failed)
    closed = await session.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.RUNNING,
            Run.files_expected.is_not(None),
            Run.files_expected <= succeeded + failed,
        )
        .values(status=status, records=records, bytes=size, finished_at=datetime.now(UTC))
        .returning(Run.tenant_id, Run.ingestion_id)
    )
    row = closed.first()
    if row is None:
        return None
    event = RunCompleted(
        tenant_id=row.tenant_id,
        ingestion_id=row.ingestion_id,
        run_id=run_id,
        status=status,
        files_succeeded=succeeded,
        files_failed=failed,
        records=int(records or 0),
        bytes=int(size or 0),
    )
    OutboxRepository(session).add(event)
    return event
