"""`make bench-latency`: how soon an upload's rows are visible on the event path, for single
uploads and for a burst.

A fresh ingestion fed by S3 event notifications is created through the REST API (the dev
tenant's key, the stack's landing bucket; on the local stack SeaweedFS's filer events become
the notifications). Then:
- a warm-up upload, waited for: it creates the table, and is not a sample;
- a trickle: one upload a second for --trickle-seconds (60). Each upload is a sample of the
  time from its upload (the moment its PUT returned) to its rows being visible; every sample
  is printed, then the p50 and p95;
- a burst: --burst (1,000) uploads at once, from --threads threads. Printed: the time from the
  burst's first PUT to the first and to the last rows visible, the per-file p50 and p95, and
  how many commits the burst took.

Rows are visible when a reader of the table sees them: when the Iceberg snapshot that added a
file's rows became the table's current snapshot (`history.made_current_at`; the processor
stages a batch and then publishes it, write-audit-publish). Each commit's files are read from
the table after the uploads have landed (an incremental read of that one snapshot), so the
measurement adds no load while it runs. Polling row counts through Spark would compete with the
processor for the same Spark server, and polling the files API for SUCCESS would add the
processor's bookkeeping after the commit; the files API only says when everything has landed.

Every uploaded file must be in the table once, with exactly its rows, and nothing else;
otherwise the run is an error, not a figure. Then the ingestion is deleted, its table dropped
and the uploads removed (--keep keeps them). Figures go to bench-results/latency-*.json.
Needs `make up`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.report import percentile, save
from shared.s3 import s3_client
from shared.settings import S3Settings, SparkSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "autoloader-landing"  # the stack's landing bucket, readable by Spark and the dev tenant
API = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")
SOURCE_FILE = "_source_file"  # the metadata column naming each row's file
TARGETS = {"trickle_p50_s": 1.5, "trickle_p95_s": 2.5, "burst_last_rows_s": 20.0}


@dataclass(frozen=True)
class Upload:
    path: str  # s3://bucket/key, as the table's _source_file names it
    uploaded_at: float  # epoch seconds when its PUT returned


@dataclass(frozen=True)
class Commit:
    """A data snapshot of the table: when it became current, and the files it added."""

    snapshot_id: int
    visible_at: float  # epoch seconds
    paths: frozenset[str]


@dataclass(frozen=True)
class Sample:
    path: str
    uploaded_at: float
    seconds: float  # upload to rows visible
    files_in_commit: int


# ---------------------------------------------------------------- uploads


def file_body(kind: str, number: int, rows: int) -> bytes:
    lines = (json.dumps({"kind": kind, "file": number, "row": row}) for row in range(rows))
    return "\n".join(lines).encode()


def put(s3: S3Client, key: str, body: bytes) -> Upload:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return Upload(f"s3://{BUCKET}/{key}", time.time())


def trickle(s3: S3Client, prefix: str, seconds: int, rows: int) -> list[Upload]:
    """One upload a second, on a fixed schedule (a slow PUT does not shift the next)."""
    uploads = []
    began = time.monotonic()
    for number in range(seconds):
        delay = began + number - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        key = f"{prefix}trickle-{number:05d}.json"
        uploads.append(put(s3, key, file_body("trickle", number, rows)))
    return uploads


def burst(s3: S3Client, prefix: str, files: int, rows: int, threads: int) -> list[Upload]:
    bodies = {f"{prefix}burst-{n:05d}.json": file_body("burst", n, rows) for n in range(files)}
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda key: put(s3, key, bodies[key]), bodies))


def delete_prefix(s3: S3Client, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"]} for item in page.get("Contents", [])
        ]
        if keys:  # a page holds at most 1,000 keys, as many as one delete_objects takes
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


# ---------------------------------------------------------------- the ingestion, through the API


def api_key() -> str:
    key_file = ROOT / ".local" / "dev-api-key"
    if not key_file.exists():
        raise SystemExit("no development API key in .local/dev-api-key: run `make up`")
    return key_file.read_text().strip()


def notified_ingestion(name: str, prefix: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {
            "type": "s3",
            "path": f"s3://{BUCKET}/{prefix}",
            "file_pattern": "*.json",
            "notifications": {"enabled": True, "safety_net_interval_minutes": 60},
        },
        "format": {"type": "json"},
        "destination": {"table": name},
    }


def poll(probe: Callable[[], Any], done: Callable[[Any], bool], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while not done(seen := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {within:.0f} s (last seen: {seen})")
        time.sleep(0.5)
    return seen


def files_with(api: httpx.Client, ingestion_id: str, status: str) -> int:
    page = api.get(
        f"/api/v1/ingestions/{ingestion_id}/files", params={"status": status, "limit": 1}
    )
    return int(page.raise_for_status().json()["total"])


def wait_landed(api: httpx.Client, ingestion_id: str, files: int, within: float) -> None:
    """Until the files API counts `files` SUCCESS files; a FAILED file ends the wait."""

    def probe() -> tuple[int, int]:
        return files_with(api, ingestion_id, "SUCCESS"), files_with(api, ingestion_id, "FAILED")

    def done(counts: tuple[int, int]) -> bool:
        succeeded, failed = counts
        if failed:
            errors = api.get(
                f"/api/v1/ingestions/{ingestion_id}/files", params={"status": "FAILED"}
            ).json()["items"]
            raise RuntimeError(f"{failed} files failed: {[f['error'] for f in errors][:5]}")
        return succeeded >= files

    poll(probe, done, within, f"{files} files landed (SUCCESS, FAILED)")


def wait_synced(api: httpx.Client, ingestion_id: str) -> None:
    """Until scheduler-sync has made the ingestion's deployment (its safety-net listing), so
    that work is not running while latency is measured."""
    try:
        poll(
            lambda: api.get(f"/api/v1/ingestions/{ingestion_id}").raise_for_status().json(),
            lambda ingestion: ingestion["sync_status"] == "synced",
            60,
            "the ingestion's deployment",
        )
    except TimeoutError as error:
        print(f"  (going on without it: {error})", flush=True)


# ---------------------------------------------------------------- the table, through Spark


def spark_session(remote: str) -> Any:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).create()
    spark.client.disable_reattachable_execute()  # see tests/conftest.py::spark
    return spark


def commits(spark: Any, table: str) -> list[Commit]:
    """The table's data snapshots in the order they became current, each with the files whose
    rows it added (an incremental read of that snapshot alone)."""
    snapshots = spark.sql(
        f"""
        SELECT s.snapshot_id, s.parent_id, unix_micros(h.made_current_at) AS at
        FROM {table}.history h JOIN {table}.snapshots s ON h.snapshot_id = s.snapshot_id
        WHERE h.is_current_ancestor
          AND try_cast(try_element_at(s.summary, 'added-records') AS BIGINT) > 0
        ORDER BY h.made_current_at
        """
    ).collect()
    found = []
    for snapshot in snapshots:
        reader = spark.read
        if snapshot["parent_id"] is None:
            reader = reader.option("snapshot-id", snapshot["snapshot_id"])
        else:
            reader = reader.option("start-snapshot-id", snapshot["parent_id"]).option(
                "end-snapshot-id", snapshot["snapshot_id"]
            )
        rows = reader.table(table).select(SOURCE_FILE).distinct().collect()
        paths = frozenset(row[SOURCE_FILE] for row in rows)
        found.append(Commit(int(snapshot["snapshot_id"]), snapshot["at"] / 1e6, paths))
    return found


def rows_per_file(spark: Any, table: str) -> dict[str, int]:
    counted = spark.table(table).groupBy(SOURCE_FILE).count().collect()
    return {row[SOURCE_FILE]: int(row["count"]) for row in counted}


def check_rows(counted: Mapping[str, int], uploads: Sequence[Upload], rows: int) -> None:
    """Every upload in the table with exactly its rows, and nothing else."""
    expected = {upload.path for upload in uploads}
    problems = [f"{path}: missing" for path in sorted(expected - set(counted))]
    problems += [f"{path}: not uploaded here" for path in sorted(set(counted) - expected)]
    problems += [
        f"{path}: {count} rows, not {rows}"
        for path, count in sorted(counted.items())
        if path in expected and count != rows
    ]
    if problems:
        raise RuntimeError("the table disagrees with the uploads:\n  " + "\n  ".join(problems[:20]))


def samples(uploads: Sequence[Upload], found: Sequence[Commit]) -> list[Sample]:
    visible: dict[str, Commit] = {}
    for commit in found:  # the first commit that holds a file's rows made them visible
        for path in commit.paths:
            visible.setdefault(path, commit)
    missing = [upload.path for upload in uploads if upload.path not in visible]
    if missing:
        raise RuntimeError(f"{len(missing)} uploads are in no commit, e.g. {missing[:3]}")
    return [
        Sample(
            upload.path,
            upload.uploaded_at,
            visible[upload.path].visible_at - upload.uploaded_at,
            len(visible[upload.path].paths),
        )
        for upload in uploads
    ]


# ---------------------------------------------------------------- figures


def trickle_figures(taken: Sequence[Sample]) -> dict[str, Any]:
    seconds = [sample.seconds for sample in taken]
    began = taken[0].uploaded_at
    print(f"\ntrickle: {len(taken)} uploads, one a second; upload to rows visible:")
    for number, sample in enumerate(taken, 1):
        print(
            f"  {number:3d}  uploaded at +{sample.uploaded_at - began:5.1f} s"
            f"  visible after {sample.seconds:5.2f} s"
            f"  (a commit of {sample.files_in_commit} files)  {sample.path.rsplit('/', 1)[-1]}"
        )
    p50, p95 = percentile(seconds, 0.5), percentile(seconds, 0.95)
    print(
        f"trickle: p50 {p50:.2f} s (target <= {TARGETS['trickle_p50_s']} s), "
        f"p95 {p95:.2f} s (target <= {TARGETS['trickle_p95_s']} s), "
        f"min {min(seconds):.2f} s, max {max(seconds):.2f} s"
    )
    return {
        "uploads": len(taken),
        "p50_s": p50,
        "p95_s": p95,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "samples": [asdict(sample) for sample in taken],
    }


def burst_figures(
    uploads: Sequence[Upload], taken: Sequence[Sample], began: float, found: Sequence[Commit]
) -> dict[str, Any]:
    paths = {upload.path for upload in uploads}
    carrying = [commit for commit in found if commit.paths & paths]
    first = min(commit.visible_at for commit in carrying) - began
    last = max(commit.visible_at for commit in carrying) - began
    uploaded = max(upload.uploaded_at for upload in uploads) - began
    seconds = [sample.seconds for sample in taken]
    p50, p95 = percentile(seconds, 0.5), percentile(seconds, 0.95)
    sizes = ", ".join(str(len(commit.paths & paths)) for commit in carrying)
    print(f"\nburst: {len(uploads)} uploads, all PUT within {uploaded:.1f} s of the first")
    print(f"  first rows visible after {first:.1f} s")
    print(
        f"  last rows visible after  {last:.1f} s (target <= {TARGETS['burst_last_rows_s']:.0f} s)"
    )
    print(f"  per file, upload to rows visible: p50 {p50:.2f} s, p95 {p95:.2f} s")
    print(f"  {len(carrying)} commits of {sizes} files")
    return {
        "uploads": len(uploads),
        "uploaded_s": uploaded,
        "first_rows_s": first,
        "last_rows_s": last,
        "per_file_p50_s": p50,
        "per_file_p95_s": p95,
        "commits": len(carrying),
        "files_per_commit": [len(commit.paths & paths) for commit in carrying],
    }


# ---------------------------------------------------------------- the run


@contextmanager
def notified(
    api: httpx.Client, spark: Any, s3: S3Client, keep: bool
) -> Iterator[tuple[str, str, str]]:
    """A fresh notified ingestion on a prefix of its own: (ingestion id, prefix, table); the
    ingestion, its table and the uploads are removed afterwards, unless kept."""
    name = f"bench_latency_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-latency/{name}/"
    table = f"spark_catalog.default.{name}"
    created = api.post("/api/v1/ingestions", json=notified_ingestion(name, prefix))
    ingestion_id = created.raise_for_status().json()["id"]
    print(f"ingestion {ingestion_id}: s3://{BUCKET}/{prefix} -> {table}", flush=True)
    try:
        yield ingestion_id, prefix, table
    finally:
        if keep:
            print(f"kept: ingestion {ingestion_id}, {table}, s3://{BUCKET}/{prefix}")
        else:
            clean_up(
                lambda: api.delete(f"/api/v1/ingestions/{ingestion_id}").raise_for_status(),
                lambda: spark.sql(f"DROP TABLE IF EXISTS {table} PURGE"),
                lambda: delete_prefix(s3, prefix),
            )


def clean_up(*steps: Callable[[], object]) -> None:
    """Every step, even after one failed: a failed clean-up is reported, and does not hide
    what the run itself raised."""
    for step in steps:
        try:
            step()
        except Exception as error:
            print(f"clean-up: {type(error).__name__}: {error}", file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    s3 = s3_client(S3Settings())
    spark = spark_session(SparkSettings().remote)
    headers = {"Authorization": f"Bearer {api_key()}"}
    figures: dict[str, Any] = {"rows_per_file": args.rows, "targets": TARGETS}
    try:
        with (
            httpx.Client(base_url=API, headers=headers, timeout=30) as api,
            notified(api, spark, s3, args.keep) as (ingestion_id, prefix, table),
        ):
            wait_synced(api, ingestion_id)
            print("warm-up: one upload, which creates the table", flush=True)
            uploads = [put(s3, f"{prefix}warm-up.json", file_body("warm-up", 0, args.rows))]
            wait_landed(api, ingestion_id, 1, args.timeout)

            trickled: list[Upload] = []
            if args.trickle_seconds:
                print(f"trickle: one upload a second for {args.trickle_seconds} s", flush=True)
                trickled = trickle(s3, prefix, args.trickle_seconds, args.rows)
                uploads += trickled
                wait_landed(api, ingestion_id, len(uploads), args.timeout)

            burst_uploads: list[Upload] = []
            if args.burst:
                print(f"burst: {args.burst} uploads from {args.threads} threads", flush=True)
                burst_began = time.time()
                burst_uploads = burst(s3, prefix, args.burst, args.rows, args.threads)
                uploads += burst_uploads
                wait_landed(api, ingestion_id, len(uploads), args.timeout)

            print("reading when each file's rows became visible", flush=True)
            check_rows(rows_per_file(spark, table), uploads, args.rows)
            found = commits(spark, table)
            [warm_up] = samples(uploads[:1], found)
            print(f"warm-up: visible after {warm_up.seconds:.2f} s (not a sample)")
            figures["warm_up_s"] = warm_up.seconds
            if trickled:
                figures["trickle"] = trickle_figures(samples(trickled, found))
            if burst_uploads:
                taken = samples(burst_uploads, found)
                figures["burst"] = burst_figures(burst_uploads, taken, burst_began, found)
    finally:
        spark.stop()
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--trickle-seconds",
        type=int,
        default=60,
        help="one upload a second for this long (0: none)",
    )
    parser.add_argument("--burst", type=int, default=1000, help="uploads at once (0: none)")
    parser.add_argument("--rows", type=int, default=10, help="rows in each uploaded file")
    parser.add_argument("--threads", type=int, default=16, help="threads uploading the burst")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for a phase's files to land"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the ingestion, its table and the uploads"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    save("latency", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
