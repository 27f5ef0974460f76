"""`make bench`: Autoloader against its two peers on the same small JSON files, in one run.

Columns, measured in alternating rounds (the order rotates every round):
- limit: one Spark batch job with one commit, `spark.read.schema(...).json(prefix)` appended
  to a fresh Iceberg table; nothing that reads the same files in one commit can beat it;
- stream: Spark Structured Streaming's file source with Trigger.AvailableNow into Iceberg;
- autoloader: a fresh ingestion run through the REST API with its default batch size.

Each size (--sizes, default 2,000 and 20,000 files of --rows rows) is uploaded once and read by
every round. Before the rounds, one uncounted Spark batch and one uncounted Autoloader run of
the smallest size warm the sessions up. Every round is printed as it finishes; then, per size,
the medians, Autoloader's throughput against each peer (peer seconds / Autoloader seconds) and
Autoloader's phases in seconds from the trigger, as medians: queued (the run row's created_at),
flow running (started_at), discovered (the latest discovered_at of the run's files), first and
last commit (when the first and last data snapshot became the table's current one) and run
closed (finished_at). Each Autoloader round also shows the processor's resident memory (RSS)
when the run starts, at its peak and when it ends, sampled every 0.25 s. Every round shows the
CPU time each part of the stack used while it was timed (`benchmarks/cpu.py`). A round whose table
does not hold files x rows rows is an error, never a figure. Figures also go to
bench-results/throughput-*.json. Needs `make up`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from benchmarks.cpu import cpu_used, format_cpu
from benchmarks.report import machine, median, save
from shared.s3 import s3_client
from shared.settings import S3Settings, SparkSettings
from shared.spec import ExecutionSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "autoloader-landing"  # the stack's landing bucket, readable by Spark and the dev tenant
SCRATCH = "_bench"  # stream checkpoints, under the warehouse bucket
API = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")
SCHEMA = "id BIGINT, file BIGINT, row BIGINT, name STRING, amount DOUBLE, ts STRING"

Column = Literal["limit", "stream", "autoloader"]
COLUMNS: tuple[Column, ...] = ("limit", "stream", "autoloader")
LABELS: dict[Column, str] = {
    "limit": "Spark batch, one commit (limit)",
    "stream": "Spark file stream (AvailableNow)",
    "autoloader": "Autoloader",
}
PHASES = ("queued", "flow_running", "discovered", "first_commit", "last_commit", "closed")
FINAL_RUN_STATES = ("success", "partial", "failed")


@dataclass(frozen=True)
class Measured:
    """What one column's round saw, before its rows are checked."""

    seconds: float
    rows: int
    phases: dict[str, float] = field(default_factory=dict)
    commits: int | None = None
    memory: dict[str, float] = field(default_factory=dict)  # the processor's RSS, MiB
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by part of the stack


@dataclass(frozen=True)
class Round:
    column: Column
    files: int
    number: int
    seconds: float | None = None
    rows: int | None = None
    error: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    commits: int | None = None
    memory: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def files_per_second(self) -> float | None:
        return self.files / self.seconds if self.seconds else None


@dataclass(frozen=True)
class Summary:
    """One size's medians over the rounds that passed their row check."""

    files: int
    seconds: dict[Column, float]
    errors: dict[Column, int]
    phases: dict[str, float]
    commits: float | None

    @property
    def vs_stream(self) -> float | None:
        return ratio(self.seconds.get("stream"), self.seconds.get("autoloader"))

    @property
    def vs_limit(self) -> float | None:
        return ratio(self.seconds.get("limit"), self.seconds.get("autoloader"))


@dataclass(frozen=True)
class Commits:
    """Epoch seconds at which the table's first and last data snapshot became current."""

    first: float
    last: float
    count: int


# ---------------------------------------------------------------- pure: figures and text


def rotation(number: int) -> tuple[Column, ...]:
    """The columns in round ``number``'s order: each column goes first, second and last in
    turn, so that none always runs right after another on a warm (or busy) server."""
    shift = number % len(COLUMNS)
    return COLUMNS[shift:] + COLUMNS[:shift]


def judged(column: Column, files: int, number: int, measured: Measured, expected: int) -> Round:
    """The round, or an error round when the table does not hold exactly ``expected`` rows."""
    error = None if measured.rows == expected else f"{measured.rows:,} rows, expected {expected:,}"
    return Round(
        column,
        files,
        number,
        measured.seconds,
        measured.rows,
        error,
        measured.phases,
        measured.commits,
        measured.memory,
        measured.cpu,
    )


