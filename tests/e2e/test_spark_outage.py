"""Spark Connect stopped for a minute in the middle of a run: the run completes once it is back,
every row once, and no file spent an attempt on the outage.

The test stops a component every other test uses, so it holds the stack lock exclusively
(/tmp/autoloader-stack.lock, the lock `make chaos` also takes)."""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from devstack.components.spark import SparkConnect
from devstack.layout import Addresses, Layout
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTAGE_SECONDS = 60
HEALED_WITHIN = 60


@pytest.fixture
def spark_connect() -> Iterator[SparkConnect]:
    component = SparkConnect(Layout.discover(), Addresses())
    if component.pid() is None:
        pytest.skip("needs the native stack (`make up`) to stop and start Spark Connect")
    with open("/tmp/autoloader-stack.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield component
        finally:
            component.ensure_up()
            fcntl.flock(lock, fcntl.LOCK_UN)


async def file_attempts(engine: Any, ingestion_id: str) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT status, max(attempts) FROM file_state WHERE ingestion_id = :id "
                "GROUP BY status"
            ),
            {"id": ingestion_id},
        )
        return {status: attempts for status, attempts in rows.all()}


async def test_a_spark_connect_outage_mid_run_spends_no_attempt(
    api: httpx.AsyncClient, s3: Any, engine: Any, spark_connect: SparkConnect, ledger: Ledger
) -> None:
    table = ledger.table("outage")
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, 60, rows=5)
    body = ingestion(prefix, table, execution={"max_files_per_batch": 5})
    ingestion_id = (await api.post("/api/v1/ingestions", json=body)).json()["id"]
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    await eventually(
        lambda: file_attempts(engine, ingestion_id),
        lambda counts: "SUCCESS" in counts,
        180,
        "no file landed before the outage",
    )

    await asyncio.to_thread(spark_connect.stop)
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for an outcome
    during = await file_attempts(engine, ingestion_id)
    await asyncio.to_thread(spark_connect.ensure_up)
    back = time.monotonic()

    run = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] in ("success", "partial", "failed"),
        180,
        "the run did not finish after Spark Connect came back",
    )
    healed = time.monotonic() - back
    print(f"run finished {healed:.1f}s after Spark Connect was back")
    after = await file_attempts(engine, ingestion_id)
    assert "FAILED" not in during, during
    # The ~12 batches left take 20-45 s once Spark answers; a stale gRPC connection used to
    # wait out its reconnect backoff on top of that (46 s more).
    assert healed < HEALED_WITHIN, f"the run took {healed:.1f}s after Spark Connect was back"
    assert run.json()["status"] == "success", run.json()
    assert after == {"SUCCESS": 1}, after
    session = spark_connect.session()
    try:
        frame = session.table(f"spark_catalog.default.{table}")
        assert frame.count() == expected
        assert frame.select("file", "row").distinct().count() == expected
    finally:
        session.stop()
