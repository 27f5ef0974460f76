"""A run whose discovery failed for good agrees with its files.

Files discovery recorded before it failed still land (they are published, or swept up), so
they decide the run: `partial` if any landed, `failed` if none did, with an error saying that
discovery was interrupted. Only a run with no files fails at once, with the reason. A run that
is already final is never changed.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery.discovery import fail_run
from shared.models import FileState, FileStatus, Ingestion, RunStatus
from shared.runs import complete_run_if_done
from tests.integration.runs.rows import add_files, completions, new_run, run_row

pytestmark = pytest.mark.integration

REASON = "discovery failed: unexpected error (ref 0123abcd)"  # as flows._reason gives it


async def land(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, files: dict[int, FileStatus]
) -> None:
    """What the processor does with the files: mark them final and close the run if done."""
    async with sessions() as session, session.begin():
        for file_id, status in files.items():
            await session.execute(
                update(FileState)
                .where(FileState.id == file_id)
                .values(status=status, records=5 if status == FileStatus.SUCCESS else None)
            )
        await complete_run_if_done(session, run_id)


async def interrupt(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
    async with sessions() as session:
        await fail_run(session, run_id, REASON)


async def test_files_recorded_before_the_failure_land_and_close_the_run_partial(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion)
    files = await add_files(sessions, ingestion, run_id, [FileStatus.PENDING] * 3)

    await interrupt(sessions, run_id)
    run = await run_row(sessions, run_id)
    assert (run.status, run.files_expected) == (RunStatus.RUNNING, 3)

    await land(sessions, run_id, dict.fromkeys(files, FileStatus.SUCCESS))
    run = await run_row(sessions, run_id)
    assert (run.status, run.records) == (RunStatus.PARTIAL, 15)
    assert run.error is not None and "discovery was interrupted" in run.error
    assert REASON in run.error
    assert await completions(sessions, run_id) == 1


async def test_recorded_files_that_all_fail_close_the_run_failed(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion)
    files = await add_files(sessions, ingestion, run_id, [FileStatus.PENDING] * 2)

    await interrupt(sessions, run_id)
    await land(sessions, run_id, dict.fromkeys(files, FileStatus.FAILED))

    assert (await run_row(sessions, run_id)).status == RunStatus.FAILED


async def test_files_that_landed_before_the_failure_close_the_run_at_once(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion)
    await add_files(sessions, ingestion, run_id, [FileStatus.SUCCESS, FileStatus.SUCCESS])

    await interrupt(sessions, run_id)

    run = await run_row(sessions, run_id)
    assert (run.status, run.files_expected, run.records) == (RunStatus.PARTIAL, 2, 10)
    assert await completions(sessions, run_id) == 1


async def test_a_run_without_files_fails_with_the_reason(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion, status=RunStatus.QUEUED)

    await interrupt(sessions, run_id)

    run = await run_row(sessions, run_id)
    assert (run.status, run.error, run.finished_at is not None) == (RunStatus.FAILED, REASON, True)


@pytest.mark.parametrize("status", [RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED])
async def test_a_final_run_is_never_overwritten(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion, status: RunStatus
) -> None:
    run_id = await new_run(sessions, ingestion, status=status, files_expected=1)
    await add_files(sessions, ingestion, run_id, [FileStatus.SUCCESS])

    await interrupt(sessions, run_id)

    run = await run_row(sessions, run_id)
    assert (run.status, run.error) == (status, None)


async def test_a_run_whose_discovery_finished_is_left_to_its_files(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    run_id = await new_run(sessions, ingestion, files_expected=2)
    files = await add_files(sessions, ingestion, run_id, [FileStatus.PENDING] * 2)

    await interrupt(sessions, run_id)
    await land(sessions, run_id, dict.fromkeys(files, FileStatus.SUCCESS))

    run = await run_row(sessions, run_id)
    assert (run.status, run.error) == (RunStatus.SUCCESS, None)