def brief(error: BaseException) -> str:
    """An error as one line of a round: Spark's errors carry pages of JVM stack."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"


def ratio(peer_seconds: float | None, autoloader_seconds: float | None) -> float | None:
    """Autoloader's throughput as a multiple of the peer's: above 1 means Autoloader is faster."""
    if not peer_seconds or not autoloader_seconds:
        return None
    return peer_seconds / autoloader_seconds


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of an API timestamp (ISO 8601; one without an offset is UTC)."""
    if stamp is None:
        return None
    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def phases(
    triggered: float, run: Mapping[str, Any], discovered: float | None, commits: Commits | None
) -> dict[str, float]:
    """Seconds from the trigger (epoch ``triggered``) to each phase the run reached."""
    moments = {
        "queued": epoch(run.get("created_at")),
        "flow_running": epoch(run.get("started_at")),
        "discovered": discovered,
        "first_commit": commits.first if commits else None,
        "last_commit": commits.last if commits else None,
        "closed": epoch(run.get("finished_at")),
    }
    return {name: at - triggered for name, at in moments.items() if at is not None}


def summarize(rounds: Sequence[Round], files: int) -> Summary:
    of_size = [r for r in rounds if r.files == files]
    good = [r for r in of_size if r.error is None and r.seconds is not None]
    seconds: dict[Column, float] = {}
    for column in COLUMNS:
        times = [r.seconds for r in good if r.column == column and r.seconds is not None]
        if times:
            seconds[column] = median(times)
    errors = {c: sum(1 for r in of_size if r.column == c and r.error) for c in COLUMNS}
    ours = [r for r in good if r.column == "autoloader"]
    medians = {p: median(v) for p in PHASES if (v := [r.phases[p] for r in ours if p in r.phases])}
    commits = [float(r.commits) for r in ours if r.commits is not None]
    return Summary(files, seconds, errors, medians, median(commits) if commits else None)


def format_round(r: Round, repeat: int) -> str:
    head = f"round {r.number + 1}/{repeat}  {r.files:>7,} files  {LABELS[r.column]:<33}"
    if r.error is not None:
        took = "" if r.seconds is None else f" (after {r.seconds:.1f} s)"
        return f"{head} ERROR: {r.error}{took}"
    text = f"{head} {r.seconds:7.1f} s {r.files_per_second:8.1f} files/s"
    if r.column == "autoloader":
        text += f"  ({r.commits} commits; {format_phases(r.phases)})"
    if r.memory:
        text += f"\n{'':>14}processor RSS {format_memory(r.memory)}"
    if r.cpu and r.seconds:
        text += f"\n{'':>14}{format_cpu(r.cpu, r.seconds)}"
    return text


def format_memory(memory: Mapping[str, float]) -> str:
    return " -> ".join(f"{name} {memory[name]:.0f}" for name in ("start", "peak", "end")) + " MiB"


def format_phases(moments: Mapping[str, float]) -> str:
    named = [f"{name.replace('_', ' ')} {moments[name]:.1f}" for name in PHASES if name in moments]
    return " -> ".join(named) + " s from the trigger"


def _times(factor: float | None) -> str:
    return "n/a" if factor is None else f"{factor:.2f}x"


def format_summary(summary: Summary, rows_per_file: int, repeat: int) -> str:
    lines = [f"{summary.files:,} files x {rows_per_file} rows, medians of {repeat} rounds:"]
    for column in COLUMNS:
        errors = summary.errors.get(column, 0)
        failed = f"   ({errors} error rounds left out)" if errors else ""
        if column in summary.seconds:
            seconds = summary.seconds[column]
            rate = f"{seconds:7.1f} s {summary.files / seconds:8.1f} files/s"
        else:
            rate = "      no valid round"
        lines.append(f"  {LABELS[column]:<34}{rate}{failed}")
    lines.append(
        f"  Autoloader vs file stream {_times(summary.vs_stream)}, "
        f"vs the one-batch limit {_times(summary.vs_limit)} (peer seconds / Autoloader seconds)"
    )
    if summary.phases:
        commits = "" if summary.commits is None else f"; {summary.commits:g} commits"
        lines.append(f"  Autoloader phases: {format_phases(summary.phases)}{commits}")
    return "\n".join(lines)


