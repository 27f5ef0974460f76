"""The processor pool gets the same `FilesDiscovered` message again, twice: nothing lands twice,
no file spends another attempt, and the run stays as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import KafkaSettings
from shared.topics import FILES
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files, run_and_wait
from tests.kafka_tail import consumed_to, end_offsets, tail

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
    files_topic = await tail(bootstrap, FILES)
    try:
        run = await run_and_wait(api, created["id"])

        async def of_this_ingestion() -> list[Any]:
            batches = await files_topic.getmany(timeout_ms=500)
            return [m for ms in batches.values() for m in ms if m.key == created["id"].encode()]

        published = await eventually(of_this_ingestion, bool, 30, "no FilesDiscovered message")
    finally:
        await files_topic.stop()
    assert run["status"] == "success", run
    before = await attempts(engine, created["id"])

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for message in published * 2:
            await producer.send_and_wait(FILES.name, message.value, key=message.key)
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
