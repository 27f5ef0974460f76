"""Two processors that finish a run's last two files at the same moment close the run once.

Each marks its own file in its own transaction and, before committing, asks whether the run is
done. Under READ COMMITTED neither sees the other's uncommitted mark; only the lock on the run
row, taken before counting, makes the second one count after the first has committed.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import FileState, FileStatus, Ingestion, RunStatus
from shared.runs import complete_run_if_done, complete_runs_if_done
from tests.integration.runs.rows import add_files, completions, new_run, run_row

pytestmark = pytest.mark.integration


async def finish_file(
    sessions: async_sessionmaker[AsyncSession],
    file_id: int,
    run_id: uuid.UUID,
    both_marked: asyncio.Barrier,
) -> bool:
    """What the processor does after a batch: mark, then close the run if done, one commit."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(FileState)
            .where(FileState.id == file_id)
            .values(status=FileStatus.SUCCESS, records=5, claimed_by=None, lease_until=None)
        )
        await both_marked.wait()
        return await complete_run_if_done(session, run_id) is not None


async def test_two_processors_finishing_the_last_files_close_the_run_once(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion, files_expected=3)
    await add_files(sessions, ingestion, run_id, [FileStatus.SUCCESS])
    first, second = await add_files(
        sessions, ingestion, run_id, [FileStatus.CLAIMED, FileStatus.CLAIMED]
    )
    both_marked = asyncio.Barrier(2)

    closed = await asyncio.wait_for(
        asyncio.gather(
            finish_file(sessions, first, run_id, both_marked),
            finish_file(sessions, second, run_id, both_marked),
        ),
        timeout=30,
    )

    assert sorted(closed) == [False, True]
    run = await run_row(sessions, run_id)
    assert (run.status, run.records, run.finished_at is not None) == (RunStatus.SUCCESS, 15, True)
    assert await completions(sessions, run_id) == 1


async def test_closing_several_runs_locks_them_in_order_and_closes_each_once(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    runs = [await new_run(sessions, ingestion, files_expected=1) for _ in range(3)]
    for run_id in runs:
        await add_files(sessions, ingestion, run_id, [FileStatus.SUCCESS])

    async def close(order: list[uuid.UUID]) -> int:
        async with sessions() as session, session.begin():
            return len(await complete_runs_if_done(session, order))

    # Opposite orders from two transactions would deadlock without the sorted locking.
    closed = await asyncio.wait_for(
        asyncio.gather(close(runs), close(list(reversed(runs)))), timeout=30
    )

    assert sum(closed) == 3
    for run_id in runs:
        assert (await run_row(sessions, run_id)).status == RunStatus.SUCCESS
        assert await completions(sessions, run_id) == 1
