"""Discovery's diff against file_state: a listed object is recorded once per version that the
overwrite policy keeps, however often it is listed, and a page of keys costs one statement
however many files the ingestion already knows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from autoloader_discovery.discovery import RunContext, record_new_files
from autoloader_discovery.listing import ListedObject
from shared.models import FileState, Ingestion
from shared.spec import IngestionSpec
from tests.integration.runs.rows import new_run

pytestmark = pytest.mark.integration

ROOT = "file:///tmp/autoloader-runs-test/listed"


def objects(numbers: Sequence[int], etag: str = "v1") -> list[ListedObject]:
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    return [ListedObject(f"{ROOT}/part-{n:05d}.json", etag, 10 + n, at) for n in numbers]


async def context(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion, **spec: Any
) -> RunContext:
    """A new run of the ingestion (the fixture's, deleted: no processor takes its files)."""
    run_id = await new_run(sessions, ingestion)
    validated = IngestionSpec.model_validate({**ingestion.spec, **spec})
    return RunContext(run_id, ingestion.id, ingestion.tenant_id, validated)


async def record(
    sessions: async_sessionmaker[AsyncSession],
    run: RunContext,
    listed: Sequence[ListedObject],
    page_size: int = 1000,
) -> int:
    """As the flow does: one call (one transaction) per page."""
    new = 0
    async with sessions() as session:
        for start in range(0, len(listed), page_size):
            new += await record_new_files(session, run, listed[start : start + page_size])
    return new


async def rows(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> list[tuple[str, uuid.UUID | None]]:
    """The ingestion's recorded objects, in the order recorded, with their runs."""
    async with sessions() as session:
        found = await session.execute(
            select(FileState.path, FileState.run_id)
            .where(FileState.ingestion_id == ingestion.id)
            .order_by(FileState.id)
        )
        return [(row.path, row.run_id) for row in found]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_only_unseen_objects_are_recorded_and_listing_again_records_nothing(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    first = await context(sessions, ingestion)
    assert await record(sessions, first, objects(range(0, 6)), page_size=4) == 6

    again = await context(sessions, ingestion)
    assert await record(sessions, again, objects(range(3, 9)), page_size=4) == 3
    assert await record(sessions, again, objects(range(0, 9)), page_size=4) == 0, "a retry"

    runs = [first.run_id] * 6 + [again.run_id] * 3
    assert await rows(sessions, ingestion) == [
        (listed.path, run) for listed, run in zip(objects(range(9)), runs, strict=True)
    ]


@pytest.mark.parametrize(("policy", "recorded"), [("ignore", 0), ("reingest", 2)])
async def test_an_overwritten_object_follows_the_overwrite_policy(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion, policy: str, recorded: int
) -> None:
    landed = await context(sessions, ingestion, overwrite_policy=policy)
    await record(sessions, landed, objects(range(3)))

    later = await context(sessions, ingestion, overwrite_policy=policy)
    overwritten = objects(range(2), etag="v2") + objects(range(2, 3))
    assert await record(sessions, later, overwritten) == recorded
    assert await record(sessions, later, overwritten) == 0, "each version once"


async def test_a_page_costs_one_statement_however_many_files_are_known(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> None:
    listed = objects(range(4000))
    fresh = await context(sessions, ingestion)
    with statements(engine) as nothing_known:
        assert await record(sessions, fresh, listed[::2]) == 2000  # two pages, all new

    half_known = await context(sessions, ingestion)
    with statements(engine) as known:
        assert await record(sessions, half_known, listed[:2000]) == 1000  # two pages, half new

    assert len(nothing_known) == len(known) == 2
