"""`make bench`: 2,000 small JSON files through Autoloader and through Spark Structured
Streaming's file source (Trigger.AvailableNow) into Iceberg, on the same files, in one run.

Prints files/s and rows/s of each, their ratio, and Autoloader's time from trigger to last
commit, as medians over --repeat rounds that alternate the two. Needs `make up`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pyspark.sql import SparkSession

from shared.s3 import s3_client
from shared.settings import S3Settings, SparkSettings

BUCKET = "autoloader-landing"
API = "http://127.0.0.1:8000"
SCHEMA = "id BIGINT, file BIGINT, row BIGINT, name STRING, amount DOUBLE, ts STRING"


@dataclass
class Round:
    seconds: float
    rows: int
    files: int
    trigger_to_commit: float | None = None


def upload(prefix: str, files: int, rows: int) -> None:
    s3 = s3_client(S3Settings())

    def put(n: int) -> None:
        lines = [
            json.dumps(
                {
                    "id": n * rows + r,
                    "file": n,
                    "row": r,
                    "name": f"item-{r}",
                    "amount": r * 1.5,
                    "ts": "2026-11-22T00:00:00Z",
                }
            )
            for r in range(rows)
        ]
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-{n:05d}.json", Body="\n".join(lines))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(files)))


def spark_file_source(spark: Any, prefix: str, files: int) -> Round:
    table = f"spark_catalog.default.bench_spark_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE TABLE {table} ({SCHEMA}) USING iceberg")
    began = time.monotonic()
    query = (
        spark.readStream.schema(SCHEMA)
        .json(f"s3a://{BUCKET}/{prefix}/")
        .writeStream.format("iceberg")
        .outputMode("append")
        .trigger(availableNow=True)
        .option("checkpointLocation", f"s3a://warehouse/_bench/{uuid.uuid4().hex}")
        .toTable(table)
    )
    query.awaitTermination()
    seconds = time.monotonic() - began
    rows = spark.table(table).count()
    spark.sql(f"DROP TABLE {table} PURGE")
    return Round(seconds, rows, files)


def api_key() -> str:
    key_file = Path(__file__).resolve().parent.parent / ".local" / "dev-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    command = [
        str(Path(sys.executable).parent / "autoloader-api"),
        "keys",
        "create",
        "--tenant",
        "bench",
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def autoloader(spark: Any, api: httpx.Client, prefix: str, files: int) -> Round:
    name = f"bench_autoloader_{uuid.uuid4().hex[:8]}"
    body = {
        "name": name,
        "source": {"type": "s3", "path": f"s3://{BUCKET}/{prefix}/", "file_pattern": "*.json"},
        "format": {"type": "json"},
        "destination": {"table": name},
        "execution": {"max_files_per_batch": files},
    }
    ingestion = api.post("/api/v1/ingestions", json=body).raise_for_status().json()
    began = time.monotonic()
    triggered = time.time()
    run_id = (
        api.post(f"/api/v1/ingestions/{ingestion['id']}/run").raise_for_status().json()["run_id"]
    )
    while (run := api.get(f"/api/v1/runs/{run_id}").json())["status"] in ("queued", "running"):
        time.sleep(0.1)
    seconds = time.monotonic() - began
    if run["status"] != "success":
        raise RuntimeError(f"the Autoloader run ended {run['status']}: {run}")
    table = f"spark_catalog.default.{name}"
    last_commit = spark.sql(f"SELECT max(committed_at) AS at FROM {table}.snapshots").first()
    committed: datetime = last_commit["at"]
    rows = spark.table(table).count()
    spark.sql(f"DROP TABLE {table} PURGE")
    api.delete(f"/api/v1/ingestions/{ingestion['id']}")
    return Round(seconds, rows, files, committed.timestamp() - triggered)


def report(label: str, rounds: list[Round]) -> tuple[float, float]:
    files_per_s = statistics.median(r.files / r.seconds for r in rounds)
    rows_per_s = statistics.median(r.rows / r.seconds for r in rounds)
    seconds = ", ".join(f"{r.seconds:.1f}" for r in rounds)
    print(f"{label:<34} {files_per_s:9.1f} files/s {rows_per_s:10.1f} rows/s   ({seconds} s)")
    return files_per_s, rows_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    print(f"uploading {args.files} JSON files of {args.rows} rows to s3://{BUCKET}/{prefix}/")
    upload(prefix, args.files, args.rows)
    spark = SparkSession.builder.remote(SparkSettings().remote).create()
    spark_rounds, autoloader_rounds = [], []
    with httpx.Client(
        base_url=API, headers={"Authorization": f"Bearer {api_key()}"}, timeout=30
    ) as api:
        for n in range(args.repeat):
            print(f"round {n + 1}/{args.repeat}", flush=True)
            spark_rounds.append(spark_file_source(spark, prefix, args.files))
            autoloader_rounds.append(autoloader(spark, api, prefix, args.files))
    expected = args.files * args.rows
    for rounds in (spark_rounds, autoloader_rounds):
        assert all(r.rows == expected for r in rounds), [r.rows for r in rounds]
    print()
    spark_files, spark_rows = report("Spark file source (AvailableNow)", spark_rounds)
    ours_files, ours_rows = report("Autoloader", autoloader_rounds)
    latency = statistics.median(r.trigger_to_commit or 0 for r in autoloader_rounds)
    print(
        f"\nAutoloader / Spark file source: {ours_files / spark_files:.2f}x files/s, "
        f"{ours_rows / spark_rows:.2f}x rows/s"
    )
    print(f"Autoloader, trigger to last commit (median): {latency:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
