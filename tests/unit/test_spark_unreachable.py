"""Which Spark Connect errors are an outage by themselves, whatever a probe says a moment later:
a call that failed while the server was starting would otherwise count against the files."""

from __future__ import annotations

import grpc
import pytest
from pyspark.errors.exceptions.connect import (
    AnalysisException,
    SparkConnectGrpcException,
)

from autoloader_processor.engine import spark_unreachable

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
