"""Claiming files and recording their outcome in PostgreSQL.

A claim takes an ingestion's claimable files (PENDING and due, or CLAIMED under an expired
lease) with `FOR UPDATE SKIP LOCKED`, bounded by count and bytes, and gives them a lease and a
batch id. A file keeps the batch id of its first claim, so whoever re-claims it after a crash
looks for that batch in the table before writing it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import FileState, FileStatus


@dataclass(frozen=True)
class ClaimedFile:
    id: int
    run_id: uuid.UUID | None
    path: str
    etag: str
    size: int
    attempts: int
    batch_id: str
    target_table: str | None = None  # None: the ingestion's own table


def _claimable(ingestion_id: uuid.UUID) -> list[ColumnElement[bool]]:
    now = func.now()
    return [
        FileState.ingestion_id == ingestion_id,
        or_(
            (FileState.status == FileStatus.PENDING)
            & or_(FileState.next_attempt_at.is_(None), FileState.next_attempt_at <= now),
            (FileState.status == FileStatus.CLAIMED) & (FileState.lease_until < now),
        ),
    ]


async def claim_batch(
    session: AsyncSession,
    ingestion_id: uuid.UUID,
    worker: str,
    max_files: int,
    max_bytes: int,
    lease_seconds: int,
) -> list[ClaimedFile]:
    """Claim up to max_files files and max_bytes bytes (at least one file); commit."""
    candidates = (
        await session.execute(
            select(FileState.id, FileState.size)
            .where(*_claimable(ingestion_id))
            .order_by(FileState.id)
            .limit(max_files)
            .with_for_update(skip_locked=True)
        )
    ).all()
    chosen: list[int] = []
    total = 0
    for file_id, size in candidates:
        if chosen and total + size > max_bytes:
            break
        chosen.append(file_id)
        total += size
    if not chosen:
        await session.rollback()
        return []
    claimed = await session.execute(
        update(FileState)
        .where(FileState.id.in_(chosen))
        .values(
            status=FileStatus.CLAIMED,
            claimed_by=worker,
            lease_until=func.now() + timedelta(seconds=lease_seconds),
            attempts=FileState.attempts + 1,
            batch_id=func.coalesce(FileState.batch_id, uuid.uuid4().hex),
        )
        .returning(
            FileState.id,
            FileState.run_id,
            FileState.path,
            FileState.etag,
            FileState.size,
            FileState.attempts,
            FileState.batch_id,
            FileState.target_table,
        )
    )
    files = [
        ClaimedFile(
            row.id,
            row.run_id,
            row.path,
            row.etag,
            row.size,
            row.attempts,
            row.batch_id or "",
            row.target_table,
        )
        for row in claimed.all()
    ]
    await session.commit()
    return sorted(files, key=lambda f: f.id)


async def still_held(session: AsyncSession, files: Sequence[ClaimedFile], worker: str) -> bool:
    """True while every file is still claimed by this worker under a live lease."""
    held = await session.scalar(
        select(func.count()).where(
            FileState.id.in_([f.id for f in files]),
            FileState.status == FileStatus.CLAIMED,
            FileState.claimed_by == worker,
            FileState.lease_until > func.now(),
        )
    )
    return held == len(files)


MARK_SUCCEEDED = text(
    """
    UPDATE file_state SET status = 'SUCCESS', records = landed.records, error = NULL,
                          lease_until = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:records AS bigint[])) AS landed(id, records)
    WHERE file_state.id = landed.id
    """
)


async def mark_succeeded(session: AsyncSession, records: dict[int, int]) -> None:
    """One statement for the whole batch; claimed_by stays, to show who landed the file."""
    if records:
        await session.execute(
            MARK_SUCCEEDED, {"ids": list(records), "records": list(records.values())}
        )


async def mark_failed(
    session: AsyncSession,
    file: ClaimedFile,
    error: str,
    max_attempts: int,
    retry_base_seconds: float,
) -> bool:
    """Back the file off for another attempt, or fail it for good; True if final."""
    final = file.attempts >= max_attempts
    delay = timedelta(seconds=retry_base_seconds * 2 ** (file.attempts - 1))
    await session.execute(
        update(FileState)
        .where(FileState.id == file.id)
        .values(
            status=FileStatus.FAILED if final else FileStatus.PENDING,
            error=error[:4000],
            lease_until=None,
            claimed_by=None,
            batch_id=None,
            next_attempt_at=None if final else datetime.now(UTC) + delay,
        )
    )
    return final


async def ingestions_with_claimable_files(session: AsyncSession) -> list[uuid.UUID]:
    now = func.now()
    rows = await session.execute(
        select(FileState.ingestion_id)
        .where(
            or_(
                (FileState.status == FileStatus.PENDING)
                & or_(FileState.next_attempt_at.is_(None), FileState.next_attempt_at <= now),
                (FileState.status == FileStatus.CLAIMED) & (FileState.lease_until < now),
            )
        )
        .distinct()
    )
    return list(rows.scalars())
