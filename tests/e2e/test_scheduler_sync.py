"""scheduler-sync keeps Prefect matching the database, through outages and replays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.components.prefect import PrefectServer, PrefectWorker
from devstack.layout import Addresses, Layout
from shared.settings import KafkaSettings
from shared.topics import INGESTION_EVENTS
from tests.e2e.conftest import deployment_of, eventually, scheduled_ingestion
from tests.kafka_tail import consumed_to, end_offsets

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def cron_of(deployment: Any) -> tuple[str, str] | None:
    if deployment is None or not deployment.schedules:
        return None
    schedule = deployment.schedules[0].schedule
    return (schedule.cron, schedule.timezone)


async def create(api: httpx.AsyncClient, **overrides: Any) -> str:
    response = await api.post("/api/v1/ingestions", json=scheduled_ingestion(**overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_scheduled_ingestion_gets_its_deployment_within_5_seconds(
    api: httpx.AsyncClient, prefect: PrefectClient
) -> None:
    ingestion_id = await create(api)

    deployment = await eventually(
        lambda: deployment_of(prefect, ingestion_id), bool, 5, "no deployment"
    )

    assert cron_of(deployment) == ("30 2 * * *", "Europe/Berlin")
    assert deployment.parameters == {"ingestion_id": ingestion_id}
    assert deployment.work_queue_name == "default"
    assert "autoloader" in deployment.tags and "source:local" in deployment.tags
    assert not deployment.paused
    synced = await eventually(
        lambda: api.get(f"/api/v1/ingestions/{ingestion_id}"),
        lambda r: r.json()["sync_status"] == "synced",
        5,
        "sync status not written back",
    )
    assert synced.json()["prefect_deployment_id"] == str(deployment.id)


async def test_schedule_change_pause_resume_and_delete_show_in_prefect(
    api: httpx.AsyncClient, prefect: PrefectClient
) -> None:
    ingestion_id = await create(api)
    url = f"/api/v1/ingestions/{ingestion_id}"
    await eventually(lambda: deployment_of(prefect, ingestion_id), bool, 10, "no deployment")

    await api.patch(url, json={"schedule": {"frequency": "hourly", "timezone": "UTC"}})
    await eventually(
        lambda: deployment_of(prefect, ingestion_id),
        lambda d: cron_of(d) == ("0 * * * *", "UTC"),
        10,
        "schedule not updated",
    )
    await api.post(f"{url}/pause")
    await eventually(
        lambda: deployment_of(prefect, ingestion_id),
        lambda d: d.paused,
        10,
        "deployment not paused",
    )
    await api.post(f"{url}/resume")
    await eventually(
        lambda: deployment_of(prefect, ingestion_id),
        lambda d: not d.paused,
        10,
        "deployment not resumed",
    )
    await api.delete(url)
    await eventually(
        lambda: deployment_of(prefect, ingestion_id),
        lambda d: d is None,
        10,
        "deployment not deleted",
    )


async def test_run_makes_a_flow_run_that_completes_on_the_worker(
    api: httpx.AsyncClient, prefect: PrefectClient, tmp_path: Path
) -> None:
    ingestion_id = await create(
        api,
        source={"type": "local", "path": tmp_path.as_uri(), "file_pattern": "*.json"},
        schedule=None,
    )
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]

    run = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] == "success",
        120,
        "run did not finish",
    )

    flow_run_id = run.json()["prefect_flow_run_id"]
    # The run closes inside the flow's last task; the flow run completes just after.
    flow_run = await eventually(
        partial(prefect.read_flow_run, flow_run_id),
        lambda fr: fr.state is not None and fr.state.is_completed(),
        30,
        "flow run did not complete",
    )
    assert flow_run.parameters == {"ingestion_id": ingestion_id, "run_id": run_id}
    assert run.json()["files_expected"] == 0


async def test_the_same_event_twice_gives_one_deployment_and_one_flow_run(
    api: httpx.AsyncClient,
    prefect: PrefectClient,
    engine: AsyncEngine,
    kafka_settings: KafkaSettings,
) -> None:
    ingestion_id = await create(api, schedule=None)
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["prefect_flow_run_id"] is not None,
        60,
        "no flow run",
    )
    # Deliver every event of this ingestion a second time, as a redelivery would.
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET sent_at = NULL WHERE key = :key"), {"key": ingestion_id}
        )
    await eventually(
        lambda: _unsent(engine, ingestion_id), lambda n: n == 0, 30, "events not re-sent"
    )
    # Proof that scheduler-sync got past the redelivered events, not a guess that it did.
    bootstrap = kafka_settings.bootstrap_servers
    ends = await end_offsets(INGESTION_EVENTS.name, bootstrap)
    await eventually(
        lambda: consumed_to("scheduler-sync", ends, bootstrap),
        bool,
        60,
        "scheduler-sync did not consume the redelivered events",
    )

    deployment = await deployment_of(prefect, ingestion_id)
    assert deployment is not None
    # Filtered by name on the server: a long-lived stack holds more deployments than a page.
    deployments = await prefect.read_deployments(
        deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[f"ingestion-{ingestion_id}"])
        )
    )
    assert [d.id for d in deployments] == [deployment.id]
    flow_runs = await prefect.read_flow_runs(
        flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]))
    )
    assert len(flow_runs) == 1


async def _unsent(engine: AsyncEngine, key: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE key = :key AND sent_at IS NULL"), {"key": key}
        )
    return int(count or 0)


async def test_changes_made_while_prefect_is_down_reach_it_after_it_returns(
    api: httpx.AsyncClient, prefect: PrefectClient
) -> None:
    server = PrefectServer(Layout.discover(), Addresses())
    if server.pid() is None:
        pytest.skip("needs the native stack (`make up`) to stop and start Prefect")
    changed = await create(api)
    await eventually(lambda: deployment_of(prefect, changed), bool, 10, "no deployment")

    await asyncio.to_thread(server.stop)
    try:
        created = await create(
            api,
            schedule={
                "frequency": "weekly",
                "day_of_week": "monday",
                "time": "06:00",
                "timezone": "Asia/Tokyo",
            },
        )
        await api.patch(
            f"/api/v1/ingestions/{changed}",
            json={"schedule": {"frequency": "every_n_minutes", "interval_minutes": 15}},
        )
        await api.post(f"/api/v1/ingestions/{changed}/pause")
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(server.ensure_up)
        await asyncio.to_thread(PrefectWorker(server).ensure_up)

    await eventually(
        lambda: deployment_of(prefect, created),
        lambda d: cron_of(d) == ("0 6 * * 1", "Asia/Tokyo"),
        120,
        "deployment made while Prefect was down is missing",
    )
    await eventually(
        lambda: deployment_of(prefect, changed),
        lambda d: cron_of(d) == ("*/15 * * * *", "Europe/Berlin") and d.paused,
        60,
        "change made while Prefect was down is missing",
    )


async def deployment_names(prefect: PrefectClient) -> set[str]:
    """Every deployment's name, page by page (a long-lived stack holds more than one page)."""
    names: set[str] = set()
    while page := await prefect.read_deployments(offset=len(names), limit=200):
        names |= {deployment.name for deployment in page}
    return names


