"""What an operator sees of a run, through the running stack: each service's metrics address,
the processor's counters growing by what the run landed, and the ingestion's status (API and
`autoloader status`) with a backlog that falls to 0 as the run lands."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.layout import Addresses
from tests.e2e.conftest import API, eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import BUCKET, ingestion, put_json_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADDRESSES = Addresses()
METRICS = {
    "api": f"{API}/metrics",
    "scheduler-sync": f"http://{ADDRESSES.host}:{ADDRESSES.sync_metrics_port}/metrics",
    "discovery": f"http://{ADDRESSES.host}:{ADDRESSES.discovery_metrics_port}/metrics",
    "processor": f"http://{ADDRESSES.host}:{ADDRESSES.processor_metrics_port}/metrics",
}
FILES = 120


async def scrape(service: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample the service exports, by name and labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(METRICS[service])
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def status_cli(ingestion_id: str, *options: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "autoloader"),
        "status",
        ingestion_id,
        "--json",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, err.decode()
    return dict(json.loads(out))


async def test_every_service_serves_its_metrics() -> None:
    for service in METRICS:
        samples = await scrape(service)
        assert any(name.startswith("autoloader_") for name, _ in samples), service
    lag = await eventually(
        lambda: scrape("processor"),
        lambda s: any(n == "autoloader_kafka_consumer_lag" for n, _ in s),
        40,
        "the processor exports its consumer group's lag",
    )
    groups = {dict(labels)["group"] for name, labels in lag if name.endswith("consumer_lag")}
    assert groups == {"processor"}


async def test_a_run_shows_in_metrics_and_status_until_its_backlog_is_gone(
    api: httpx.AsyncClient, s3: Any, engine: AsyncEngine, ledger: Ledger
) -> None:
    table = ledger.table("e2e_obs")
    prefix = f"e2e/{table}"
    rows = put_json_files(s3, prefix, 0, FILES)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-broken.json.gz", Body=b"\x1f\x8bnot gzip")
    body = ingestion(prefix, table, execution={"max_files_per_batch": 30})
    ingestion_id = (await api.post("/api/v1/ingestions", json=body)).json()["id"]
    tenant = await tenant_of(engine, ingestion_id)
    before = await scrape("processor")
    partial_runs = sample(await scrape("api"), "autoloader_runs_completed_total", status="partial")
    status_url = f"/api/v1/ingestions/{ingestion_id}/status"
    idle = (await api.get(status_url)).json()
    assert (idle["pending"], idle["current_run"], idle["last_commit"]) == (
        {"files": 0, "bytes": 0},
        None,
        None,
    )

    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    watched = asyncio.create_task(status_cli(ingestion_id, "--watch"))
    waiting = await follow_status(api, status_url, run_id)

    assert max(waiting) > 0, "the status never showed the run's files waiting"
    final = (await api.get(status_url)).json()
    assert final["pending"] == final["claimed"] == {"files": 0, "bytes": 0}, final
    assert final["oldest_pending"] is None and final["current_run"] is None, final
    assert final["last_commit"]["snapshot_id"] > 0, final
    assert final["last_error"]["path"].endswith("part-broken.json.gz"), final
    assert final["last_error"]["status"] == "FAILED", final
    assert final["sync"]["status"] == "synced", final
    cli = await watched
    assert cli["pending"]["files"] == 0 and cli["current_run"] is None, cli
    assert cli["last_commit"] == final["last_commit"], cli

    after = await scrape("processor")
    landed = await files_landed(api, run_id)
    assert landed == FILES
    growth = {
        name: (sample(after, name, **labels) or 0.0) - (sample(before, name, **labels) or 0.0)
        for name, labels in (
            ("autoloader_files_ingested_total", {"tenant": tenant}),
            ("autoloader_records_ingested_total", {"tenant": tenant}),
            ("autoloader_file_failures_total", {"tenant": tenant, "reason": "unreadable"}),
        )
    }
    assert growth == {
        "autoloader_files_ingested_total": landed,
        "autoloader_records_ingested_total": rows,
        "autoloader_file_failures_total": 3,  # the broken file's three attempts
    }
    exported = await eventually(
        lambda: scrape("api"),
        lambda s: (
            (sample(s, "autoloader_runs_completed_total", status="partial") or 0)
            > (partial_runs or 0)
        ),
        30,
        "the relay counts the run's RunCompleted event",
    )
    labels = {"tenant": tenant, "ingestion": ingestion_id}
    assert sample(exported, "autoloader_pending_files", **labels) == 0
    assert sample(exported, "autoloader_oldest_pending_file_age_seconds", **labels) == 0


async def follow_status(api: httpx.AsyncClient, url: str, run_id: str) -> list[int]:
    """Poll the status until the run is over; return the files waiting at each poll."""
    waiting: list[int] = []

    async def poll() -> dict[str, Any]:
        report = dict((await api.get(url)).json())
        waiting.append(report["pending"]["files"] + report["claimed"]["files"])
        return report

    await eventually(
        poll,
        lambda r: r["current_run"] is None or r["current_run"]["id"] != run_id,
        240,
        f"run {run_id} did not end",
    )
    return waiting


async def files_landed(api: httpx.AsyncClient, run_id: str) -> int:
    run = (await api.get(f"/api/v1/runs/{run_id}")).json()
    assert run["status"] == "partial", run
    return int(run["file_counts"]["SUCCESS"])


async def tenant_of(engine: AsyncEngine, ingestion_id: str) -> str:
    async with engine.connect() as connection:
        tenant = await connection.scalar(
            text("SELECT tenant_id FROM ingestions WHERE id = :id"),
            {"id": uuid.UUID(ingestion_id)},
        )
    return str(tenant)
