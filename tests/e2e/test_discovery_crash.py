"""kill -9 of the notification consumer between recording files and publishing them loses
nothing: the processor's sweep finds the PENDING files, and the redelivered notification,
already recorded, adds nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.components.api import Discovery
from devstack.layout import Addresses, Layout
from shared.topics import S3_EVENTS
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_event_inputs import notified_ingestion, rows_in
from tests.e2e.test_processor_crash import wait_for_crash_point
from tests.kafka_tail import consumed_to, end_offsets

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "autoloader-landing"


@pytest.fixture
def stack_discovery_stopped() -> Iterator[Discovery]:
    """Stop the stack's discovery consumer, so only the test's process reads notifications."""
    discovery = Discovery(Layout.discover(), Addresses())
    if discovery.pid() is None:
        pytest.skip("needs the native stack (`make up`) to stop and start discovery")
    discovery.stop()
    yield discovery
    discovery.ensure_up()


def start_discovery(
    log: Path, env: dict[str, str], crash_point: str | None = None
) -> subprocess.Popen[bytes]:
    """`autoloader-discovery run`; with a crash point, through the test-side fault injector."""
    env = {**env, "AUTOLOADER_DISCOVERY_METRICS_PORT": "0"}  # the stack discovery's port stays free
    if crash_point:
        command = [sys.executable, "-m", "tests.faults.discovery_crash", crash_point, "run"]
    else:
        command = [str(Path(sys.executable).parent / "autoloader-discovery"), "run"]
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        command, env=env, cwd=root, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("crash")


async def test_kill_9_after_recording_notified_files_then_restart_lands_them_once(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    table: str,
    stack_discovery_stopped: Discovery,
    tmp_path: Path,
) -> None:
    prefix = f"e2e/{table}"
    created = await api.post("/api/v1/ingestions", json=notified_ingestion(prefix, table))
    ingestion_id = created.json()["id"]
    log = tmp_path / "discovery.log"
    env = {**os.environ, **stack_discovery_stopped.env()}
    crashing = start_discovery(log, env, "after-record")
    try:
        body = "\n".join(json.dumps({"n": n}) for n in range(5)).encode()
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/one.json", Body=body)
        await asyncio.to_thread(wait_for_crash_point, crashing, log, "after-record")
        crashing.send_signal(signal.SIGKILL)
        crashing.wait(timeout=10)
    finally:
        if crashing.poll() is None:
            crashing.kill()
    files = (await api.get(f"/api/v1/ingestions/{ingestion_id}/files")).json()["items"]
    assert len(files) == 1, "recorded before the kill, and its event never published"

    # The processor's sweep finds the PENDING file; a restarted consumer gets the
    # unacknowledged notification again, and it must add nothing.
    bootstrap = env["AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS"]
    ends = await end_offsets(S3_EVENTS.name, bootstrap)
    restarted = start_discovery(tmp_path / "restarted.log", env)
    try:
        rows = await eventually(
            lambda: _rows(spark, table), lambda r: len(r) == 5, 60, "the files did not land"
        )
        # Proof that the redelivered notification was handled: the group committed past it.
        await eventually(
            lambda: consumed_to(stack_discovery_stopped.group, ends, bootstrap),
            bool,
            60,
            "the restarted consumer did not get past the notification",
        )
        await eventually(
            lambda: api.get(f"/api/v1/ingestions/{ingestion_id}/runs"),
            lambda r: [run["status"] for run in r.json()["items"]] == ["success"],
            60,
            "the run did not finish",
        )
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)

    assert sorted(row["n"] for row in rows_in(spark, table)) == [0, 1, 2, 3, 4]
    files = (await api.get(f"/api/v1/ingestions/{ingestion_id}/files")).json()["items"]
    assert len(files) == 1, "the redelivered notification recorded nothing more"
    runs = (await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")).json()["items"]
    assert [(r["trigger"], r["status"], r["records"]) for r in runs] == [("s3_event", "success", 5)]
    assert len(rows) == 5


async def _rows(spark: Any, table: str) -> list[Any]:
    return rows_in(spark, table)
