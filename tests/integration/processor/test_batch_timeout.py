"""A batch that hangs (a Spark call that never returns) gives its claim up after the batch
timeout: another processor takes the files within the timeout plus one lease, and the hung
holder can no longer commit them when it wakes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor import claims
from autoloader_processor.claims import Claim, ClaimedFile
from autoloader_processor.pool import Outcome, Processor
from shared.models import FileState
from tests.integration.processor.conftest import Landing, record_files

pytestmark = pytest.mark.integration

TIMEOUT, LEASE = 1.0, 6


async def test_a_hung_batch_gives_its_claim_up_within_the_timeout_and_a_lease(
    processor: Processor,
    landing: Landing,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = processor.settings.model_copy(
        update={"batch_timeout_seconds": TIMEOUT, "lease_seconds": LEASE}
    )
    monkeypatch.setattr(processor, "settings", settings)
    wake, woke = threading.Event(), threading.Event()
    results: list[Outcome | BaseException] = []

    def hung_write(
        spark: Any,
        spec: Any,
        table: str,
        files: Sequence[ClaimedFile],
        claim: Claim,
        check_held: Callable[[], None],
    ) -> Outcome:
        """Spark's call that does not return until the test says so; then the commit check."""
        wake.wait(120)
        try:
            check_held()
        except BaseException as error:
            results.append(error)
            raise
        finally:
            woke.set()
        return Outcome(records={file.path: 1 for file in files})

    monkeypatch.setattr(processor, "_write", hung_write)
    sizes = {landing.path(f"f{n}.json"): 10 for n in range(3)}
    ids = await record_files(sessions, landing, sizes)
    async with sessions() as session:
        first = await claims.claim_batch(session, landing.ingestion.id, "hung", 3, 10**9, LEASE)
    assert first is not None
    batch = asyncio.create_task(processor.process(landing.ingestion, landing.spec, first))

    try:
        taken = await take_over(sessions, landing, within=TIMEOUT + LEASE + 5)
    finally:
        wake.set()
    assert {file.id for file in taken.files} == set(ids)
    assert {f.batch_id for f in taken.files} == {first.files[0].batch_id}  # the same replay key
    await asyncio.wait_for(batch, 30)
    assert woke.is_set() and results and type(results[0]).__name__ == "ClaimLost"
    async with sessions() as session:
        rows = (
            await session.execute(
                select(FileState.status, FileState.claimed_by).where(FileState.id.in_(ids))
            )
        ).all()
    # The hung holder recorded nothing: the files are the other processor's.
    assert set(rows) == {("CLAIMED", "other")}


async def take_over(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, within: float
) -> claims.Claim:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with sessions() as session:
            taken = await claims.claim_batch(session, landing.ingestion.id, "other", 10, 10**9, 20)
        if taken is not None:
            return taken
        await asyncio.sleep(0.5)
    raise AssertionError(f"no other processor could take the hung batch within {within}s")
