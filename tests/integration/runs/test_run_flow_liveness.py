"""The discovery flow's two signals to the watchdog: whether Prefect will retry a failing
attempt (then the run is not closed yet), and the run's heartbeat while the flow works."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from prefect import flow
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from autoloader_discovery import flows
from shared.models import Ingestion
from tests.integration.runs.rows import new_run, run_row

pytestmark = pytest.mark.integration


class Flaky(Exception):
    pass


async def test_only_the_last_attempt_of_a_failing_flow_run_is_final(
    stack_env: dict[str, str],
) -> None:
    seen: list[bool] = []

    @flow(retries=2, retry_delay_seconds=0)
    async def failing() -> None:
        seen.append(flows._prefect_retries_this_flow_run())
        raise Flaky("every attempt fails")

    with pytest.raises(Flaky):
        await failing()

    assert seen == [True, True, False]


async def test_a_stopped_process_leaves_the_run_to_the_watchdog(
    stack_env: dict[str, str],
) -> None:
    decisions: dict[str, bool] = {}

    @flow
    async def deciding() -> None:
        decisions["error"] = flows._closes_the_run(ValueError("listing failed"))
        decisions["cancelled"] = flows._closes_the_run(asyncio.CancelledError())
        decisions["exit"] = flows._closes_the_run(SystemExit(1))
        decisions["interrupt"] = flows._closes_the_run(KeyboardInterrupt())

    await deciding()

    assert decisions == {"error": True, "cancelled": True, "exit": False, "interrupt": False}


async def test_the_flow_beats_while_it_works(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    ingestion: Ingestion,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flows, "HEARTBEAT_SECONDS", 0.2)
    run_id: uuid.UUID = await new_run(sessions, ingestion)
    started = datetime.now(UTC)

    beating = asyncio.create_task(flows._beat_until_cancelled(engine, run_id))
    try:
        beats = set()
        for _ in range(40):
            await asyncio.sleep(0.1)
            heartbeat = (await run_row(sessions, run_id)).heartbeat_at
            if heartbeat is not None:
                beats.add(heartbeat)
            if len(beats) >= 3:
                break
    finally:
        beating.cancel()

    assert len(beats) >= 3, "the heartbeat did not advance"
    assert min(beats) >= started
