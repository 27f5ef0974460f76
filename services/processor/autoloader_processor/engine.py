"""Spark Connect sessions for the processor, and telling an outage from a bad file.

Each batch in flight has a session of its own, because a staged commit sets `spark.wap.id` on
its session. A session whose server restarted is useless (the server forgot it), so a slot
that saw an outage builds a new one next time.

When a batch fails, `outage` asks the infrastructure directly: Spark Connect, the Iceberg
catalog and the source's S3 store. If one of them does not answer, the failure is theirs and
the batch's files keep their attempts; only when all answer does a failure count against files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from pyspark.sql import SparkSession

from autoloader_processor.reading import first_line

log = logging.getLogger(__name__)


@dataclass
class SparkSlots:
    """At most `size` sessions, each used by one batch at a time."""

    build: Callable[[], SparkSession]
    size: int
    _free: asyncio.Queue[SparkSession | None] = field(init=False)

    def __post_init__(self) -> None:
        self._free = asyncio.Queue()
        for _ in range(self.size):
            self._free.put_nowait(None)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SlotSession]:
        spark = await self._free.get()
        if spark is None:
            spark = await asyncio.to_thread(self.build)
        slot = SlotSession(spark)
        try:
            yield slot
        finally:
            self._free.put_nowait(None if slot.broken else slot.spark)

    def close_all(self) -> None:
        while not self._free.empty():
            spark = self._free.get_nowait()
            if spark is not None:
                spark.stop()


@dataclass
class SlotSession:
    spark: SparkSession
    broken: bool = False


def outage(spark: SparkSession, table: str, buckets: Sequence[str], s3: Any) -> str | None:
    """What part of the infrastructure is unreachable now, or None if all of it answers."""
    probes: list[tuple[str, Callable[[], object]]] = [
        ("Spark Connect", lambda: spark.sql("SELECT 1").collect()),
        ("the Iceberg catalog", lambda: spark.catalog.tableExists(table)),
    ]
    if s3 is not None:
        probes += [(f"the S3 store (bucket {b})", _head_bucket(s3, b)) for b in buckets]
    for name, probe in probes:
        try:
            probe()
        except Exception as error:
            return f"{name} is unreachable: {first_line(error)}"
    return None


def _head_bucket(s3: Any, bucket: str) -> Callable[[], object]:
    """Any answer from the store, even a refusal, shows it is up; no answer shows it is not."""

    def probe() -> None:
        with suppress(ClientError):
            s3.head_bucket(Bucket=bucket)

    return probe


def buckets_of(paths: Sequence[str]) -> list[str]:
    return sorted({urlparse(p).netloc for p in paths if p.startswith("s3://")})
