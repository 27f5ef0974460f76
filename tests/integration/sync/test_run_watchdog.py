"""The run watchdog's decisions against the real Prefect server and PostgreSQL.

A run whose flow run crashed gets a new flow run for the same run; after its last attempt it is
closed with a reason and a ref (Prefect's message is in the log under the ref); a flow run left
RUNNING with no heartbeat is marked crashed and retried; two passes at once create one flow run;
a run whose discovery finished is left to its files.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Crashed, Running
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_sync.consumer import build_syncer
from autoloader_sync.settings import SyncSettings
from autoloader_sync.sync import Syncer
from autoloader_sync.watchdog import Watchdog
from shared.models import Ingestion, Run, RunStatus, SyncStatus
from shared.runs import UNFINISHED
from shared.settings import DatabaseSettings, PrefectSettings
from tests.integration.runs.rows import new_ingestion, new_run, run_row

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(own_database: DatabaseSettings, stack_env: dict[str, str]) -> SyncSettings:
    return SyncSettings(
        database=own_database,
        watchdog_stale_heartbeat_seconds=45,
        watchdog_max_flow_attempts=3,
        watchdog_queued_deadline_seconds=60,
    )


@pytest.fixture
def syncer(settings: SyncSettings) -> Syncer:
    return build_syncer(settings)


@pytest.fixture
async def prefect(prefect_settings: PrefectSettings) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(prefect_settings.api_url) as client:
        yield client


@pytest.fixture
async def ingestion(
    own_sessions: async_sessionmaker[AsyncSession], unserved_deployment: uuid.UUID
) -> AsyncIterator[Ingestion]:
    """A live ingestion whose recorded deployment is the unserved one; its runs are closed
    afterwards, so that the next test's watchdog does not see them."""
    ingestion = await new_ingestion(own_sessions, deleted=False)
    async with own_sessions() as session, session.begin():
        await session.execute(
            update(Ingestion)
            .where(Ingestion.id == ingestion.id)
            .values(prefect_deployment_id=unserved_deployment, sync_status=SyncStatus.SYNCED)
        )
    yield ingestion
    async with own_sessions() as session, session.begin():
        await session.execute(
            update(Run)
            .where(Run.ingestion_id == ingestion.id, Run.status.in_(UNFINISHED))
            .values(status=RunStatus.FAILED, error="closed by the test")
        )


async def started_run(
    syncer: Syncer, ingestion: Ingestion, deployment_id: uuid.UUID, **values: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    """A run and its first flow run, created as scheduler-sync creates them."""
    run_id = await new_run(syncer.sessions, ingestion, **values)
    parameters = {"ingestion_id": str(ingestion.id), "run_id": str(run_id)}
    flow_run_id = await syncer.prefect.create_flow_run(deployment_id, run_id, parameters)
    async with syncer.sessions() as session, session.begin():
        await session.execute(
            update(Run).where(Run.id == run_id).values(prefect_flow_run_id=flow_run_id)
        )
    return run_id, flow_run_id


async def flow_runs_of(prefect: PrefectClient, run_id: uuid.UUID) -> list[FlowRun]:
    return await prefect.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run_id}"]))
    )


async def crash(prefect: PrefectClient, flow_run_id: uuid.UUID, message: str) -> None:
    await prefect.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)


async def test_a_crashed_flow_run_is_retried_for_the_same_run(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
    unserved_deployment: uuid.UUID,
) -> None:
    run_id, first = await started_run(syncer, ingestion, unserved_deployment)
    await crash(prefect, first, "worker lost")

    dead = await Watchdog(syncer, settings).once()

    assert [d.run_id for d in dead] == [run_id]
    run = await run_row(syncer.sessions, run_id)
    assert (run.status, run.flow_attempts) == (RunStatus.RUNNING, 1)
    assert run.prefect_flow_run_id not in (None, first)
    retry = await prefect.read_flow_run(run.prefect_flow_run_id)
    assert retry.idempotency_key == f"{run_id}:1"
    assert retry.parameters["run_id"] == str(run_id)
    assert retry.deployment_id == unserved_deployment
    assert retry.state is not None and retry.state.type == StateType.SCHEDULED