def figures(
    args: argparse.Namespace, rounds: Sequence[Round], summaries: Sequence[Summary]
) -> dict[str, Any]:
    return {
        "parameters": {
            "sizes": args.sizes,
            "rows_per_file": args.rows,
            "repeat": args.repeat,
            "max_files_per_batch": args.max_files_per_batch or batch_size_default(),
            "batch_size_is_default": args.max_files_per_batch is None,
        },
        "rounds": [asdict(r) for r in rounds],
        "sizes": [
            {**asdict(s), "vs_stream": s.vs_stream, "vs_limit": s.vs_limit} for s in summaries
        ],
    }


def file_body(number: int, rows: int) -> str:
    """JSON lines: ``rows`` rows of file ``number``, ids unique across files."""
    return "\n".join(
        json.dumps(
            {
                "id": number * rows + r,
                "file": number,
                "row": r,
                "name": f"item-{r}",
                "amount": r * 1.5,
                "ts": "2026-11-22T00:00:00Z",
            }
        )
        for r in range(rows)
    )


def batch_size_default() -> int:
    return ExecutionSpec().max_files_per_batch


# ---------------------------------------------------------------- object store


def upload(prefix: str, files: int, rows: int, threads: int) -> None:
    """Put ``files`` files under ``prefix`` with a pool of threads, each with its own client
    (one client's connection pool is smaller than the pool); progress every 5 s."""
    local = threading.local()

    def put(number: int) -> None:
        if not hasattr(local, "s3"):
            local.s3 = s3_client(S3Settings())
        body = file_body(number, rows)
        local.s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-{number:05d}.json", Body=body)

    began = last = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for done, _ in enumerate(pool.map(put, range(files)), 1):
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                rate = done / (last - began)
                print(f"  uploaded {done:,}/{files:,} ({rate:.0f} files/s)", flush=True)
    print(f"  uploaded {files:,} files in {time.monotonic() - began:.1f} s", flush=True)


def delete_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"]} for item in page.get("Contents", [])
        ]
        if keys:  # a page holds at most 1,000 keys, as many as one delete_objects takes
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


# ---------------------------------------------------------------- the two Spark peers


def spark_session(remote: str) -> Any:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).create()
    spark.client.disable_reattachable_execute()  # see tests/conftest.py::spark
    return spark


def s3a(source: str) -> str:
    """The s3:// URL of a source as Spark's S3A connector reads it."""
    return source.replace("s3://", "s3a://", 1)


def scratch_table(kind: str) -> str:
    return f"spark_catalog.default.bench_{kind}_{uuid.uuid4().hex[:8]}"


def count_rows(spark: Any, table: str) -> int:
    return int(spark.table(table).count())


@contextmanager
def fresh_table(spark: Any, kind: str) -> Iterator[str]:
    table = scratch_table(kind)
    spark.sql(f"CREATE TABLE {table} ({SCHEMA}) USING iceberg")
    try:
        yield table
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")


def one_batch(spark: Any, source: str) -> Measured:
    """The limit: one read of every file, one Iceberg commit."""
    with fresh_table(spark, "batch") as table:
        with cpu_used() as cpu:
            began = time.monotonic()
            spark.read.schema(SCHEMA).json(s3a(source)).writeTo(table).append()
            seconds = time.monotonic() - began
        return Measured(seconds, count_rows(spark, table), cpu=cpu)


def file_stream(spark: Any, source: str) -> Measured:
    checkpoint = f"{SCRATCH}/{uuid.uuid4().hex}/"
    try:
        with fresh_table(spark, "stream") as table:
            with cpu_used() as cpu:
                began = time.monotonic()
                query = (
                    spark.readStream.schema(SCHEMA)
                    .json(s3a(source))
                    .writeStream.format("iceberg")
                    .outputMode("append")
                    .trigger(availableNow=True)
                    .option("checkpointLocation", f"s3a://warehouse/{checkpoint}")
                    .toTable(table)
                )
                query.awaitTermination()
                seconds = time.monotonic() - began
            return Measured(seconds, count_rows(spark, table), cpu=cpu)
    finally:
        delete_prefix(s3_client(S3Settings()), "warehouse", checkpoint)


