"""A processor killed or paused at the worst moments loses no row, duplicates none, and its
files are taken up within seconds, with the default lease settings."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.components.api import ProcessorPool
from devstack.layout import Addresses, Layout
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
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


def start_processor(
    log: Path, crash_point: str | None = None, **settings: str
) -> subprocess.Popen[bytes]:
    """`autoloader-processor run` with AUTOLOADER_PROCESSOR_<NAME> settings, logging to log;
    with a crash point, through the test-side fault injector."""
    # No metrics address: it would hold the stack processor's port when that one restarts.
    env = {**os.environ, "AUTOLOADER_PROCESSOR_METRICS_PORT": "0"}
    env.update({f"AUTOLOADER_PROCESSOR_{name.upper()}": value for name, value in settings.items()})
    if crash_point:
        command = [sys.executable, "-m", "tests.faults.processor_crash", crash_point, "run"]
    else:
        command = [str(Path(sys.executable).parent / "autoloader-processor"), "run"]
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        command, env=env, cwd=root, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_for_crash_point(process: subprocess.Popen[bytes], log: Path, point: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if f"AUTOLOADER-CRASH-POINT {point}" in log.read_text(errors="replace"):
            return
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"the processor never reached {point}: {log.read_text()[-3000:]}")


def assert_once(spark: Any, table: str, expected: int) -> None:
    """Every row once, and the table holds one published commit of data."""
    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == expected
    assert frame.select("file", "row").distinct().count() == expected
    published = spark.sql(
        f"SELECT s.snapshot_id FROM spark_catalog.default.{table}.snapshots s "
        f"JOIN spark_catalog.default.{table}.history h ON s.snapshot_id = h.snapshot_id "
        f"WHERE h.is_current_ancestor AND s.summary['added-records'] > 0"
    ).collect()
    assert len(published) == 1, published


def history(spark: Any, table: str) -> list[Any]:
    """Each snapshot's batch, claim, rows and whether it is in the table's current history."""
    rows: list[Any] = spark.sql(
        f"SELECT s.snapshot_id, s.parent_id, s.summary['wap.id'] AS wap, "
        f"s.summary['published-wap-id'] AS published, s.summary['autoloader.claim'] AS claim, "
        f"s.summary['added-records'] AS added, h.is_current_ancestor "
        f"FROM spark_catalog.default.{table}.snapshots s "
        f"LEFT JOIN spark_catalog.default.{table}.history h ON s.snapshot_id = h.snapshot_id "
        f"ORDER BY s.committed_at"
    ).collect()
    return rows


async def start_run(api: httpx.AsyncClient, s3: Any, table: str, files: int) -> tuple[str, int]:
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, files)
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    run = await api.post(f"/api/v1/ingestions/{created.json()['id']}/run")
    return run.json()["run_id"], expected


async def run_succeeds(api: httpx.AsyncClient, run_id: str, within: float) -> dict[str, Any]:
    run = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] == "success",
        within,
        "the run did not succeed",
    )
    return dict(run.json())


@pytest.mark.parametrize("crash_point", ["after-publish", "before-publish"])
async def test_kill_9_at_the_crash_point_then_restart_lands_every_row_once_within_a_minute(
    crash_point: str,
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    stack_processor_stopped: ProcessorPool,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    table = ledger.table("crash")
    run_id, expected = await start_run(api, s3, table, 20)
    log = tmp_path / "processor.log"
    crashing = start_processor(log, crash_point)  # the default lease
    await asyncio.to_thread(wait_for_crash_point, crashing, log, crash_point)
    crashing.send_signal(signal.SIGKILL)
    crashing.wait(timeout=10)
    run = (await api.get(f"/api/v1/runs/{run_id}")).json()
    assert run["file_counts"] == {"CLAIMED": 20}, run

    restarted = time.monotonic()
    await asyncio.to_thread(stack_processor_stopped.ensure_up)
    run = await run_succeeds(api, run_id, 60)
    print(f"{crash_point}: run finished {time.monotonic() - restarted:.1f}s after restart")

    assert run["records"] == expected
    assert_once(spark, table, expected)


async def test_a_processor_paused_past_its_claim_then_resumed_writes_nothing_twice(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    stack_processor_stopped: ProcessorPool,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    """The worst moment: staged, claim checked, about to publish, then SIGSTOP. Another
    processor takes the batch once the lease runs out and publishes it; the paused one,
    resumed, publishes too, and Iceberg refuses the second publication of the batch."""
    table = ledger.table("pause")
    run_id, expected = await start_run(api, s3, table, 20)
    log = tmp_path / "paused.log"
    paused = start_processor(log, "pause-before-publish", worker_id="paused")
    try:
        await asyncio.to_thread(wait_for_crash_point, paused, log, "pause-before-publish")
        stopped = time.monotonic()  # the process stopped itself (SIGSTOP) at the point
        await asyncio.to_thread(stack_processor_stopped.ensure_up)
        run = await run_succeeds(api, run_id, 90)
        print(f"taken over and landed {time.monotonic() - stopped:.1f}s after the pause")
        assert run["records"] == expected
        assert_once(spark, table, expected)
    finally:
        paused.send_signal(signal.SIGCONT)
    try:
        # Resumed, the paused processor publishes its staged batch. Wait for its word that
        # the publish is over, whatever it did.
        def resumed() -> str | None:
            lines = log.read_text(errors="replace").splitlines()
            return next((line for line in lines if "resumed: publish" in line), None)

        try:
            outcome = await eventually(_async(resumed), bool, 90, "the resumed publish")
        except AssertionError as error:
            raise AssertionError(f"{error}: {log.read_text(errors='replace')[-3000:]}") from None
        # The batch was published by the processor that took it over: Iceberg refuses it.
        assert "publish returned None" in outcome, (outcome, history(spark, table))
        assert_once(spark, table, expected)
    finally:
        paused.kill()
        paused.wait(timeout=10)


def _async(probe: Any) -> Any:
    async def call() -> Any:
        return probe()

    return call


async def test_two_processors_on_one_backlog_claim_each_file_once(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    engine: Any,
    stack_processor_stopped: ProcessorPool,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    from sqlalchemy import text

    table = ledger.table("pair")
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
        await run_succeeds(api, run_id, 240)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
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
