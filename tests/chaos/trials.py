"""One chaos trial: a run of a few dozen small files, one fault at a random moment, and then
the proof: every row once, the load history agreeing with the table, the run `success`."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from pyspark.sql import SparkSession
from pyspark.sql.connect.client.retries import DefaultPolicy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.faults import Stack, inject

BUCKET = "autoloader-landing"
FINAL = ("success", "partial", "failed")
RECORDS = text(
    "SELECT path, status, records FROM file_state WHERE ingestion_id = :id AND target_table IS NULL"
)


@dataclass
class Clients:
    api: httpx.AsyncClient
    s3: Any
    engine: AsyncEngine
    spark_remote: str


@dataclass(frozen=True)
class Plan:
    number: int
    fault: str
    delay: float  # seconds after the trigger
    files: int = 36
    rows: int = 5
    batch: int = 5

    @property
    def expected(self) -> int:
        return self.files * self.rows


@dataclass
class Result:
    plan: Plan
    seconds: float | None = None  # trigger to the run's end
    status: str = "unfinished"
    rows: int | None = None
    distinct: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems


async def run_trial(plan: Plan, clients: Clients, stack: Stack, limit: float) -> Result:
    table = f"chaos_{uuid.uuid4().hex[:10]}"
    prefix = f"chaos/{table}"
    put_files(clients.s3, prefix, plan)
    ingestion_id = await create_ingestion(clients.api, prefix, table, plan.batch)
    result = Result(plan)
    try:
        started = time.monotonic()
        run_id = await trigger(clients.api, ingestion_id)
        await asyncio.sleep(plan.delay)
        await asyncio.to_thread(inject, stack, plan.fault)
        result.status = await wait_for_run(clients.api, run_id, started + limit * 2)
        result.seconds = time.monotonic() - started
        await check(result, clients, ingestion_id, table, limit)
    finally:
        await clean_up(clients, ingestion_id, table, prefix)
    return result


def put_files(s3: Any, prefix: str, plan: Plan) -> None:
    for n in range(plan.files):
        lines = [json.dumps({"file": n, "row": r}) for r in range(plan.rows)]
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-{n:03d}.json", Body="\n".join(lines))


async def create_ingestion(api: httpx.AsyncClient, prefix: str, table: str, batch: int) -> str:
    body = {
        "name": f"chaos-{table}",
        "source": {"type": "s3", "path": f"s3://{BUCKET}/{prefix}/", "file_pattern": "*.json"},
        "format": {"type": "json"},
        "destination": {"catalog": "spark_catalog", "database": "default", "table": table},
        "execution": {"max_files_per_batch": batch},
    }
    response = await api.post("/api/v1/ingestions", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


async def trigger(api: httpx.AsyncClient, ingestion_id: str) -> str:
    response = await api.post(f"/api/v1/ingestions/{ingestion_id}/run")
    response.raise_for_status()
    return str(response.json()["run_id"])


async def wait_for_run(api: httpx.AsyncClient, run_id: str, deadline: float) -> str:
    """The run's final status, or its last status seen when the deadline passed. The API may
    be down for a while (a fault of the trial): errors are waited out like any other state."""
    status = "unknown"
    while time.monotonic() < deadline:
        try:
            response = await api.get(f"/api/v1/runs/{run_id}")
            if response.status_code == 200:
                status = response.json()["status"]
        except httpx.HTTPError:
            pass
        if status in FINAL:
            return status
        await asyncio.sleep(0.5)
    return status


async def check(
    result: Result, clients: Clients, ingestion_id: str, table: str, limit: float
) -> None:
    plan, problems = result.plan, result.problems
    if result.status != "success":
        problems.append(f"run {result.status}")
    if result.seconds is not None and result.seconds > limit:
        problems.append(f"took {result.seconds:.1f}s, more than {limit:.0f}s")
    per_file, result.rows, result.distinct = await asyncio.to_thread(
        table_counts, clients.spark_remote, table
    )
    if result.rows != plan.expected or result.distinct != plan.expected:
        problems.append(f"table has {result.rows} rows, {result.distinct} distinct")
    async with clients.engine.connect() as connection:
        history = (await connection.execute(RECORDS, {"id": ingestion_id})).all()
    disagree = [p for p, s, n in history if s != "SUCCESS" or per_file.get(p, 0) != n]
    if len(history) != plan.files or disagree:
        problems.append(f"file_state disagrees with the table for {disagree[:3]} of {len(history)}")


def spark_session(remote: str) -> SparkSession:
    """A session that fails within seconds, not after the client's ten minutes of retries."""
    spark: SparkSession = SparkSession.builder.remote(remote).create()
    spark.client.set_retry_policies(  # type: ignore[operator]
        [DefaultPolicy(max_retries=5, max_backoff=2000)]
    )
    spark.client.disable_reattachable_execute()  # type: ignore[operator]  # see tests/conftest.py::spark
    return spark


def table_counts(remote: str, table: str) -> tuple[dict[str, int], int, int]:
    """Rows per source file, rows, and distinct (file, row) ids; a new session each time,
    since a restarted Spark Connect forgets the old one."""
    spark = spark_session(remote)
    try:
        frame = spark.table(f"spark_catalog.default.{table}")
        per_file = {r[0]: int(r[1]) for r in frame.groupBy("_source_file").count().collect()}
        return per_file, frame.count(), frame.select("file", "row").distinct().count()
    except Exception as error:  # no table: nothing landed
        if "TABLE_OR_VIEW_NOT_FOUND" not in str(error):
            raise
        return {}, 0, 0
    finally:
        spark.stop()


async def clean_up(clients: Clients, ingestion_id: str, table: str, prefix: str) -> None:
    await clients.api.delete(f"/api/v1/ingestions/{ingestion_id}")
    spark = spark_session(clients.spark_remote)
    try:
        spark.sql(f"DROP TABLE IF EXISTS spark_catalog.default.{table} PURGE")
    finally:
        spark.stop()
    listed = clients.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    for item in listed.get("Contents", []):
        clients.s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def plans(
    count: int, seed: int, faults: list[str], max_delay: float, in_turn: bool = False
) -> list[Plan]:
    """Which fault each trial injects, and when: at random, or the faults in turn. Every
    second trial lands 120 files in batches of 100, the first of which lists its folder
    whole, so that faults also hit folder reads."""
    chooser = random.Random(seed)
    return [
        Plan(
            n,
            faults[(n - 1) % len(faults)] if in_turn else chooser.choice(faults),
            round(chooser.uniform(0, max_delay), 1),
            files=36 if n % 2 else 120,
            batch=5 if n % 2 else 100,
        )
        for n in range(1, count + 1)
    ]


def describe(result: Result, total: int) -> str:
    plan = result.plan
    took = f"{result.seconds:.1f}s" if result.seconds is not None else "-"
    verdict = "exact" if result.exact else "NOT EXACT: " + "; ".join(result.problems)
    return (
        f"trial {plan.number}/{total} {plan.fault} at {plan.delay:.1f}s, batches of "
        f"{plan.batch}: rows {result.rows}/"
        f"{plan.expected} distinct {result.distinct}, run {result.status} in {took}: {verdict}"
    )
