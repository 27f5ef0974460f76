"""Batches whose values Spark's JSON inference types oddly still land, through the whole
processor and into an Iceberg table: a key that is only ever null (VOID, which an Iceberg
table cannot hold), objects that are always empty (a file of `{}` lines is records too), and
keys with dots."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor.pool import Processor
from shared.models import FileState
from tests.integration.processor.conftest import Landing, record_files
from tests.integration.processor.test_exactly_once import claim
from tests.integration.processor.test_reading import put

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_null_only_keys_and_empty_objects_land(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
) -> None:
    records = [
        {"n": 1, "gone": None, "e": {}, "l": [{}], "o": {"x": None, "y": 1}, "a.b": "dot"},
        {"n": 2, "gone": None, "e": {}, "l": [], "o": {"x": None, "y": 2}, "a.b": None},
    ]
    body = "\n".join(map(json.dumps, records)).encode()
    sizes = dict([put(s3, landing, "odd.json", body), put(s3, landing, "empty.json", b"{}\n{}")])
    ids = await record_files(sessions, landing, sizes)

    await processor.process(landing.ingestion, landing.spec, await claim(sessions, landing, "odd"))

    async with sessions() as session:
        rows = (await session.execute(select(FileState).where(FileState.id.in_(ids)))).scalars()
        verdicts = {
            row.path.rsplit("/", 1)[1]: (row.status, row.records, row.error) for row in rows
        }
    assert verdicts == {"odd.json": ("SUCCESS", 2, None), "empty.json": ("SUCCESS", 2, None)}
    table = spark.table(landing.table)
    types = {f.name: f.dataType.simpleString() for f in table.schema.fields}
    assert (types["gone"], types["o"]) == ("string", "struct<x:string,y:bigint>")
    assert "e" not in types and "l" not in types
    landed = sorted((r["n"], r["gone"], r["o"]["y"], r["a.b"]) for r in table.collect() if r["n"])
    assert landed == [(1, None, 1, "dot"), (2, None, 2, None)]
