"""Files in the S3 store become rows in Iceberg exactly once, through the whole stack."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, eventually
from tests.e2e.ledger import Ledger

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "autoloader-landing"


def ingestion(prefix: str, table: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"pipeline-{table}",
        "source": {"type": "s3", "path": f"s3://{BUCKET}/{prefix}/", "file_pattern": "*.json*"},
        "format": {"type": "json", "schema": {"evolution_enabled": True}},
        "destination": {"catalog": "spark_catalog", "database": "default", "table": table},
    }
    body.update(overrides)
    return body


def put_json_files(s3: Any, prefix: str, first: int, count: int, rows: int = 10) -> int:
    for n in range(first, first + count):
        lines = [json.dumps({"file": n, "row": r, "value": f"v{n}-{r}"}) for r in range(rows)]
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-{n:05d}.json", Body="\n".join(lines))
    return count * rows


async def run_and_wait(api: httpx.AsyncClient, ingestion_id: str) -> dict[str, Any]:
    run_id = (await api.post(f"/api/v1/ingestions/{ingestion_id}/run")).json()["run_id"]
    finished = await eventually(
        lambda: api.get(f"/api/v1/runs/{run_id}"),
        lambda r: r.json()["status"] in ("success", "partial", "failed"),
        240,
        f"run {run_id} did not finish",
    )
    return dict(finished.json())


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("e2e")


async def test_files_land_exactly_once_and_only_new_files_later(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str
) -> None:
    prefix = f"e2e/{table}"
    expected = put_json_files(s3, prefix, 0, 200)
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    ingestion_id = created.json()["id"]

    first = await run_and_wait(api, ingestion_id)

    assert first["status"] == "success", first
    assert (first["files_expected"], first["records"]) == (200, expected)
    assert first["file_counts"] == {"SUCCESS": 200}
    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == expected
    assert frame.select("file", "row").distinct().count() == expected
    assert frame.select("_source_file").distinct().count() == 200

    again = await run_and_wait(api, ingestion_id)
    assert (again["status"], again["files_expected"]) == ("success", 0)
    assert spark.table(f"spark_catalog.default.{table}").count() == expected

    more = put_json_files(s3, prefix, 200, 50)
    third = await run_and_wait(api, ingestion_id)
    assert (third["status"], third["files_expected"], third["records"]) == ("success", 50, more)
    after = spark.table(f"spark_catalog.default.{table}")
    assert after.count() == expected + more
    assert after.select("file", "row").distinct().count() == expected + more


async def test_an_unreadable_file_fails_alone_in_a_batch_with_good_files_and_a_hive_folder(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str
) -> None:
    """One batch: good files, a file under a `key=value` folder, a gzip that is not one. The
    good files and the folder's file land on their first attempt in that run; only the bad
    file is retried, then FAILED with its reason."""
    prefix = f"e2e/{table}"
    good = put_json_files(s3, prefix, 0, 5)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-broken.json.gz", Body=b"\x1f\x8b\x08not gzip")
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/part-zipped.json.gz",
        Body=gzip.compress(b'{"file": 99, "row": 0, "value": "zipped"}\n'),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/dt=2026-11-22/part-0.json",
        Body=b'{"file": 98, "row": 0, "value": "hive"}\n{"file": 98, "row": 1, "value": "hive"}',
    )
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    ingestion_id = created.json()["id"]

    run = await run_and_wait(api, ingestion_id)

    assert run["status"] == "partial", run
    assert run["file_counts"] == {"SUCCESS": 7, "FAILED": 1}
    listed = (await api.get(f"/api/v1/ingestions/{ingestion_id}/files?limit=100")).json()["items"]
    by_name = {item["path"].rsplit(f"{prefix}/", 1)[1]: item for item in listed}
    [failed] = [item for item in listed if item["status"] == "FAILED"]
    assert failed["path"].endswith("part-broken.json.gz")
    assert failed["error"].startswith("unreadable") and failed["attempts"] == 3, failed
    # The reason and a ref, never Spark's message (it names the store's host and s3a paths).
    assert re.search(r"\(ref [0-9a-f]{8}\)$", failed["error"]), failed
    assert "s3a://" not in failed["error"] and "127.0.0.1" not in failed["error"], failed
    ref = re.search(r"\(ref ([0-9a-f]{8})\)$", failed["error"])
    assert ref is not None
    log = (ROOT / ".local" / "logs" / "processor.log").read_text(errors="replace")
    [line] = [
        line for line in log.splitlines() if f"(ref {ref[1]})" in line and "full error" in line
    ]
    assert "part-broken.json.gz" in line, "the log names the file and Spark's own message"
    landed = {name: (f["attempts"], f["records"]) for name, f in by_name.items() if f is not failed}
    assert landed["dt=2026-11-22/part-0.json"] == (1, 2)
    assert landed["part-zipped.json.gz"] == (1, 1)
    assert all(landed[f"part-{n:05d}.json"] == (1, 10) for n in range(5)), landed
    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == good + 3
    assert "dt" not in frame.columns


async def test_a_new_column_is_added_and_earlier_rows_read_it_as_null(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str
) -> None:
    prefix = f"e2e/{table}"
    put_json_files(s3, prefix, 0, 2, rows=3)
    created = await api.post("/api/v1/ingestions", json=ingestion(prefix, table))
    ingestion_id = created.json()["id"]
    assert (await run_and_wait(api, ingestion_id))["status"] == "success"

    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/part-late.json",
        Body=json.dumps({"file": 7, "row": 0, "value": "x", "colour": "blue"}),
    )
    assert (await run_and_wait(api, ingestion_id))["status"] == "success"

    frame = spark.table(f"spark_catalog.default.{table}")
    assert "colour" in frame.columns
    colours = {(row["file"], row["colour"]) for row in frame.select("file", "colour").collect()}
    assert colours == {(0, None), (1, None), (7, "blue")}


@pytest.mark.parametrize(("policy", "landed"), [("ignore", 1), ("reingest", 2)])
async def test_an_overwritten_object_follows_the_overwrite_policy(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str, policy: str, landed: int
) -> None:
    prefix = f"e2e/{table}"
    key = f"{prefix}/orders.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"file": 1, "row": 0, "value": "v1"}))
    body = ingestion(prefix, table, overwrite_policy=policy)
    ingestion_id = (await api.post("/api/v1/ingestions", json=body)).json()["id"]
    assert (await run_and_wait(api, ingestion_id))["records"] == 1

    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"file": 1, "row": 0, "value": "v2"}))
    second = await run_and_wait(api, ingestion_id)

    assert second["status"] == "success"
    assert second["files_expected"] == landed - 1
    values = sorted(r["value"] for r in spark.table(f"spark_catalog.default.{table}").collect())
    assert values == ["v1", "v2"][:landed]


async def test_a_finished_run_is_announced_on_run_events(
    api: httpx.AsyncClient, s3: Any, table: str, kafka_settings: Any
) -> None:
    from shared.topics import RUN_EVENTS
    from tests.kafka_tail import tail

    consumer = await tail(kafka_settings.bootstrap_servers, RUN_EVENTS)
    try:
        prefix = f"e2e/{table}"
        put_json_files(s3, prefix, 0, 3)
        ingestion_id = (await api.post("/api/v1/ingestions", json=ingestion(prefix, table))).json()[
            "id"
        ]
        run = await run_and_wait(api, ingestion_id)

        async def completions() -> list[dict[str, Any]]:
            batches = await consumer.getmany(timeout_ms=500)
            events = [json.loads(m.value or b"") for ms in batches.values() for m in ms]
            return [e for e in events if e.get("run_id") == run["id"]]

        [event] = await eventually(completions, bool, 20, "no RunCompleted")
    finally:
        await consumer.stop()
    assert event["event_type"] == "RunCompleted"
    assert (event["status"], event["files_succeeded"], event["records"]) == ("success", 3, 30)


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


FORMATS = {
    "csv": (
        {"type": "csv", "header": True, "delimiter": ";"},
        "*.csv",
        [b"file;row;value\n0;0;a\n0;1;b\n", b"file;row;value\n1;0;c\n"],
    ),
    "parquet": (
        {"type": "parquet"},
        "*.parquet",
        [
            parquet_bytes(
                [{"file": 0, "row": 0, "value": "a"}, {"file": 0, "row": 1, "value": "b"}]
            ),
            parquet_bytes([{"file": 1, "row": 0, "value": "c"}]),
        ],
    ),
    "multi-line json": (
        {"type": "json", "multiline": True},
        "*.json",
        [
            b'[\n  {"file": 0, "row": 0, "value": "a"},\n'
            b'  {"file": 0, "row": 1, "value": "b"}\n]\n',
            b'{\n  "file": 1,\n  "row": 0,\n  "value": "c"\n}\n',
        ],
    ),
}


@pytest.mark.parametrize("kind", list(FORMATS))
async def test_csv_parquet_and_multiline_json_land_with_their_metadata_columns(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str, kind: str
) -> None:
    fmt, pattern, bodies = FORMATS[kind]
    prefix = f"e2e/{table}"
    suffix = pattern.removeprefix("*")
    for n, body in enumerate(bodies):
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/part-{n}{suffix}", Body=body)
    request = ingestion(prefix, table, format=fmt)
    request["source"]["file_pattern"] = pattern
    ingestion_id = (await api.post("/api/v1/ingestions", json=request)).json()["id"]

    run = await run_and_wait(api, ingestion_id)

    assert (run["status"], run["records"]) == ("success", 3), run
    rows = spark.table(f"spark_catalog.default.{table}").collect()
    assert sorted((int(r["file"]), int(r["row"]), r["value"]) for r in rows) == [
        (0, 0, "a"),
        (0, 1, "b"),
        (1, 0, "c"),
    ]
    assert {r["_source_file"].rsplit("/", 1)[-1] for r in rows} == {
        f"part-0{suffix}",
        f"part-1{suffix}",
    }
    assert all(r["_ingested_at"] is not None for r in rows)
