"""`make bench-batch`: one processor batch, step by step, beside the one-batch limit's read of
the same files, with the Spark jobs each step ran.

The files (--files, default 500, of 10 rows) are uploaded once. Each round reads them the way
the one-batch limit does (`spark.read.schema(...).json(folder)`, counted per file), then lands
them as the processor lands a batch: `BatchReader.read` through the folder, the staged write,
the cherry-pick, the look for a re-claimed batch's commit, and the cache released. Every step
prints its wall time, its Spark jobs, and their tasks with the tasks' summed run time (from
Spark's UI API, `--spark-ui`), which is what two task slots share. `--write-per-read-partition`
writes with one task per read partition, as the processor did before it coalesced the write,
for comparison. A step's jobs are every job the Spark server ran during it, so run this on an
otherwise idle stack. Figures also go to bench-results/batch-*.json. Needs `make up`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import httpx

from autoloader_processor import reading
from autoloader_processor.iceberg import IcebergTables
from autoloader_processor.reading import BatchReader
from benchmarks.report import save
from benchmarks.throughput import BUCKET, SCHEMA, delete_prefix, spark_session, upload
from shared.s3 import s3_client
from shared.settings import S3Settings, SparkSettings
from shared.spec import IngestionSpec

T = TypeVar("T")
ROWS = 10  # per file


@dataclass(frozen=True)
class Job:
    tasks: int
    run_seconds: float  # the tasks' run time, summed


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    jobs: list[Job] = field(default_factory=list)

    def line(self) -> str:
        jobs = " ".join(f"{j.tasks}t/{j.run_seconds:.2f}s" for j in self.jobs) or "-"
        return f"  {self.name:<22} {self.seconds:6.2f} s  jobs: {jobs}"


class SparkUi:
    """Completed jobs, from Spark's monitoring API."""

    def __init__(self, base: str, transport: httpx.BaseTransport | None = None):
        self.http = httpx.Client(base_url=base, timeout=10, transport=transport)
        apps = self.http.get("/api/v1/applications").raise_for_status().json()
        self.app = apps[0]["id"]

    def last_job(self) -> int:
        jobs = self.http.get(f"/api/v1/applications/{self.app}/jobs").raise_for_status().json()
        return max((job["jobId"] for job in jobs), default=-1)

    def jobs_after(self, job_id: int) -> list[Job]:
        base = f"/api/v1/applications/{self.app}"
        jobs = self.http.get(f"{base}/jobs").raise_for_status().json()
        stages = {
            s["stageId"]: s for s in self.http.get(f"{base}/stages").raise_for_status().json()
        }
        found = []
        for job in sorted(jobs, key=lambda j: j["jobId"]):
            if job["jobId"] <= job_id:
                continue
            ran = [
                stages[s] for s in job["stageIds"] if stages.get(s, {}).get("status") == "COMPLETE"
            ]
            tasks = sum(s["numTasks"] for s in ran)
            found.append(Job(tasks, sum(s["executorRunTime"] for s in ran) / 1000))
        return found


def timed(ui: SparkUi, steps: list[Step], name: str, call: Callable[[], T]) -> T:
    before = ui.last_job()
    began = time.monotonic()
    result = call()
    steps.append(Step(name, time.monotonic() - began, ui.jobs_after(before)))
    print(steps[-1].line(), flush=True)
    return result


def limit_read(spark: Any, folder: str) -> int:
    from pyspark.sql import functions as F

    frame = spark.read.schema(SCHEMA).json(folder)
    return len(frame.groupBy(F.col("_metadata.file_path")).count().collect())


def one_round(
    spark: Any, ui: SparkUi, source: str, sizes: dict[str, int], number: int
) -> list[Step]:
    steps: list[Step] = []
    seen = timed(ui, steps, "limit's read", lambda: limit_read(spark, "s3a" + source[2:]))
    if seen != len(sizes):
        raise RuntimeError(f"the limit's read saw {seen} files of {len(sizes)}")
    spec = IngestionSpec.model_validate(
        {
            "name": "bench",
            "source": {"type": "s3", "path": source},
            "format": {"type": "json"},
            "destination": {"table": "bench"},
        }
    )
    reader = BatchReader(spark, spec, sizes, folders=[source])
    read = timed(ui, steps, "batch read", reader.read)
    frame, rows = read.frame, sum(read.records.values())
    if frame is None or rows != len(sizes) * ROWS or read.failed:
        raise RuntimeError(f"the batch read {rows} rows; failed: {read.failed}")
    commit(spark, ui, steps, spec, frame, f"bench-{number}")
    timed(ui, steps, "release", reader.release)
    return steps


def commit(
    spark: Any, ui: SparkUi, steps: list[Step], spec: IngestionSpec, frame: Any, batch: str
) -> None:
    """Stage, publish and look the batch up in a table of its own, dropped afterwards."""
    table = f"spark_catalog.default.bench_batch_{uuid.uuid4().hex[:8]}"
    tables = IcebergTables(spark, set())
    try:
        tables.ensure_table(table, frame)
        staged = timed(
            ui, steps, "staged write", lambda: tables.stage(spec, table, frame, batch, batch)
        )
        timed(ui, steps, "cherry-pick", lambda: tables.publish(table, staged))
        timed(ui, steps, "re-claim's look", lambda: tables.published(table, batch))
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500, help="files in the batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spark-ui", default="http://127.0.0.1:4040")
    parser.add_argument("--write-per-read-partition", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_per_read_partition:
        reading.WRITE_TASK_BYTES = 1  # as many write tasks as the frame has partitions
    prefix = f"bench/batch-{uuid.uuid4().hex[:8]}/"
    upload(prefix, args.files, ROWS, 16)
    source = f"s3://{BUCKET}/{prefix}"
    sizes = {
        f"{source}{o['Key'][len(prefix) :]}": o["Size"]
        for page in s3_client(S3Settings())
        .get_paginator("list_objects_v2")
        .paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", [])
    }
    spark = spark_session(SparkSettings().remote)
    ui = SparkUi(args.spark_ui)
    rounds = []
    try:
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds}, {len(sizes)} files", flush=True)
            rounds.append([asdict(step) for step in one_round(spark, ui, source, sizes, number)])
    finally:
        spark.stop()
        delete_prefix(s3_client(S3Settings()), BUCKET, prefix)
    figures = {"parameters": vars(args), "rounds": rounds}
    save("batch", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