async def test_after_the_last_attempt_the_run_fails_with_the_reason(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
    unserved_deployment: uuid.UUID,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_id, last = await started_run(syncer, ingestion, unserved_deployment, flow_attempts=2)
    await crash(prefect, last, "worker lost at 10.0.0.7")

    with caplog.at_level(logging.WARNING, logger="autoloader_sync.watchdog"):
        await Watchdog(syncer, settings).once()

    run = await run_row(syncer.sessions, run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert "Crashed" in run.error and "3 flow runs" in run.error
    # The tenant sees the reason and a ref; Prefect's message is in the log under that ref.
    assert "worker lost" not in run.error and "10.0.0.7" not in run.error
    ref = re.search(r"\(ref ([0-9a-f]{8})\)", run.error)
    assert ref is not None, run.error
    logged = [r.getMessage() for r in caplog.records if getattr(r, "error_ref", None) == ref[1]]
    assert logged and "worker lost at 10.0.0.7" in logged[0], caplog.text
    assert len(await flow_runs_of(prefect, run_id)) == 1


async def test_two_passes_at_once_create_one_flow_run(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
    unserved_deployment: uuid.UUID,
) -> None:
    run_id, first = await started_run(syncer, ingestion, unserved_deployment)
    await crash(prefect, first, "worker lost")
    replicas = [Watchdog(build_syncer(settings), settings) for _ in range(2)]

    await asyncio.gather(*(replica.once() for replica in replicas))

    assert len(await flow_runs_of(prefect, run_id)) == 2
    assert (await run_row(syncer.sessions, run_id)).flow_attempts == 1


async def test_a_running_flow_run_without_a_heartbeat_is_marked_crashed_and_retried(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
    unserved_deployment: uuid.UUID,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    run_id, first = await started_run(syncer, ingestion, unserved_deployment, heartbeat_at=long_ago)
    await prefect.set_flow_run_state(first, Running(), force=True)
    alive = Watchdog(syncer, settings)
    assert await alive.once() == [], "RUNNING for less than the stale limit is alive"

    quick = Watchdog(syncer, settings.model_copy(update={"watchdog_stale_heartbeat_seconds": 1}))
    await asyncio.sleep(1.5)
    dead = await quick.once()

    assert [d.run_id for d in dead] == [run_id]
    crashed = await prefect.read_flow_run(first)
    assert crashed.state is not None and crashed.state.type == StateType.CRASHED
    assert "no sign of life" in (crashed.state.message or "")
    assert (await run_row(syncer.sessions, run_id)).flow_attempts == 1


async def test_a_queued_run_that_never_got_a_flow_run_gets_one_past_the_deadline(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
) -> None:
    fresh = await new_run(syncer.sessions, ingestion, status=RunStatus.QUEUED)
    old = await new_run(
        syncer.sessions,
        ingestion,
        status=RunStatus.QUEUED,
        created_at=datetime.now(UTC) - timedelta(minutes=5),
    )

    dead = await Watchdog(syncer, settings).once()

    assert [d.run_id for d in dead] == [old]
    assert len(await flow_runs_of(prefect, old)) == 1
    assert len(await flow_runs_of(prefect, fresh)) == 0


async def test_a_run_whose_discovery_finished_is_left_to_its_files(
    syncer: Syncer,
    settings: SyncSettings,
    prefect: PrefectClient,
    ingestion: Ingestion,
    unserved_deployment: uuid.UUID,
) -> None:
    run_id, first = await started_run(syncer, ingestion, unserved_deployment, files_expected=3)
    await crash(prefect, first, "worker lost")

    assert await Watchdog(syncer, settings).once() == []
    run = await run_row(syncer.sessions, run_id)
    assert (run.status, run.flow_attempts) == (RunStatus.RUNNING, 0)
