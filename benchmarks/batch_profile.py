"""`make bench-batch`: one processor batch, step by step, beside the one-batch limit's read of
the same files, with the Spark jobs each step ran.

The files (--files, default 500, of 10 rows) are uploaded once. Each round reads them the way
the one-batch limit does (`spark.read.schema(...).json(folder)`, counted per file), then lands
them as the processor lands a batch: `BatchReader.read` through the folder, the staged write,
the cherry-pick, the look for a re-claimed batch's commit, and the cache released. The batch
is fetched into the processor as the processor fetches it (`--spark-reads`: read by Spark
through the folder instead). Every step
prints its wall time, its Spark jobs, and their tasks with the tasks' summed run time (from
Spark's UI API, `--spark-ui`), which is what two task slots share, and the CPU that Spark and
the S3 store used in it.

`--folder-files N` puts the batch in a folder of N files instead (the limit's read is then
left out), each round's batch a slice of it not read before, and reads each round's batch
twice, through the folder and by its paths, in alternating order: what
`AUTOLOADER_PROCESSOR_FOLDER_READ_FILES_PER_PAGE` trades. `--write-per-read-partition`
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
from autoloader_processor.fetching import Fetcher
from autoloader_processor.iceberg import IcebergTables
from autoloader_processor.reading import LISTING_TASKS, BatchReader
from autoloader_processor.settings import ProcessorSettings
from benchmarks.cpu import cpu_used
from benchmarks.report import save
from benchmarks.throughput import BUCKET, SCHEMA, delete_prefix, spark_session, upload
from shared.s3 import s3_client
from shared.settings import S3Settings, SparkSettings
from shared.spec import IngestionSpec

T = TypeVar("T")
FETCH_BATCH_BYTES = ProcessorSettings.model_fields["fetch_batch_bytes"].default
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
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by part of the stack

    def line(self) -> str:
        jobs = " ".join(f"{j.tasks}t/{j.run_seconds:.2f}s" for j in self.jobs) or "-"
        cpu = ", ".join(f"{part} {self.cpu.get(part, 0.0):.2f}" for part in ("spark", "seaweedfs"))
        return f"  {self.name:<22} {self.seconds:6.2f} s  jobs: {jobs}  CPU s: {cpu}"


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
    with cpu_used() as cpu:
        result = call()
    steps.append(Step(name, time.monotonic() - began, ui.jobs_after(before), cpu))
    print(steps[-1].line(), flush=True)
    return result


def limit_read(spark: Any, folder: str) -> int:
    from pyspark.sql import functions as F

    frame = spark.read.schema(SCHEMA).json(folder)
    return len(frame.groupBy(F.col("_metadata.file_path")).count().collect())


def bench_spec(source: str) -> IngestionSpec:
    return IngestionSpec.model_validate(
        {
            "name": "bench",
            "source": {"type": "s3", "path": source},
            "format": {"type": "json"},
            "destination": {"table": "bench"},
        }
    )


def read_batch(ui: SparkUi, steps: list[Step], name: str, reader: BatchReader, files: int) -> Any:
    read = timed(ui, steps, name, reader.read)
    rows = sum(read.records.values())
    if read.frame is None or rows != files * ROWS or read.failed:
        raise RuntimeError(f"the batch read {rows} rows; failed: {read.failed}")
    return read.frame


def one_round(
    spark: Any, ui: SparkUi, source: str, sizes: dict[str, int], number: int, spark_reads: bool
) -> list[Step]:
    steps: list[Step] = []
    seen = timed(ui, steps, "limit's read", lambda: limit_read(spark, "s3a" + source[2:]))
    if seen != len(sizes):
        raise RuntimeError(f"the limit's read saw {seen} files of {len(sizes)}")
    spec = bench_spec(source)
    fetcher = None if spark_reads else Fetcher(S3Settings(), FETCH_BATCH_BYTES)
    fetched = fetcher is not None and fetcher.takes(spec.format, sizes)
    reader = BatchReader(spark, spec, sizes, folders=[] if fetched else [source], fetcher=fetcher)
    frame = read_batch(ui, steps, "batch read", reader, len(sizes))
    commit(spark, ui, steps, spec, frame, f"bench-{number}")
    timed(ui, steps, "release", reader.release)
    return steps


def folder_round(
    spark: Any, ui: SparkUi, source: str, batches: Sequence[dict[str, int]], number: int
) -> list[Step]:
    """Two batches of the folder, one read through the folder and one by its paths, the
    first way alternating between rounds."""
    steps: list[Step] = []
    ways = [("read through folder", [source]), ("read by paths", [])]
    for (name, folders), batch in zip(ways[:: -1 if number % 2 else 1], batches, strict=True):
        reader = BatchReader(spark, bench_spec(source), batch, folders=folders)
        try:
            read_batch(ui, steps, name, reader, len(batch))
        finally:
            reader.release()
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


def slices(sizes: dict[str, int], files: int, first: int, count: int) -> list[dict[str, int]]:
    """`count` batches of `files` files in key order, from the `first`-th batch on."""
    paths = sorted(sizes)
    return [
        {p: sizes[p] for p in paths[(first + i) * files : (first + i + 1) * files]}
        for i in range(count)
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500, help="files in the batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spark-ui", default="http://127.0.0.1:4040")
    parser.add_argument("--write-per-read-partition", action="store_true")
    parser.add_argument(
        "--spark-reads",
        action="store_true",
        help="Spark reads the batch from the store (AUTOLOADER_PROCESSOR_FETCH_BATCH_BYTES=0)",
    )
    parser.add_argument(
        "--folder-files",
        type=int,
        help="a folder of this many files, each batch a slice of it, read both ways",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_per_read_partition:
        reading.WRITE_TASK_BYTES = 1  # as many write tasks as the frame has partitions
    total = args.folder_files or args.files
    if args.folder_files and args.folder_files < 2 * args.rounds * args.files:
        raise SystemExit("--folder-files must hold two batches of --files for every round")
    prefix = f"bench/batch-{uuid.uuid4().hex[:8]}/"
    upload(prefix, total, ROWS, 16)
    source = f"s3://{BUCKET}/{prefix}"
    sizes = {
        f"{source}{o['Key'][len(prefix) :]}": o["Size"]
        for page in s3_client(S3Settings())
        .get_paginator("list_objects_v2")
        .paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", [])
    }
    spark = spark_session(SparkSettings().remote)
    spark.conf.set(LISTING_TASKS, str(ProcessorSettings.model_fields["listing_tasks"].default))
    ui = SparkUi(args.spark_ui)
    rounds = []
    try:
        for number in range(args.rounds):
            where = f" of a folder of {len(sizes)}" if args.folder_files else ""
            print(f"round {number + 1}/{args.rounds}, {args.files} files{where}", flush=True)
            if args.folder_files:
                batches = slices(sizes, args.files, 2 * number, 2)
                steps = folder_round(spark, ui, source, batches, number)
            else:
                steps = one_round(spark, ui, source, sizes, number, args.spark_reads)
            rounds.append([asdict(step) for step in steps])
    finally:
        spark.stop()
        delete_prefix(s3_client(S3Settings()), BUCKET, prefix)
    figures = {"parameters": vars(args), "rounds": rounds}
    save("batch", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
