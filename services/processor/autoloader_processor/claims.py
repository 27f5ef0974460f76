"""Claims on files in PostgreSQL: who may write a batch now, and what became of it.

A claim takes an ingestion's claimable files (PENDING and due, or CLAIMED under an expired
lease) with `FOR UPDATE SKIP LOCKED`, and gives them a short lease, a fresh claim token and a
batch id. The holder renews the lease while it works (`renew`); a holder that dies stops
renewing, so its files are claimable again one lease later, however long the batch would have
taken. Every later write of the claim's outcome names the token, so a holder that lost its claim
changes nothing.

A batch id is the replay key of the batch's Iceberg commit. It stays with exactly the files that
may be in that commit until their outcome is known: a re-claim takes all of a batch's files or
none, and only files known to be outside the commit lose it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import FileState, FileStatus, Ingestion


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


@dataclass(frozen=True)
class Claim:
    token: str
    files: list[ClaimedFile]
    fresh: bool = False  # its batch id was made by this claim: no table can hold it yet

    @property
    def ids(self) -> list[int]:
        return [file.id for file in self.files]


def claimable() -> ColumnElement[bool]:
    now = func.now()
    return or_(
        (FileState.status == FileStatus.PENDING)
        & or_(FileState.next_attempt_at.is_(None), FileState.next_attempt_at <= now),
        (FileState.status == FileStatus.CLAIMED) & (FileState.lease_until < now),
    )


UNFINISHED = (FileStatus.PENDING, FileStatus.CLAIMED)


async def claim_batch(
    session: AsyncSession,
    ingestion_id: uuid.UUID,
    worker: str,
    max_files: int,
    max_bytes: int,
    lease_seconds: int,
) -> Claim | None:
    """Claim the oldest claimable work of the ingestion and commit: the whole of an earlier
    batch whose outcome is unknown, or up to max_files files and max_bytes bytes (at least one)
    not yet in any batch."""
    oldest = (
        await session.execute(
            select(FileState.batch_id)
            .where(FileState.ingestion_id == ingestion_id, claimable())
            .order_by(FileState.id)
            .limit(1)
        )
    ).first()
    if oldest is None:
        await session.rollback()
        return None
    batch_id = oldest.batch_id
    chosen = await _whole_batch(session, batch_id) if batch_id else None
    if not chosen:
        # Fresh files start a batch of their own: the replay key of another batch would make
        # its commit look like theirs.
        batch_id = None
        chosen = await _fresh_files(session, ingestion_id, max_files, max_bytes)
    if not chosen:
        await session.rollback()
        return None
    claim = await _take(session, chosen, worker, lease_seconds, batch_id)
    await session.commit()
    return claim


async def _whole_batch(session: AsyncSession, batch_id: str) -> list[int] | None:
    """Every unfinished file of the batch, locked, if all of them are claimable now."""
    locked = (
        await session.scalars(
            select(FileState.id)
            .where(FileState.batch_id == batch_id, claimable())
            .with_for_update(skip_locked=True)
        )
    ).all()
    unfinished = await session.scalar(
        select(func.count()).where(FileState.batch_id == batch_id, FileState.status.in_(UNFINISHED))
    )
    return list(locked) if locked and len(locked) == unfinished else None


async def _fresh_files(
    session: AsyncSession, ingestion_id: uuid.UUID, max_files: int, max_bytes: int
) -> list[int]:
    candidates = (
        await session.execute(
            select(FileState.id, FileState.size)
            .where(
                FileState.ingestion_id == ingestion_id,
                FileState.batch_id.is_(None),
                claimable(),
            )
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
    return chosen


async def _take(
    session: AsyncSession,
    ids: list[int],
    worker: str,
    lease_seconds: int,
    batch_id: str | None,
) -> Claim:
    token = uuid.uuid4().hex
    claimed = await session.execute(
        update(FileState)
        .where(FileState.id.in_(ids))
        .values(
            status=FileStatus.CLAIMED,
            claimed_by=worker,
            claim_token=token,
            lease_until=func.now() + timedelta(seconds=lease_seconds),
            attempts=FileState.attempts + 1,
            batch_id=batch_id or uuid.uuid4().hex,
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
            row.batch_id,
            row.target_table,
        )
        for row in claimed.all()
    ]
    return Claim(token, sorted(files, key=lambda f: f.id), fresh=batch_id is None)


def _held(claim: Claim) -> list[ColumnElement[bool]]:
    return [
        FileState.id.in_(claim.ids),
        FileState.claim_token == claim.token,
        FileState.status == FileStatus.CLAIMED,
    ]


async def renew(session: AsyncSession, claim: Claim, lease_seconds: int) -> bool:
    """Extend the lease of every file still held; commit. False once any file was lost."""
    renewed = await session.execute(
        update(FileState)
        .where(*_held(claim), FileState.lease_until > func.now())
        .values(lease_until=func.now() + timedelta(seconds=lease_seconds))
        .returning(FileState.id)
    )
    count = len(renewed.all())
    await session.commit()
    return count == len(claim.files)


async def still_held(session: AsyncSession, claim: Claim, margin_seconds: float) -> bool:
    """True while every file is held under this claim with at least margin_seconds of lease."""
    held = await session.scalar(
        select(func.count()).where(
            *_held(claim),
            FileState.lease_until > func.now() + timedelta(seconds=margin_seconds),
        )
    )
    return held == len(claim.files)


MARK_SUCCEEDED = text(
    """
    UPDATE file_state SET status = 'SUCCESS', records = landed.records, error = NULL,
                          lease_until = NULL, claim_token = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:records AS bigint[])) AS landed(id, records)
    WHERE file_state.id = landed.id AND file_state.claim_token = :token
      AND file_state.status = 'CLAIMED'
    RETURNING file_state.id
    """
)


async def mark_succeeded(session: AsyncSession, claim: Claim, records: dict[int, int]) -> int:
    """One statement for the whole batch; claimed_by stays, to show who landed the file.
    Returns how many were still held and so marked."""
    if not records:
        return 0
    marked = await session.execute(
        MARK_SUCCEEDED,
        {"ids": list(records), "records": list(records.values()), "token": claim.token},
    )
    return len(marked.all())


async def record_commit(
    session: AsyncSession, ingestion_id: uuid.UUID, table: str, snapshot_id: int
) -> None:
    """The ingestion's last commit, for its status; `updated_at` stays the spec's."""
    await session.execute(
        update(Ingestion)
        .where(Ingestion.id == ingestion_id)
        .values(
            last_commit_at=func.now(),
            last_snapshot_id=snapshot_id,
            last_commit_table=table,
            updated_at=Ingestion.updated_at,
        )
    )


async def mark_failed(
    session: AsyncSession,
    claim: Claim,
    file: ClaimedFile,
    error: str,
    max_attempts: int,
    retry_base_seconds: float,
    keep_batch: bool,
) -> bool | None:
    """Back the file off for another attempt, or fail it for good: True if final, None if the
    claim was lost. A file known to be outside any commit of its batch gets a new batch id on
    its retry; one whose batch may have landed (keep_batch) keeps its replay key."""
    final = file.attempts >= max_attempts
    delay = timedelta(seconds=retry_base_seconds * 2 ** (file.attempts - 1))
    failed = await session.execute(
        update(FileState)
        .where(*_held(Claim(claim.token, [file])))
        .values(
            status=FileStatus.FAILED if final else FileStatus.PENDING,
            error=error[:4000],
            lease_until=None,
            claimed_by=None,
            claim_token=None,
            batch_id=FileState.batch_id if keep_batch else None,
            next_attempt_at=None if final else func.now() + delay,
        )
        .returning(FileState.id)
    )
    return final if failed.first() else None


async def release(
    session: AsyncSession,
    claim: Claim,
    files: Sequence[ClaimedFile],
    backoff_seconds: float,
    keep_batch: bool,
) -> int:
    """Give files back without spending an attempt: after an infrastructure outage (keeping the
    batch id, since its commit may have landed), or for files a landed commit did not hold."""
    if not files:
        return 0
    released = await session.execute(
        update(FileState)
        .where(*_held(Claim(claim.token, list(files))))
        .values(
            status=FileStatus.PENDING,
            attempts=FileState.attempts - 1,
            lease_until=None,
            claimed_by=None,
            claim_token=None,
            batch_id=FileState.batch_id if keep_batch else None,
            next_attempt_at=func.now() + timedelta(seconds=backoff_seconds),
        )
        .returning(FileState.id)
    )
    return len(released.all())


async def ingestions_with_claimable_files(session: AsyncSession) -> list[uuid.UUID]:
    rows = await session.execute(select(FileState.ingestion_id).where(claimable()).distinct())
    return list(rows.scalars())
