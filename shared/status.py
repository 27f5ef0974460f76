"""How an ingestion is doing, in one answer: its backlog, its last commit, its last error, its
current run and its sync with Prefect. `GET /api/v1/ingestions/{id}/status` and
`autoloader status` show it; the API's /metrics exports the backlog of every ingestion.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import FileState, FileStatus, Ingestion, Run
from shared.repositories import RunRepository
from shared.runs import UNFINISHED

WAITING = (FileStatus.PENDING, FileStatus.CLAIMED)


class Backlog(BaseModel):
    files: int = 0
    bytes: int = 0


class OldestPending(BaseModel):
    path: str
    discovered_at: datetime
    age_seconds: float


class LastCommit(BaseModel):
    at: datetime
    snapshot_id: int
    table: str | None


class LastError(BaseModel):
    path: str
    status: str  # PENDING: it will be tried again; FAILED: its attempts are spent
    attempts: int
    error: str
    at: datetime


class RunProgress(BaseModel):
    id: uuid.UUID
    trigger: str
    status: str
    created_at: datetime
    started_at: datetime | None
    files_expected: int | None  # None until discovery has listed the run's files
    files_done: int  # SUCCESS, FAILED or SKIPPED
    file_counts: dict[str, int]
    records: int


class SyncState(BaseModel):
    status: str
    error: str | None
    last_synced_at: datetime | None
    deployment_id: uuid.UUID | None


class IngestionStatusReport(BaseModel):
    ingestion_id: uuid.UUID
    name: str
    state: str  # active or paused
    pending: Backlog
    claimed: Backlog
    oldest_pending: OldestPending | None
    last_commit: LastCommit | None
    last_error: LastError | None
    current_run: RunProgress | None
    sync: SyncState


async def ingestion_status(session: AsyncSession, ingestion: Ingestion) -> IngestionStatusReport:
    backlog = await _backlog(session, ingestion.id)
    return IngestionStatusReport(
        ingestion_id=ingestion.id,
        name=ingestion.name,
        state=ingestion.status,
        pending=backlog.get(FileStatus.PENDING, Backlog()),
        claimed=backlog.get(FileStatus.CLAIMED, Backlog()),
        oldest_pending=await _oldest_pending(session, ingestion.id),
        last_commit=_last_commit(ingestion),
        last_error=await _last_error(session, ingestion.id),
        current_run=await _current_run(session, ingestion.id),
        sync=SyncState(
            status=ingestion.sync_status,
            error=ingestion.sync_error,
            last_synced_at=ingestion.last_synced_at,
            deployment_id=ingestion.prefect_deployment_id,
        ),
    )


async def _backlog(session: AsyncSession, ingestion_id: uuid.UUID) -> dict[str, Backlog]:
    rows = await session.execute(
        select(FileState.status, func.count(), func.coalesce(func.sum(FileState.size), 0))
        .where(FileState.ingestion_id == ingestion_id, FileState.status.in_(WAITING))
        .group_by(FileState.status)
    )
    return {status: Backlog(files=files, bytes=size) for status, files, size in rows}


async def _oldest_pending(session: AsyncSession, ingestion_id: uuid.UUID) -> OldestPending | None:
    row = (
        await session.execute(
            select(
                FileState.path,
                FileState.discovered_at,
                func.extract("epoch", func.now() - FileState.discovered_at),
            )
            .where(FileState.ingestion_id == ingestion_id, FileState.status == FileStatus.PENDING)
            .order_by(FileState.discovered_at)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return OldestPending(path=row[0], discovered_at=row[1], age_seconds=max(float(row[2]), 0.0))


def _last_commit(ingestion: Ingestion) -> LastCommit | None:
    if ingestion.last_commit_at is None or ingestion.last_snapshot_id is None:
        return None
    return LastCommit(
        at=ingestion.last_commit_at,
        snapshot_id=ingestion.last_snapshot_id,
        table=ingestion.last_commit_table,
    )


async def _last_error(session: AsyncSession, ingestion_id: uuid.UUID) -> LastError | None:
    """The newest error of a file still waiting for a retry, or failed for good."""
    file = await session.scalar(
        select(FileState)
        .where(
            FileState.ingestion_id == ingestion_id,
            FileState.status.in_((FileStatus.PENDING, FileStatus.FAILED)),
            FileState.error.is_not(None),
        )
        .order_by(FileState.updated_at.desc())
        .limit(1)
    )
    if file is None or file.error is None:
        return None
    return LastError(
        path=file.path,
        status=file.status,
        attempts=file.attempts,
        error=file.error,
        at=file.updated_at,
    )


async def _current_run(session: AsyncSession, ingestion_id: uuid.UUID) -> RunProgress | None:
    run = await session.scalar(
        select(Run)
        .where(Run.ingestion_id == ingestion_id, Run.status.in_(UNFINISHED))
        .order_by(Run.created_at.desc())
        .limit(1)
    )
    if run is None:
        return None
    counts = await RunRepository(session).file_counts(run.id)
    return RunProgress(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        created_at=run.created_at,
        started_at=run.started_at,
        files_expected=run.files_expected,
        files_done=sum(n for status, n in counts.items() if status not in WAITING),
        file_counts=counts,
        records=run.records,
    )


@dataclass(frozen=True)
class IngestionBacklog:
    """One live ingestion's backlog, for the metrics of every ingestion at once."""

    ingestion_id: uuid.UUID
    tenant_id: uuid.UUID
    pending: Backlog
    claimed_files: int
    oldest_pending_age_seconds: float


async def all_backlogs(session: AsyncSession) -> list[IngestionBacklog]:
    """Every live ingestion, with zeros where nothing waits: one statement."""
    waiting = and_(FileState.ingestion_id == Ingestion.id, FileState.status.in_(WAITING))
    pending = FileState.status == FileStatus.PENDING
    oldest = func.min(FileState.discovered_at).filter(pending)
    rows = await session.execute(
        select(
            Ingestion.id,
            Ingestion.tenant_id,
            func.count(FileState.id).filter(pending),
            func.coalesce(func.sum(FileState.size).filter(pending), 0),
            func.count(FileState.id).filter(FileState.status == FileStatus.CLAIMED),
            func.coalesce(func.extract("epoch", func.now() - oldest), 0),
        )
        .outerjoin(FileState, waiting)
        .where(Ingestion.deleted_at.is_(None))
        .group_by(Ingestion.id, Ingestion.tenant_id)
    )
    return [
        IngestionBacklog(
            ingestion_id=ingestion_id,
            tenant_id=tenant_id,
            pending=Backlog(files=files, bytes=size),
            claimed_files=claimed,
            oldest_pending_age_seconds=max(float(age), 0.0),
        )
        for ingestion_id, tenant_id, files, size, claimed, age in rows
    ]
