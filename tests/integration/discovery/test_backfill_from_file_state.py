"""A backfill finds its files in `file_state`, not in what happened to reach `autoloader.files`:
a file the processor's sweep landed before the flow published it is backfilled all the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery.backfill import Progress, Replay, Window
from shared.models import FileState, FileStatus, Ingestion, RunStatus
from tests.integration.runs.rows import add_files, new_run, run_row

pytestmark = pytest.mark.integration


def window(since: datetime, **values: Any) -> Window:
    return Window.of({"since": since.isoformat(), **values})


async def replay(
    sessions: async_sessionmaker[AsyncSession],
    ingestion: Ingestion,
    run_id: uuid.UUID,
    window: Window,
    page_size: int = 1000,
) -> Progress:
    return await Replay(
        ingestion_id=ingestion.id,
        run_id=run_id,
        window=window,
        sessions=sessions,
        page_size=page_size,
    ).run()


async def rows_of(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> list[FileState]:
    async with sessions() as session:
        found = await session.scalars(
            select(FileState).where(FileState.ingestion_id == ingestion.id).order_by(FileState.id)
        )
        return list(found.all())


async def test_a_reprocessing_backfill_queues_a_landed_file_that_was_never_published(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    landed = await new_run(sessions, ingestion, status=RunStatus.SUCCESS)
    since = datetime.now(UTC) - timedelta(minutes=1)
    [file_id] = await add_files(sessions, ingestion, landed, [FileStatus.SUCCESS])
    backfill = await new_run(sessions, ingestion, status=RunStatus.RUNNING)

    progress = await replay(sessions, ingestion, backfill, window(since, reprocess=True))

    assert (progress.files_matched, progress.files_queued) == (1, 1)
    [row] = await rows_of(sessions, ingestion)
    assert (row.id, row.run_id, row.status) == (file_id, backfill, FileStatus.PENDING)
    again = await replay(sessions, ingestion, backfill, window(since, reprocess=True))
    assert (again.files_matched, again.files_queued) == (1, 1), "a retried flow counts it once"
    [same] = await rows_of(sessions, ingestion)
    assert (same.id, same.run_id, same.updated_at) == (file_id, backfill, row.updated_at)
    assert (await run_row(sessions, backfill)).progress == {
        "pages": 1,
        "files_matched": 1,
        "files_queued": 1,
        "files_skipped": 0,
    }


async def discovered(
    sessions: async_sessionmaker[AsyncSession], file_ids: list[int], at: datetime
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(FileState).where(FileState.id.in_(file_ids)).values(discovered_at=at)
        )


async def test_without_reprocess_only_failed_files_of_the_window_are_queued_page_by_page(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    landed = await new_run(sessions, ingestion, status=RunStatus.PARTIAL)
    statuses = [FileStatus.FAILED, FileStatus.SUCCESS, FileStatus.FAILED] * 3
    ids = await add_files(sessions, ingestion, landed, statuses)
    since = datetime.now(UTC) - timedelta(hours=1)
    await discovered(sessions, ids[:3], since - timedelta(seconds=1))  # before the window
    backfill = await new_run(sessions, ingestion, status=RunStatus.RUNNING)

    progress = await replay(sessions, ingestion, backfill, window(since), page_size=2)

    assert progress.as_dict() == {
        "pages": 3,
        "files_matched": 6,
        "files_queued": 4,
        "files_skipped": 2,
    }
    queued = [row.id for row in await rows_of(sessions, ingestion) if row.run_id == backfill]
    assert queued == [ids[3], ids[5], ids[6], ids[8]]


async def test_until_bounds_the_window_and_files_in_an_open_run_are_skipped(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    closed = await new_run(sessions, ingestion, status=RunStatus.SUCCESS)
    open_run = await new_run(sessions, ingestion, status=RunStatus.RUNNING)
    [early, late] = await add_files(sessions, ingestion, closed, [FileStatus.SUCCESS] * 2)
    [busy] = await add_files(sessions, ingestion, open_run, [FileStatus.FAILED])
    now = datetime.now(UTC)
    await discovered(sessions, [late], now + timedelta(hours=1))
    backfill = await new_run(sessions, ingestion, status=RunStatus.RUNNING)

    progress = await replay(
        sessions,
        ingestion,
        backfill,
        window(
            now - timedelta(hours=1), until=(now + timedelta(minutes=1)).isoformat(), reprocess=True
        ),
    )

    assert (progress.files_matched, progress.files_queued) == (2, 1)
    runs = {row.id: row.run_id for row in await rows_of(sessions, ingestion)}
    assert runs == {early: backfill, late: closed, busy: open_run}


async def test_a_target_table_gets_rows_of_its_own_and_a_second_replay_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    landed = await new_run(sessions, ingestion, status=RunStatus.SUCCESS)
    since = datetime.now(UTC) - timedelta(minutes=1)
    ids = await add_files(sessions, ingestion, landed, [FileStatus.SUCCESS] * 3)
    backfill = await new_run(sessions, ingestion, status=RunStatus.RUNNING)
    target = window(since, reprocess=True, target_table="spark_catalog.default.again")

    first = await replay(sessions, ingestion, backfill, target)
    before = [
        (r.id, r.run_id, r.status, r.target_table) for r in await rows_of(sessions, ingestion)
    ]
    second = await replay(sessions, ingestion, backfill, target)

    assert (first.files_matched, first.files_queued) == (3, 3)
    assert (second.files_matched, second.files_queued) == (3, 3), "counted, not queued again"
    after = [(r.id, r.run_id, r.status, r.target_table) for r in await rows_of(sessions, ingestion)]
    assert after == before
    own = [row for row in before if row[3] is None]
    copies = [row for row in before if row[3] is not None]
    assert [(row[0], row[1], row[2]) for row in own] == [
        (file_id, landed, FileStatus.SUCCESS) for file_id in ids
    ]
    assert [(row[1], row[2]) for row in copies] == [(backfill, FileStatus.PENDING)] * 3
