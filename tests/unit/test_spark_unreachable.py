"""Which Spark Connect errors are an outage by themselves, whatever a probe says a moment later:
a call that failed while the server was starting would otherwise count against the files."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import grpc
import pytest
from pyspark.errors.exceptions.connect import (
    AnalysisException,
    SparkConnectGrpcException,
)

from autoloader_processor.engine import SparkSlots, catalog_failed, spark_unreachable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED],
)
def test_a_call_that_never_reached_a_live_server_is_an_outage(code: grpc.StatusCode) -> None:
    error = SparkConnectGrpcException(
        message="<_MultiThreadedRendezvous of RPC that terminated with:\n failed to connect",
        grpc_status_code=code,
    )
    reason = spark_unreachable(error)
    assert reason is not None and code.name in reason


@pytest.mark.parametrize(
    "text",
    [
        "[INVALID_HANDLE.SESSION_CHANGED] The existing Spark server driver instance has restarted.",
        "(java.lang.IllegalStateException) Cannot call methods on a stopped SparkContext.",
        "Job 12 cancelled because SparkContext was shut down",
    ],
)
def test_a_server_that_restarted_or_is_shutting_down_is_an_outage(text: str) -> None:
    assert spark_unreachable(SparkConnectGrpcException(message=text)) is not None


def test_an_error_about_the_data_is_not_an_outage() -> None:
    schema = AnalysisException(
        message="[CANNOT_MERGE_INCOMPATIBLE_DATA_TYPE] Failed to merge incompatible data types",
        grpc_status_code=grpc.StatusCode.INTERNAL,
    )
    assert spark_unreachable(schema) is None
    assert spark_unreachable(ValueError("malformed record")) is None


def test_a_failed_call_to_the_catalogs_database_is_an_outage() -> None:
    """Seen while PostgreSQL restarted under a batch: the database was back before the probe."""
    error = SparkConnectGrpcException(
        message="(org.apache.iceberg.jdbc.UncheckedSQLException) Failed to get table "
        "default.chaos_9f7bd7d538 from catalog spark_catalog",
        grpc_status_code=grpc.StatusCode.INTERNAL,
    )
    reason = catalog_failed(error)
    assert reason is not None and "Failed to get table" in reason
    assert catalog_failed(ValueError("malformed record")) is None


async def test_a_session_that_cannot_be_built_gives_its_slot_back() -> None:
    """Otherwise every failed build while Spark Connect is away loses a slot for good, and
    the processor waits for a free session forever."""
    attempts: list[int] = []

    def build() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("Spark Connect is away")
        return object()

    slots = SparkSlots(build, size=1)
    with pytest.raises(ConnectionError):
        async with slots.session():
            pass
    async with asyncio.timeout(5):
        async with slots.session() as slot:
            assert slot.spark is not None
    assert len(attempts) == 2


async def test_a_broken_session_is_replaced_and_kept_never_left_to_the_garbage_collector() -> None:
    """A dropped Spark Connect session closes itself in `__del__`, in whatever thread the
    collector runs; inside another thread's gRPC call that close deadlocks (engine.py)."""

    class Session:
        pass

    built: list[Session] = []

    def build() -> Any:
        built.append(Session())
        return built[-1]

    slots = SparkSlots(build, size=1)
    async with slots.session() as slot:
        slot.broken = True
    kept = weakref.ref(built[0])
    built.clear()
    gc.collect()

    assert kept() is not None, "the broken session was left to the garbage collector"
    async with slots.session() as slot:
        fresh: Any = slot.spark
        assert fresh is not kept()
    retired: list[Any] = slots.retired
    assert retired == [kept()]
