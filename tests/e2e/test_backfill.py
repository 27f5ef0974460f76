"""Backfills queue the files an ingestion discovered in a time window again, through the
running stack."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoloader_discovery.backfill import Progress, Replay, Window
from shared.db import create_engine, session_factory
from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files, run_and_wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def tables(ledger: Ledger) -> tuple[str, str]:
    source = ledger.table("e2e")
    ledger.tables.append(f"{source}_backfill")
    return source, f"{source}_backfill"


async def ingested_in_two_halves(
    api: httpx.AsyncClient, s3: Any, table: str
) -> tuple[str, datetime]:
    """Files 0-4 ingested, then a midpoint, then files 5-11 ingested; 10 rows a file."""
    prefix = f"e2e/{table}"
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    ingestion_id = created.json()["id"]
    put_json_files(s3, prefix, 0, 5)
    assert (await run_and_wait(api, ingestion_id))["status"] == "success"
    await asyncio.sleep(1.5)
    midpoint = datetime.now(UTC)
    await asyncio.sleep(1.5)
    put_json_files(s3, prefix, 5, 7)
    assert (await run_and_wait(api, ingestion_id))["status"] == "success"
    return ingestion_id, midpoint


async def test_a_reprocessing_backfill_since_the_midpoint_writes_exactly_the_later_files(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    tables: tuple[str, str],
    database_settings: Any,
) -> None:
    table, target = tables
    ingestion_id, midpoint = await ingested_in_two_halves(api, s3, table)

    cli = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "autoloader"),
        "backfill",
        "--ingestion",
        ingestion_id,
        "--since",
        midpoint.isoformat(),
        "--reprocess",
        "--target-table",
        target,
        "--timeout",
        "240",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ,
    )
    output = (await cli.communicate())[0].decode()
    print(output)

    assert cli.returncode == 0, output
    assert "success, 70 records" in output
    backfilled = spark.table(f"spark_catalog.default.{target}")
    assert sorted({row["file"] for row in backfilled.select("file").collect()}) == list(
        range(5, 12)
    )
    assert backfilled.count() == 70
    assert backfilled.select("file", "row").distinct().count() == 70
    assert spark.table(f"spark_catalog.default.{table}").count() == 120, "source table untouched"
    [run] = [r for r in await _runs(api, ingestion_id) if r["trigger"] == "backfill"]
    assert run["progress"]["files_queued"] == 7
    assert run["parameters"]["target_table"] == f"spark_catalog.default.{target}"

    again = await replay_again(run, database_settings)
    assert (again.files_matched, again.files_queued) == (7, 7), "already this run's files"
    assert (await _runs(api, ingestion_id))[0]["file_counts"] == run["file_counts"]


async def replay_again(run: dict[str, Any], database: Any) -> Progress:
    """The backfill's replay once more, as a retried flow would run it."""
    engine = create_engine(database)
    try:
        replay = Replay(
            ingestion_id=uuid.UUID(run["ingestion_id"]),
            run_id=uuid.UUID(run["id"]),
            window=Window.of(run["parameters"]),
            sessions=session_factory(engine),
        )
        return await replay.run()
    finally:
        await engine.dispose()


async def test_a_backfill_without_reprocess_skips_files_already_ingested(
    api: httpx.AsyncClient, s3: Any, spark: Any, tables: tuple[str, str]
) -> None:
    table, _ = tables
    ingestion_id, midpoint = await ingested_in_two_halves(api, s3, table)

    response = await api.post(
        f"/api/v1/ingestions/{ingestion_id}/backfill", json={"since": midpoint.isoformat()}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    finished = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] in ("success", "partial", "failed"),
        120,
        "the backfill did not finish",
    )

    run = finished.json()
    assert (run["trigger"], run["status"], run["files_expected"]) == ("backfill", "success", 0)
    assert (run["progress"]["files_matched"], run["progress"]["files_skipped"]) == (7, 7)
    assert spark.table(f"spark_catalog.default.{table}").count() == 120


async def test_a_backfill_request_is_validated(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/ingestions", json=ingestion("e2e/none", "e2e_unused"))
    url = f"/api/v1/ingestions/{created.json()['id']}/backfill"
    for body, field in (
        ({"since": "2026-11-01T00:00:00"}, "give a timezone"),
        ({"since": "2026-11-01T00:00:00Z", "target_table": "x"}, "needs reprocess"),
        (
            {"since": "2026-11-01T00:00:00Z", "reprocess": True, "target_table": "a.b.c.d"},
            "target_table",
        ),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until must be after"),
    ):
        response = await api.post(url, json=body)
        assert response.status_code == 422, body
        assert field in response.text, response.text


async def _runs(api: httpx.AsyncClient, ingestion_id: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")).json()["items"])
