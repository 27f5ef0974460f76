"""The load history must agree with the tables: after every end-to-end test, each table written
by an ingestion the test created holds, per `_source_file`, exactly the rows that
`file_state.records` says were read from that file, and no rows from any other file.

Files still in flight (PENDING or CLAIMED) are left out on both sides, after waiting a bounded
time for the claimed ones to settle."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.spec import DestinationSpec, quoted
from tests.chaos.trials import spark_session

SETTLE_SECONDS = 60
IN_FLIGHT = ("PENDING", "CLAIMED")
Expected = dict[str, dict[str, int]]  # table -> source path -> rows

INGESTIONS = text(
    "SELECT id, spec -> 'destination' FROM ingestions "
    "WHERE created_at >= :since AND deleted_at IS NULL"
)
FILES = text(
    "SELECT ingestion_id, target_table, path, status, records FROM file_state "
    "WHERE ingestion_id = ANY(:ids)"
)


@dataclass
class Ledger:
    """What one test created: its start (database time) and the scratch tables to drop."""

    since: datetime
    tables: list[str] = field(default_factory=list)

    def table(self, prefix: str) -> str:
        """A new table name in `spark_catalog.default`, dropped after the ledger is checked."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.tables.append(name)
        return name


async def database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT now()"))).scalar_one()  # type: ignore[no-any-return]


async def settled_files(engine: AsyncEngine, since: datetime) -> list[Any]:
    """The files of the test's ingestions, once none is CLAIMED or the wait is over."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        async with engine.connect() as connection:
            found = await connection.execute(INGESTIONS, {"since": since})
            ingestions: dict[uuid.UUID, Any] = {row[0]: row[1] for row in found}
            if not ingestions:
                return []
            files = (await connection.execute(FILES, {"ids": list(ingestions)})).all()
        if time.monotonic() > deadline or all(f.status != "CLAIMED" for f in files):
            return [(ingestions[f.ingestion_id], *f[1:]) for f in files]
        await asyncio.sleep(0.5)


def expected_per_table(files: list[Any]) -> tuple[Expected, set[tuple[str, str]], list[str]]:
    """Rows expected per table and source path, the paths in flight, and missing counts."""
    expected: Expected = defaultdict(dict)
    in_flight: set[tuple[str, str]] = set()
    problems: list[str] = []
    for destination, target_table, path, status, records in files:
        table = target_table or _qualified(destination)
        if status in IN_FLIGHT:
            in_flight.add((table, path))
        elif status == "SUCCESS" and records is None:
            problems.append(f"{path} is SUCCESS without a count of records")
        else:  # a file that did not land must have no rows
            landed = records if status == "SUCCESS" else 0
            expected[table][path] = expected[table].get(path, 0) + landed
    return expected, in_flight, problems


def _qualified(destination: dict[str, Any]) -> str:
    spec = DestinationSpec.model_validate(destination)
    return f"{spec.catalog}.{spec.database}.{spec.table}"


def landed_per_file(remote: str, tables: list[str]) -> dict[str, dict[str, int] | None]:
    """Rows per `_source_file` of each table; None for a table that does not exist."""
    spark = spark_session(remote)
    try:
        landed: dict[str, dict[str, int] | None] = {}
        for table in tables:
            if not spark.catalog.tableExists(table):
                landed[table] = None
                continue
            counts = spark.table(quoted(table)).groupBy("_source_file").count().collect()
            landed[table] = {row[0]: int(row[1]) for row in counts}
        return landed
    finally:
        spark.stop()


def disagreements(
    expected: Expected, in_flight: set[tuple[str, str]], landed: dict[str, dict[str, int] | None]
) -> list[str]:
    problems = []
    for table, paths in expected.items():
        rows = landed[table] or {}
        for path in (set(paths) | set(rows)) - {p for t, p in in_flight if t == table}:
            if rows.get(path, 0) != paths.get(path, 0):
                problems.append(
                    f"{table}: {path} has {rows.get(path, 0)} rows, "
                    f"file_state says {paths.get(path, 0)}"
                )
    return problems


async def check(engine: AsyncEngine, spark_remote: str, since: datetime) -> list[str]:
    """Every disagreement between `file_state` and the tables of ingestions made since."""
    files = await settled_files(engine, since)
    if not files:
        return []
    expected, in_flight, problems = expected_per_table(files)
    landed = await asyncio.to_thread(landed_per_file, spark_remote, sorted(expected))
    return problems + disagreements(expected, in_flight, landed)


def drop(spark_remote: str, tables: list[str]) -> None:
    spark = spark_session(spark_remote)
    try:
        for name in tables:
            spark.sql(f"DROP TABLE IF EXISTS spark_catalog.default.{name} PURGE")
    finally:
        spark.stop()
