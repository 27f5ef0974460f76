"""Spark Connect sessions for the processor, and telling an outage from a bad file.

Each batch in flight has a session of its own, because a staged commit sets `spark.wap.id` on
its session. A session whose server restarted is useless (the server forgot it), so a slot
that saw an outage builds a new one next time.

When a batch fails, its error is looked at first: a call that never reached a live Spark
Connect (the connection failed, the server restarted and forgot the session, or it is shutting
down) is an outage whatever the server says a moment later. Otherwise `outage` asks the
infrastructure directly: Spark Connect, the Iceberg catalog and the source's S3 store. If one
of them does not answer, the failure is theirs and the batch's files keep their attempts; only
when all answer does a failure count against files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import grpc
from botocore.exceptions import ClientError
from pyspark.errors.exceptions.connect import SparkConnectGrpcException
from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass
class SparkSlots:
    """At most `size` sessions, each used by one batch at a time.

    A broken session is replaced, and kept, never dropped: a dropped Spark Connect session
    closes itself from `__del__`, whenever the garbage collector runs, in any thread. Its close
    shuts down the client's shared release thread pool and waits for it; run inside another
    thread's gRPC call, that wait never ends, and that thread's batch hangs with its claim held
    (seen after a PostgreSQL restart). One retired session per outage is the price.
    """

    build: Callable[[], SparkSession]
    size: int
    _free: asyncio.Queue[SparkSession | None] = field(init=False)
    retired: list[SparkSession] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._free = asyncio.Queue()
        for _ in range(self.size):
            self._free.put_nowait(None)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SlotSession]:
        spark = await self._free.get()
        if spark is None:
            try:
                spark = await asyncio.to_thread(self.build)
            except BaseException:
                self._free.put_nowait(None)  # the slot stays, to be built again
                raise
        slot = SlotSession(spark)
        try:
            yield slot
        finally:
            if slot.broken:
                self.retired.append(slot.spark)
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


# gRPC codes of a call that did not reach a working server, or was cut off by its going away.
_TRANSPORT_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}
# Errors of a server that restarted under the session, or of one shutting down.
_GONE_MARKERS = (
    "INVALID_HANDLE.SESSION_CHANGED",
    "INVALID_HANDLE.SESSION_NOT_FOUND",
    "INVALID_HANDLE.SESSION_CLOSED",
    "RETRIES_EXCEEDED",
    "Cannot call methods on a stopped SparkContext",
    "SparkContext was shut down",
)


# The JDBC catalog's wrapper of a failed SQL call to its database.
_CATALOG_DATABASE = "org.apache.iceberg.jdbc.UncheckedSQLException"


def spark_unreachable(error: BaseException) -> str | None:
    """Why `error` says Spark Connect was out when the call was made, or None if it does not.

    Probing afterwards cannot tell: the server may be back by then (the call failed while it
    was starting) or still answering while it shuts down (the call was cut off)."""
    if isinstance(error, SparkConnectGrpcException):
        code = error.getGrpcStatusCode()
        if code in _TRANSPORT_CODES:
            return f"Spark Connect is unreachable ({code.name}): {first_line(error)}"
    text = str(error)
    if marker := next((m for m in _GONE_MARKERS if m in text), None):
        return f"Spark Connect went away ({marker}): {first_line(error)}"
    return None


def catalog_failed(error: BaseException) -> str | None:
    """Why `error` says the Iceberg catalog's own database failed the call, or None.

    Never a file's fault, and like Spark's restarts not for a probe to judge afterwards: the
    database may be back by the time it is asked (a PostgreSQL restart)."""
    if _CATALOG_DATABASE in str(error):
        return f"the Iceberg catalog's database failed: {first_line(error)}"
    return None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


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
