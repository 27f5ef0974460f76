"""Closing a run once every one of its files is final, with its RunCompleted event.

Discovery (for a run whose files were all processed before it finished counting them) and the
processor (after each batch) both call this, in the transaction that just changed the files.
The run row is locked first and the files are counted after, in a statement of their own: under
READ COMMITTED that count sees every transaction that finished its marks and released the lock
before us. So of two processors finishing a run's last files at once, the second to get the lock
sees both files final and closes the run, once. The RunCompleted event goes through the outbox,
in the same transaction.

A run whose discovery was interrupted for good keeps `error` set while it is still running: its
recorded files close it, `partial` if any of them landed (the listing may have missed files),
`failed` if none did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import RunCompleted
from shared.models import FileState, FileStatus, Run, RunStatus
from shared.repositories import OutboxRepository

UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)


def outcome(succeeded: int, failed: int, interrupted: bool = False) -> RunStatus:
    if succeeded == 0 and (failed or interrupted):
        return RunStatus.FAILED
    if failed or interrupted:
        return RunStatus.PARTIAL
    return RunStatus.SUCCESS


async def complete_runs_if_done(
    session: AsyncSession, run_ids: Iterable[uuid.UUID]
) -> list[RunCompleted]:
    """complete_run_if_done for several runs, locking them in id order so that two
    transactions closing overlapping runs cannot deadlock."""
    events = []
    for run_id in sorted(set(run_ids)):
        event = await complete_run_if_done(session, run_id)
        if event is not None:
            events.append(event)
    return events


async def complete_run_if_done(session: AsyncSession, run_id: uuid.UUID) -> RunCompleted | None:
    """In the caller's transaction, after its file marks: close the run if all its files are
    final. Holds the run row's lock until the caller's transaction ends."""
    run = (
        await session.execute(
            select(Run.status, Run.files_expected, Run.error, Run.tenant_id, Run.ingestion_id)
            .where(Run.id == run_id)
            .with_for_update()
        )
    ).first()
    if run is None or run.status != RunStatus.RUNNING or run.files_expected is None:
        return None
    # A statement of its own, after the lock: a fresh READ COMMITTED snapshot.
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
    if run.files_expected > succeeded + failed:
        return None
    status = outcome(succeeded, failed, interrupted=run.error is not None)
    await session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(status=status, records=records, bytes=size, finished_at=datetime.now(UTC))
    )
    event = RunCompleted(
        tenant_id=run.tenant_id,
        ingestion_id=run.ingestion_id,
        run_id=run_id,
        status=status,
        files_succeeded=succeeded,
        files_failed=failed,
        records=int(records or 0),
        bytes=int(size or 0),
    )
    OutboxRepository(session).add(event)
    return event


async def close_interrupted_run(
    session: AsyncSession, run_id: uuid.UUID, reason: str
) -> RunStatus | None:
    """Discovery of the run failed for good (its flow's last attempt failed, or crashed).

    ``reason`` is shown to the run's tenant as it is: the caller makes it with
    shared.errors.public_error (reason words and a ref, the full text only in the log).

    Files already recorded are the run's files: they are published, or swept up, and land,
    and they close the run, `partial` or `failed` (the error says discovery was interrupted).
    With no files recorded the run fails now, with the reason. A run that is already final,
    or whose discovery had finished, is left as it is. Commits; returns the status set, if any.
    """
    run = (
        await session.execute(
            select(Run.status, Run.files_expected, Run.tenant_id, Run.ingestion_id)
            .where(Run.id == run_id)
            .with_for_update()
        )
    ).first()
    if run is None or run.status not in UNFINISHED or run.files_expected is not None:
        await session.rollback()
        return None
    recorded = int(
        await session.scalar(
            select(func.count()).select_from(FileState).where(FileState.run_id == run_id)
        )
        or 0
    )
    if recorded == 0:
        await _fail(session, run_id, run.tenant_id, run.ingestion_id, reason)
        await session.commit()
        return RunStatus.FAILED
    error = f"discovery was interrupted after recording {recorded} files: {reason}"
    values: dict[str, Any] = {
        "status": RunStatus.RUNNING,
        "files_expected": recorded,
        "error": error[:4000],
    }
    await session.execute(update(Run).where(Run.id == run_id).values(**values))
    closed = await complete_run_if_done(session, run_id)
    await session.commit()
    return RunStatus(closed.status) if closed else RunStatus.RUNNING


async def _fail(
    session: AsyncSession,
    run_id: uuid.UUID,
    tenant_id: uuid.UUID,
    ingestion_id: uuid.UUID,
    reason: str,
) -> None:
    await session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(status=RunStatus.FAILED, error=reason[:4000], finished_at=datetime.now(UTC))
    )
    OutboxRepository(session).add(
        RunCompleted(
            tenant_id=tenant_id,
            ingestion_id=ingestion_id,
            run_id=run_id,
            status=RunStatus.FAILED,
            files_succeeded=0,
            files_failed=0,
            records=0,
            bytes=0,
        )
    )
