"""kill -9 of a processor at the worst moments loses no row and duplicates none."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.components.api import ProcessorPool
from devstack.layout import Addresses, Layout
from tests.e2e.conftest import eventually
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack_processor_stopped() -> Iterator[ProcessorPool]:
    """Stop the stack's processor for the test, so only the test's processes claim files."""
    pool = ProcessorPool(Layout.discover(), Addresses())
    if pool.pid() is None:
        pytest.skip("needs the native stack (`make up`) to stop and start the processor")
    pool.stop()
    yield pool
    pool.ensure_up()


def start_processor(log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`autoloader-processor run` with AUTOLOADER_PROCESSOR_<NAME> settings, logging to log."""
    env = {**os.environ}
    env.update({f"AUTOLOADER_PROCESSOR_{name.upper()}": value for name, value in settings.items()})
    command = [str(Path(sys.executable).parent / "autoloader-processor"), "run"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_for_crash_point(process: subprocess.Popen[bytes], log: Path, point: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if f"AUTOLOADER-CRASH-POINT {point}" in log.read_text(errors="replace"):
            return
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"the processor never reached {point}: {log.read_text()[-3000:]}")


@pytest.mark.parametrize("crash_point", ["after-commit", "before-commit"])
async def test_kill_9_at_the_crash_point_then_restart_lands_every_row_once(
    crash_point: str,
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    stack_processor_stopped: ProcessorPool,
    tmp_path: Path,
) -> None:
    table = f"crash_{uuid.uuid4().hex[:10]}"
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, 20)
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    ingestion_id = created.json()["id"]
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    log = tmp_path / "processor.log"
    try:
        crashing = start_processor(
            log, crash_point=crash_point, lease_seconds="10", sweep_interval_seconds="2"
        )
        await asyncio.to_thread(wait_for_crash_point, crashing, log, crash_point)
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(timeout=10)
        files = (await api.get(f"/api/v1/ingestions/{ingestion_id}/files")).json()
        assert {f["status"] for f in files["items"]} == {"CLAIMED"}

        await asyncio.to_thread(stack_processor_stopped.ensure_up)
        run = await eventually(
            lambda: api.get(f"/api/v1/runs/{run_id}"),
            lambda r: r.json()["status"] == "success",
            180,
            "the run did not finish after the restart",
        )

        assert run.json()["records"] == expected
        frame = spark.table(f"spark_catalog.default.{table}")
        assert frame.count() == expected
        assert frame.select("file", "row").distinct().count() == expected
        commits = spark.sql(
            f"SELECT summary['autoloader.batch-id'] AS batch "
            f"FROM spark_catalog.default.{table}.snapshots"
        ).collect()
        assert len(commits) == 1, commits
    finally:
        spark.sql(f"DROP TABLE IF EXISTS spark_catalog.default.{table} PURGE")


async def test_two_processors_on_one_backlog_claim_each_file_once(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    engine: Any,
    stack_processor_stopped: ProcessorPool,
    tmp_path: Path,
) -> None:
    from sqlalchemy import text

    table = f"pair_{uuid.uuid4().hex[:10]}"
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, 120, rows=2)
    body = ingestion(prefix, table, execution={"max_files_per_batch": 10})
    ingestion_id = (await api.post("/api/v1/ingestions", json=body)).json()["id"]
    # One processor receives the ingestion's file event; the other finds the same backlog
    # through its sweep, so both claim from it at once.
    processes = [
        start_processor(tmp_path / f"p{n}.log", worker_id=f"pair-{n}", sweep_interval_seconds="1")
        for n in (1, 2)
    ]
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    try:
        await eventually(
            lambda: api.get(f"/api/v1/runs/{run_id}"),
            lambda r: r.json()["status"] == "success",
            240,
            "the run did not finish",
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT claimed_by, attempts, count(*) FROM file_state "
                        "WHERE ingestion_id = :id GROUP BY claimed_by, attempts"
                    ),
                    {"id": ingestion_id},
                )
            ).all()
        assert {attempts for _, attempts, _ in rows} == {1}, rows
        assert {worker for worker, _, _ in rows} == {"pair-1", "pair-2"}, rows
        assert sum(count for _, _, count in rows) == 120
        frame = spark.table(f"spark_catalog.default.{table}")
        assert frame.count() == expected
        assert frame.select("file", "row").distinct().count() == expected
    finally:
        spark.sql(f"DROP TABLE IF EXISTS spark_catalog.default.{table} PURGE")