def commit_times(spark: Any, table: str) -> Commits | None:
    """When the table's data snapshots became current. `history`, not `snapshots.committed_at`:
    the processor stages each batch (write-audit-publish) and its rows become visible when the
    snapshot is published; the empty snapshot of the table's creation adds no records."""
    row = spark.sql(
        f"""
        SELECT unix_micros(min(h.made_current_at)) AS first_at,
               unix_micros(max(h.made_current_at)) AS last_at,
               count(*) AS commits
        FROM {table}.history h JOIN {table}.snapshots s ON h.snapshot_id = s.snapshot_id
        WHERE h.is_current_ancestor
          AND try_cast(try_element_at(s.summary, 'added-records') AS BIGINT) > 0
        """
    ).first()
    if row is None or row["first_at"] is None:
        return None
    return Commits(row["first_at"] / 1e6, row["last_at"] / 1e6, int(row["commits"]))


# ---------------------------------------------------------------- Autoloader, through its API


def api_key() -> str:
    key_file = ROOT / ".local" / "dev-api-key"
    if not key_file.exists():
        raise SystemExit("no development API key in .local/dev-api-key: run `make up`")
    return key_file.read_text().strip()


def ingestion_body(name: str, source: str, max_files_per_batch: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "source": {"type": "s3", "path": source, "file_pattern": "*.json"},
        "format": {"type": "json"},
        "destination": {"table": name},
    }
    if max_files_per_batch is not None:
        body["execution"] = {"max_files_per_batch": max_files_per_batch}
    return body


