"""One ingestion's backlog is landed by several batches at once: its file events share one
Kafka partition, so one consumer gets them all, and its drain must use the pool's sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor.claims import Claim, ClaimedFile
from autoloader_processor.engine import SparkSlots
from autoloader_processor.pool import Outcome, Processor
from shared.models import FileState, FileStatus
from tests.integration.processor.conftest import Landing, record_files

pytestmark = pytest.mark.integration


async def test_two_workers_of_one_drain_hold_a_batch_each_at_once(
    processor: Processor,
    landing: Landing,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each batch waits in Spark's place until the other batch is there too: landed one after
    another, the first would wait out the barrier's 30 s and fail, and no file would be SUCCESS."""
    monkeypatch.setattr(processor, "slots", SparkSlots(processor.slots.build, 2))
    both_in = threading.Barrier(2, timeout=30)

    def write(
        spark: Any,
        spec: Any,
        table: str,
        files: Sequence[ClaimedFile],
        claim: Claim,
        check_held: Callable[[], None],
    ) -> Outcome:
        both_in.wait()
        check_held()
        return Outcome(records={file.path: 1 for file in files})

    monkeypatch.setattr(processor, "_write", write)
    ids = await record_files(sessions, landing, {landing.path(f"f{n}.json"): 10 for n in range(4)})
    execution = landing.spec.execution.model_copy(update={"max_files_per_batch": 2})
    spec = landing.spec.model_copy(update={"execution": execution})

    assert await processor.land(landing.ingestion, spec, workers=2) == 4

    async with sessions() as session:
        rows = await session.execute(
            select(FileState.status, FileState.batch_id).where(FileState.id.in_(ids))
        )
        states = rows.all()
    assert {status for status, _ in states} == {FileStatus.SUCCESS}
    assert len({batch for _, batch in states}) == 2  # two batches of two, not one of four
