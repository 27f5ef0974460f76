"""The processor pool gets the same `FilesDiscovered` message again, twice: nothing lands twice,
no file spends another attempt, and the run stays as it was."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import DiscoveredFile, FilesDiscovered
from shared.settings import KafkaSettings
from shared.topics import FILES
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files, run_and_wait
from tests.kafka_tail import consumed_to, end_offsets

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("dup")


async def attempts(engine: AsyncEngine, ingestion_id: str) -> list[tuple[str, int, int]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT status, attempts, records FROM file_state WHERE ingestion_id = :id "
                "ORDER BY id"
            ),
            {"id": ingestion_id},
        )
        return [tuple(row) for row in rows.all()]


async def files_discovered(engine: AsyncEngine, ingestion_id: str, run_id: str) -> FilesDiscovered:
    """The `FilesDiscovered` the flow sends for the run's files."""
    async with engine.connect() as connection:
        tenant_id = await connection.scalar(
            text("SELECT tenant_id FROM ingestions WHERE id = :id"), {"id": ingestion_id}
        )
        rows = await connection.execute(
            text("SELECT id, path, etag, size FROM file_state WHERE run_id = :run ORDER BY id"),
            {"run": run_id},
        )
        files = [DiscoveredFile(file_id=r.id, path=r.path, etag=r.etag, size=r.size) for r in rows]
    assert files, f"run {run_id} has no files"
    return FilesDiscovered(
        tenant_id=tenant_id,
        ingestion_id=uuid.UUID(ingestion_id),
        run_id=uuid.UUID(run_id),
        files=files,
    )


async def test_the_same_files_message_twice_more_changes_nothing(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    engine: AsyncEngine,
    table: str,
    kafka_settings: KafkaSettings,
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, 12, rows=4)
    created = (await api.post("/api/v1/ingestions", json=ingestion(prefix, table))).json()
    run = await run_and_wait(api, created["id"])
    assert run["status"] == "success", run
    before = await attempts(engine, created["id"])
    # The message the flow sends for these files. Built from the run's rows, not caught on the
    # topic: the processor's sweep may claim new files before the flow publishes, and then the
    # flow has nothing pending to publish.
    published = await files_discovered(engine, created["id"], run["id"])

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(2):
            await producer.send_and_wait(
                FILES.name, published.model_dump_json().encode(), key=published.key
            )
    finally:
        await producer.stop()
    ends = await end_offsets(FILES.name, bootstrap)
    await eventually(
        lambda: consumed_to("processor", ends, bootstrap),
        bool,
        60,
        "the processor pool did not consume the redelivered messages",
    )

    assert await attempts(engine, created["id"]) == before
    assert all(status == "SUCCESS" and tries == 1 for status, tries, _ in before), before
    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == expected
    assert frame.select("file", "row").distinct().count() == expected
    again = (await api.get(f"/api/v1/runs/{run['id']}")).json()
    assert (again["status"], again["file_counts"]) == ("success", run["file_counts"])
