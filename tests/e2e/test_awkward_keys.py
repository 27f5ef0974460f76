"""Every key S3 accepts lands once, listed by a run and notified by an upload: spaces and
punctuation, percent signs that are not escapes, both Unicode normal forms, emoji, `key=value`
folders that Spark must not read as partitions, and a key close to S3's 1,024-byte limit. Each
file keeps one identity from the listing or the event through Spark back to `file_state`."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_event_inputs import notified_ingestion
from tests.e2e.test_ingestion_pipeline import BUCKET, ingestion, run_and_wait
from tests.integration.processor.test_reading import AWKWARD

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY_LIMIT = 1024  # bytes of UTF-8, S3's limit for a whole key


def awkward_names(prefix: str) -> list[str]:
    """At least one name per class of character S3 allows and readers stumble on."""
    names = [
        *AWKWARD,
        "plus+sign.json",
        "tilde~home.json",
        "amp&and.json",
        "eq=sign.json",
        "paren (copy).json",
        "comma,separated.json",
        "two  spaces .json",
        unicodedata.normalize("NFC", "café menu.json"),
        unicodedata.normalize("NFD", "café menu.json"),
        "中文 文件.json",
        "emoji 🎉 mix 👩‍👩‍👧.json",
        "region=eu/dt=2026-11-22/part 1.json",
    ]
    names.append(long_name(prefix))
    return names


def long_name(prefix: str) -> str:
    """Nested folders making the key a few bytes short of S3's limit."""
    folders = "/".join(["deep" + "x" * 195] * 4)
    stem = f"{folders}/long-"
    room = KEY_LIMIT - len(f"{prefix}/{stem}.json".encode()) - 4
    return f"{stem}{'y' * room}.json"


def put_awkward_files(s3: Any, prefix: str) -> dict[str, int]:
    """Upload each name with its own number of rows; the rows expected per source path."""
    expected = {}
    for n, name in enumerate(awkward_names(prefix)):
        key = f"{prefix}/{name}"
        assert len(key.encode()) <= KEY_LIMIT, key
        rows = n % 4 + 1
        body = "\n".join(json.dumps({"file": n, "row": r, "name": name}) for r in range(rows))
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
        expected[f"s3://{BUCKET}/{key}"] = rows
    return expected


async def history(engine: AsyncEngine, ingestion_id: str) -> dict[str, tuple[str, int | None]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT path, status, records FROM file_state WHERE ingestion_id = :id"),
            {"id": ingestion_id},
        )
        return {path: (status, records) for path, status, records in rows.all()}


def landed(spark: Any, table: str) -> tuple[dict[str, int], int, int]:
    """Rows per `_source_file`, all rows, and distinct (file, row) ids."""
    name = f"spark_catalog.default.{table}"
    if not spark.catalog.tableExists(name):
        return {}, 0, 0
    frame = spark.table(name)
    per_file = {r[0]: int(r[1]) for r in frame.groupBy("_source_file").count().collect()}
    return per_file, frame.count(), frame.select("file", "row").distinct().count()


def assert_landed_once(
    spark: Any, table: str, expected: dict[str, int], seen: dict[str, tuple[str, int | None]]
) -> None:
    per_file, rows, distinct = landed(spark, table)
    total = sum(expected.values())
    assert (rows, distinct) == (total, total)
    assert per_file == expected
    assert seen == {path: ("SUCCESS", n) for path, n in expected.items()}
    columns = spark.table(f"spark_catalog.default.{table}").columns
    assert not {"dt", "region", "hour"} & set(columns), columns


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("keys")


async def test_every_awkward_key_lands_once_when_listed(
    api: httpx.AsyncClient, s3: Any, spark: Any, engine: AsyncEngine, table: str
) -> None:
    prefix = f"e2e/{table}"
    expected = put_awkward_files(s3, prefix)
    assert len(expected) >= 30
    body = ingestion(prefix, table, format={"type": "json"})
    body["source"]["file_pattern"] = "*.json"
    created = await api.post("/api/v1/ingestions", json=body)
    assert created.status_code == 201, created.text
    run = await run_and_wait(api, created.json()["id"])
    assert run["status"] == "success", run
    seen = await history(engine, created.json()["id"])
    assert_landed_once(spark, table, expected, seen)


async def test_every_awkward_key_lands_once_when_notified(
    api: httpx.AsyncClient, s3: Any, spark: Any, engine: AsyncEngine, table: str
) -> None:
    prefix = f"e2e/{table}"
    created = await api.post("/api/v1/ingestions", json=notified_ingestion(prefix, table))
    assert created.status_code == 201, created.text
    ingestion_id = created.json()["id"]
    expected = put_awkward_files(s3, prefix)

    def all_final(seen: dict[str, tuple[str, int | None]]) -> bool:
        return set(seen) >= set(expected) and all(
            s in ("SUCCESS", "FAILED") for s, _ in seen.values()
        )

    seen = await eventually(
        lambda: history(engine, ingestion_id), all_final, 180, "not every upload was ingested"
    )
    assert_landed_once(spark, table, expected, seen)