async def test_rebuild_recreates_every_deployment_in_an_empty_prefect(
    api: httpx.AsyncClient, prefect: PrefectClient, engine: AsyncEngine
) -> None:
    ids = [await create(api) for _ in range(3)]
    for ingestion_id in ids:
        await eventually(partial(deployment_of, prefect, ingestion_id), bool, 10, "no deployment")
    for _ in range(20):  # a page at a time: a long-lived stack holds more than one page
        for deployment in await prefect.read_deployments():
            await prefect.delete_deployment(deployment.id)
    assert await prefect.read_deployments() == []

    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "autoloader-sync"), "rebuild"],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "replayed" in result.stdout
    async with engine.connect() as connection:
        live = (
            (await connection.execute(text("SELECT id FROM ingestions WHERE deleted_at IS NULL")))
            .scalars()
            .all()
        )
    names = await deployment_names(prefect)
    assert {f"ingestion-{i}" for i in live} <= names
    assert all(f"ingestion-{i}" in names for i in ids)


async def test_a_malformed_event_goes_to_the_dlq_and_the_consumer_keeps_going(
    api: httpx.AsyncClient, prefect: PrefectClient, kafka_settings: Any
) -> None:
    from aiokafka import AIOKafkaProducer

    from shared.topics import DLQ
    from tests.kafka_tail import tail

    dlq = await tail(kafka_settings.bootstrap_servers, DLQ)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await producer.start()
    marker = f"not json {os.urandom(4).hex()}".encode()
    try:
        await producer.send_and_wait(INGESTION_EVENTS.name, marker, key=b"poison")
        ingestion_id = await create(api)
        await eventually(lambda: deployment_of(prefect, ingestion_id), bool, 10, "consumer stopped")

        async def dead_letters() -> list[Any]:
            batches = await dlq.getmany(timeout_ms=500)
            return [m for ms in batches.values() for m in ms if m.value == marker]

        [letter] = await eventually(dead_letters, bool, 10, "nothing in the DLQ")
    finally:
        await producer.stop()
        await dlq.stop()
    headers = dict(letter.headers)
    assert b"unparseable ingestion event" in headers["reason"]
    assert headers["source_topic"] == INGESTION_EVENTS.name.encode()
    assert letter.key == b"poison"
