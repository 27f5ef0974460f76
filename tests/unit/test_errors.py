"""Errors shown to tenants: a classified reason and a reference, the full text only in the log."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError
from pyspark.errors.exceptions.connect import AnalysisException

from shared import errors

pytestmark = pytest.mark.unit

INTERNAL = "http://10.1.2.3:8333"  # stands for any internal host a raw message may name


def client_error(code: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": f"at {INTERNAL}"}}
    return ClientError(response, "ListObjectsV2")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (client_error("AccessDenied"), errors.ACCESS_DENIED),
        (client_error("InvalidAccessKeyId"), errors.ACCESS_DENIED),
        (client_error("ExpiredToken"), errors.ACCESS_DENIED),
        (client_error("NoSuchBucket"), errors.NOT_FOUND),
        (EndpointConnectionError(endpoint_url=INTERNAL), errors.UNREACHABLE),
        (ConnectTimeoutError(endpoint_url=INTERNAL), errors.UNREACHABLE),
        (TimeoutError(), errors.TIMEOUT),
        (ConnectionRefusedError(111, "Connection refused"), errors.UNREACHABLE),
        (PermissionError(13, "Permission denied", "/data/x"), errors.ACCESS_DENIED),
        (FileNotFoundError(2, "No such file or directory", "/data/x"), errors.NOT_FOUND),
        (
            AnalysisException("[MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed..."),
            errors.UNREADABLE,
        ),
        (AnalysisException("[UNABLE_TO_INFER_SCHEMA] Unable to infer schema"), errors.UNREADABLE),
        (
            AnalysisException("[INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST] Cannot write"),
            errors.SCHEMA_MISMATCH,
        ),
        (  # Iceberg's merge-schema, when a column's type would change (inference switched)
            ValueError("IllegalArgumentException: Cannot change column type: n: long -> string"),
            errors.SCHEMA_MISMATCH,
        ),
        (  # a file named against the ingestion's compression (reading.compression_refusal)
            "format.compression is 'gzip', but Spark decompresses only names ending '.gz'",
            errors.UNREADABLE,
        ),
        (  # a JSON key spelt otherwise than its column, on Spark's JSON reader (spellings)
            "a record has a value under the key 'o.x', which differs only in case from a column",
            errors.UNREADABLE,
        ),
        (  # a file with a column of Autoloader's own (reading.BatchReader._per_file)
            "a record has a value under '_source_file', which Autoloader writes itself",
            errors.UNREADABLE,
        ),
        (ValueError("something odd"), errors.UNEXPECTED),
        ("no json record could be parsed", errors.UNREADABLE),
        ("Spark found no file at this path", errors.NOT_FOUND),
    ],
)
def test_classify_names_the_reason(error: BaseException | str, reason: str) -> None:
    assert errors.classify(error) == reason
    assert reason in errors.REASONS


def test_the_server_stack_trace_of_a_spark_error_does_not_decide_its_reason() -> None:
    error = AnalysisException(
        "[MALFORMED_RECORD_IN_PARSING] Malformed records\n\nJVM stacktrace:\n"
        "org.apache.spark.SparkException: connect timeout at S3AInputStream"
    )
    assert errors.classify(error) == errors.UNREADABLE


def test_a_cause_counts_when_the_error_itself_says_nothing() -> None:
    try:
        try:
            raise client_error("AccessDenied")
        except ClientError as inner:
            raise RuntimeError("listing failed") from inner
    except RuntimeError as outer:
        assert errors.classify(outer) == errors.ACCESS_DENIED


def test_public_error_logs_the_full_text_under_the_ref_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = client_error("AccessDenied")
    logger = logging.getLogger("test.errors")
    with caplog.at_level(logging.WARNING, logger="test.errors"):
        text = errors.public_error(error, logger, where="discovery failed")

    found = re.fullmatch(r"discovery failed: access denied \(ref ([0-9a-f]{8})\)", text)
    assert found is not None, text
    assert INTERNAL not in text
    [record] = caplog.records
    assert record.error_ref == found.group(1)  # type: ignore[attr-defined]
    assert f"ref {found.group(1)}" in record.getMessage()
    assert INTERNAL in record.getMessage() and "ClientError" in record.getMessage()


def test_every_public_error_gets_a_fresh_ref() -> None:
    texts = {errors.public_error(ValueError("x")) for _ in range(50)}
    assert len(texts) == 50


def test_a_detail_and_a_reason_can_be_given() -> None:
    text = errors.public_error(TimeoutError(), reason="timeout", detail="took longer than 60 s")
    assert re.fullmatch(r"timeout: took longer than 60 s \(ref [0-9a-f]{8}\)", text), text


def test_spark_error_class_is_the_code_without_the_message() -> None:
    error = AnalysisException(
        f"[FAILED_READ_FILE.NO_HINT] Encountered error while reading file s3a://b/k at {INTERNAL}"
    )
    assert errors.spark_error_class(error) == "FAILED_READ_FILE.NO_HINT"
    assert errors.spark_error_class(ValueError("plain [lowercase] text")) is None


def test_a_file_verdict_gets_its_reason_and_a_ref_once() -> None:
    shown = errors.public_file_error("no json record could be parsed")
    assert re.fullmatch(r"unreadable: no json record could be parsed \(ref [0-9a-f]{8}\)", shown)
    assert errors.public_file_error(shown) == shown
    already = errors.public_file_error("unreadable as json")
    assert re.fullmatch(r"unreadable as json \(ref [0-9a-f]{8}\)", already), already


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (
            "options {fs.s3a.secret.key=hunter2, fs.s3a.session.token=tok.en/1}",
            "fs.s3a.secret.key=",
        ),
        (
            "{'aws_secret_access_key': 'hunter2', 'aws_session_token': 'tok.en/1'}",
            "aws_session_token",
        ),
        ("GET /b/k?X-Amz-Security-Token=tok.en/1&X-Amz-Signature=hunter2 403", "/b/k?"),
        ("could not connect to postgresql+asyncpg://autoloader:hunter2@db:5432/x", "@db:5432/x"),
    ],
)
def test_the_logged_text_masks_secret_looking_values(raw: str, kept: str) -> None:
    logged = errors.full_text(RuntimeError(raw))
    assert "hunter2" not in logged and "tok.en/1" not in logged, logged
    assert kept in logged and "****" in logged


def test_error_codes_that_name_a_token_are_kept() -> None:
    text = "An error occurred (ExpiredToken) when calling the ListObjectsV2 operation: expired"
    assert errors.full_text(RuntimeError(text)) == f"RuntimeError: {text}"
