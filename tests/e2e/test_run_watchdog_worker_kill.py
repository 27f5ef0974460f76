"""kill -9 of the Prefect worker, with its flow-run processes, while a run's discovery is
under way: the run still finishes within two minutes, every row landed once, and no run is
left queued or running. Nobody tells Prefect that the flow run died: scheduler-sync's watchdog
sees its heartbeat stop, marks the flow run crashed and starts a new one for the same run.

The test takes the stack lock itself (run it without `flock`): shared while it works, and
exclusive from the run's start until the worker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack import proc
from devstack.components.prefect import PrefectServer, PrefectWorker
from devstack.layout import Addresses, Layout
from shared.models import FileState, Run, RunStatus
from tests.e2e.conftest import deployment_of, eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STACK_LOCK = Path("/tmp/autoloader-stack.lock")
FILES, ROWS_PER_FILE = 60, 10
HEAL_LIMIT = 120.0


@pytest.fixture
def stack_lock() -> Iterator[int]:
    """The stack lock, held shared; the test converts it to exclusive around the kill."""
    fd = os.open(STACK_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def exclusive(fd: int, within: float = 600) -> None:
    """Turn the test's shared hold of the stack lock into an exclusive one. It never comes
    while the test's own caller holds the lock too, so say so instead of waiting forever."""
    deadline = time.monotonic() + within
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no exclusive hold of {STACK_LOCK} within {within} s: run this test "
                    "without wrapping it in `flock`, which it takes itself"
                )
            time.sleep(0.5)


@pytest.fixture
def worker(stack_lock: int) -> Iterator[PrefectWorker]:
    layout = Layout.discover()
    worker = PrefectWorker(PrefectServer(layout, Addresses()))
    if worker.pid() is None:
        pytest.skip("needs the native stack (`make up`) to kill and restart the Prefect worker")
    yield worker
    if not worker.healthy():  # never leave the stack without its worker
        exclusive(stack_lock)
        worker.ensure_up()
        fcntl.flock(stack_lock, fcntl.LOCK_SH)


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("wdog")


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def kill_9(pids: list[int]) -> None:
    """SIGKILL each process and wait until all are gone, so that nothing mistakes a dying
    worker for a live one."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(proc.alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "killed processes did not exit"
        time.sleep(0.05)


async def discovery_under_way(engine: AsyncEngine, run_id: uuid.UUID) -> Any:
    """Wait, polling closely, until the flow has started the run but not finished listing."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            run = (
                await connection.execute(
                    select(Run.status, Run.files_expected).where(Run.id == run_id)
                )
            ).one()
        if run.status == RunStatus.RUNNING:
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never started")


async def records_of(engine: AsyncEngine, run_id: uuid.UUID) -> int:
    async with engine.connect() as connection:
        total = await connection.scalar(
            select(func.coalesce(func.sum(FileState.records), 0)).where(FileState.run_id == run_id)
        )
    return int(total or 0)


async def test_kill_9_of_the_worker_mid_flow_run_heals_within_two_minutes(
    api: httpx.AsyncClient,
    prefect: Any,
    s3: Any,
    spark: Any,
    engine: AsyncEngine,
    table: str,
    worker: PrefectWorker,
    stack_lock: int,
) -> None:
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, FILES, ROWS_PER_FILE)
    created = (await api.post("/api/v1/ingestions", json=ingestion(prefix, table))).json()
    await eventually(
        lambda: deployment_of(prefect, created["id"]), bool, 60, "no deployment was made"
    )

    exclusive(stack_lock)
    try:
        run_id = uuid.UUID(
            (await api.post(f"/api/v1/ingestions/{created['id']}/run")).json()["run_id"]
        )
        at_kill = await discovery_under_way(engine, run_id)
        worker_pid = worker.pid()
        assert worker_pid is not None
        flow_processes = process_tree(worker_pid)
        kill_9(flow_processes)
        killed = time.monotonic()
    finally:
        await asyncio.to_thread(worker.ensure_up)
        fcntl.flock(stack_lock, fcntl.LOCK_SH)
    assert worker.pid() not in (None, worker_pid), "the worker was not started again"
    print(
        f"killed the worker and {len(flow_processes) - 1} flow-run processes; at the kill the "
        f"run was {at_kill.status}, files_expected={at_kill.files_expected}"
    )
    assert at_kill.files_expected is None, "the kill came after discovery had finished"

    finished = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] in ("success", "partial", "failed"),
        HEAL_LIMIT - (time.monotonic() - killed),
        f"run {run_id} did not finish within {HEAL_LIMIT} s of the kill",
    )
    healed = time.monotonic() - killed
    print(f"heal time: the run finished {healed:.1f} s after kill -9 of the worker")
    run = finished.json()
    assert run["status"] == "success", run

    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == expected
    assert frame.select("file", "row").distinct().count() == expected
    assert await records_of(engine, run_id) == expected
    async with engine.connect() as connection:
        attempts = await connection.scalar(select(Run.flow_attempts).where(Run.id == run_id))
        stuck = await connection.scalar(
            select(func.count())
            .select_from(Run)
            .where(Run.ingestion_id == uuid.UUID(created["id"]))
            .where(Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
        )
    print(f"the run took {attempts} extra flow run(s)")
    assert stuck == 0