def poll(
    probe: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while not done(seen := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {within:.0f} s: {seen}")
        time.sleep(0.2)
    return seen


def wait_synced(api: httpx.Client, ingestion_id: str) -> None:
    """Until scheduler-sync made the ingestion's deployment: the round measures a run, not the
    first sync of a new ingestion (a `failed` sync is retried, so it is waited out too)."""
    poll(
        lambda: api.get(f"/api/v1/ingestions/{ingestion_id}").raise_for_status().json(),
        lambda ingestion: ingestion["sync_status"] == "synced",
        120,
    )


def latest_discovery(api: httpx.Client, ingestion_id: str) -> float | None:
    """The latest discovered_at of the ingestion's files, every page read (500 a page)."""
    stamps: list[float] = []
    while True:
        page = (
            api.get(
                f"/api/v1/ingestions/{ingestion_id}/files",
                params={"limit": 500, "offset": len(stamps)},
            )
            .raise_for_status()
            .json()
        )
        stamps += [epoch(item["discovered_at"]) or 0.0 for item in page["items"]]
        if not page["items"] or len(stamps) >= page["total"]:
            return max(stamps, default=None)


def processor_pid() -> int | None:
    """The local stack's processor, as `make up` started it."""
    from devstack import proc
    from devstack.layout import Layout

    return proc.read_pid(Layout.discover(), "processor")


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(kib) / 1024 if kib else None


@contextmanager
def sampled_rss(pid: int | None, every: float = 0.25) -> Iterator[dict[str, float]]:
    """The process's RSS at the start, its peak and at the end of the block (MiB); empty
    when there is no such process."""
    found: dict[str, float] = {}
    start = rss_mib(pid) if pid else None
    if pid is None or start is None:
        yield found
        return
    samples, stop = [start], threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            if (now := rss_mib(pid)) is not None:
                samples.append(now)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()
        if (end := rss_mib(pid)) is not None:
            samples.append(end)
        found.update(start=start, peak=max(samples), end=samples[-1])


def run_to_end(
    api: httpx.Client, ingestion_id: str, timeout: float
) -> tuple[float, float, dict[str, Any]]:
    """Trigger a run and wait until it is final: (epoch of the trigger, seconds, the run row)."""
    triggered, began = time.time(), time.monotonic()
    accepted = api.post(f"/api/v1/ingestions/{ingestion_id}/run").raise_for_status().json()
    run = poll(
        lambda: api.get(f"/api/v1/runs/{accepted['run_id']}").raise_for_status().json(),
        lambda seen: seen["status"] in FINAL_RUN_STATES,
        timeout,
    )
    seconds = time.monotonic() - began
    if run["status"] != "success":
        raise RuntimeError(f"run {run['id']} ended {run['status']}: {run['error']}")
    return triggered, seconds, run


def autoloader(
    spark: Any, api: httpx.Client, source: str, batch: int | None, timeout: float
) -> Measured:
    name = f"bench_autoloader_{uuid.uuid4().hex[:8]}"
    table = f"spark_catalog.default.{name}"
    body = ingestion_body(name, source, batch)
    ingestion_id = api.post("/api/v1/ingestions", json=body).raise_for_status().json()["id"]
    try:
        wait_synced(api, ingestion_id)
        with sampled_rss(processor_pid()) as memory, cpu_used() as cpu:
            triggered, seconds, run = run_to_end(api, ingestion_id, timeout)
        commits = commit_times(spark, table)
        moments = phases(triggered, run, latest_discovery(api, ingestion_id), commits)
        count = commits.count if commits else None
        return Measured(seconds, count_rows(spark, table), moments, count, memory, cpu)
    finally:
        api.delete(f"/api/v1/ingestions/{ingestion_id}")
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")


# ---------------------------------------------------------------- the run


def measure(
    column: Column, spark: Any, api: httpx.Client, source: str, args: argparse.Namespace
) -> Measured:
    if column == "limit":
        return one_batch(spark, source)
    if column == "stream":
        return file_stream(spark, source)
    return autoloader(spark, api, source, args.max_files_per_batch, args.run_timeout)


def one_round(
    column: Column,
    number: int,
    files: int,
    context: tuple[Any, httpx.Client, str],
    args: argparse.Namespace,
) -> Round:
    spark, api, source = context
    try:
        measured = measure(column, spark, api, source, args)
    except Exception as error:  # the round is an error, the run goes on
        return Round(column, files, number, error=brief(error))
    return judged(column, files, number, measured, files * args.rows)


def all_rounds(
    spark: Any, api: httpx.Client, sources: Mapping[int, str], args: argparse.Namespace
) -> list[Round]:
    rounds = []
    for number in range(args.repeat):
        for files, source in sources.items():
            for column in rotation(number):
                done = one_round(column, number, files, (spark, api, source), args)
                print(format_round(done, args.repeat), flush=True)
                rounds.append(done)
    return rounds


def warm_up(spark: Any, api: httpx.Client, source: str, args: argparse.Namespace) -> None:
    """One uncounted Spark batch and one uncounted Autoloader run, so that no counted round
    pays for a session's first job (`make bench` restarts the processor)."""
    began = time.monotonic()
    one_batch(spark, source)
    print(f"warm-up: one Spark batch in {time.monotonic() - began:.1f} s", flush=True)
    began = time.monotonic()
    autoloader(spark, api, source, args.max_files_per_batch, args.run_timeout)
    print(f"warm-up: one Autoloader run in {time.monotonic() - began:.1f} s", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="files")
    parser.add_argument("--rows", type=int, default=10, help="rows per file")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each column and size")
    parser.add_argument(
        "--max-files-per-batch",
        type=int,
        default=None,
        help=f"Autoloader's batch size (default: the ingestion default, {batch_size_default()})",
    )
    parser.add_argument("--upload-threads", type=int, default=16)
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args(argv)
    args.sizes = list(dict.fromkeys(args.sizes))  # each size once, in the order given
    return args


def run(args: argparse.Namespace) -> list[Round]:
    prefix = f"bench/throughput-{uuid.uuid4().hex[:8]}/"
    sources: dict[int, str] = {}
    spark = None
    try:
        for files in args.sizes:
            print(
                f"uploading {files:,} files of {args.rows} rows to s3://{BUCKET}/{prefix}",
                flush=True,
            )
            upload(f"{prefix}{files}/", files, args.rows, args.upload_threads)
            sources[files] = f"s3://{BUCKET}/{prefix}{files}/"
        spark = spark_session(SparkSettings().remote)
        headers = {"Authorization": f"Bearer {api_key()}"}
        with httpx.Client(base_url=API, headers=headers, timeout=60) as api:
            warm_up(spark, api, sources[min(sources)], args)
            return all_rounds(spark, api, sources, args)
    finally:
        if spark is not None:
            spark.stop()
        delete_prefix(s3_client(S3Settings()), BUCKET, prefix)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    batch = args.max_files_per_batch or f"{batch_size_default()} (the default)"
    print(f"machine: {machine()}\nAutoloader's batch size: {batch} files", flush=True)
    rounds = run(args)
    summaries = [summarize(rounds, files) for files in args.sizes]
    print()
    for summary in summaries:
        print(format_summary(summary, args.rows, args.repeat) + "\n")
    save("throughput", figures(args, rounds, summaries))
    return 1 if any(r.error for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
