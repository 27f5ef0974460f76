"""A small JSON-lines batch fetched into the processor reads exactly as Spark's own read of the
same files: the same lines, each with its file, whatever the bytes and the key."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import functions as F

from autoloader_processor import json_lines
from autoloader_processor.fetching import Fetcher
from autoloader_processor.reading import SPARK_FILE, BatchReader, spark_identity
from shared.settings import S3Settings
from shared.spec import IngestionSpec
from tests.integration.processor.conftest import BUCKET, Landing, fetched_batches

pytestmark = pytest.mark.integration

BODIES = {
    "lf.json": b'{"a":1}\n{"a":2}\n',
    "crlf.json": b'{"a":1}\r\n{"a":2}\r\n',
    "cr only.json": b'{"a":1}\r{"a":2}',
    "no end.json": b'{"a":1}\n{"a":2}',
    "bom.json": b'\xef\xbb\xbf{"a":1}\n{"a":2}\n',
    "bom later.json": b'{"a":1}\n\xef\xbb\xbf{"a":2}\n',
    "blanks.json": b'\n\n  \t\n{"a":1}\n\x0b\x0c\n\n',
    "invalid utf8.json": b'{"a":"\xff\xfe"}\n{"a":"ok"}\n',
    "nul.json": b'{"a":"x\x00y"}\n',
    "unicode seps.json": '{"a":"x\u2028y\u0085z"}\n{"a":"\u00e9"}\n'.encode(),
    "emoji 🚀 #?%41 k=v.json": b'{"a":3}\n',
    "only blanks.json": b"\n \n",
    "empty.json": b"",
}


def lines_of(frame: Any) -> list[tuple[str, bytes]]:
    """Each line's file and bytes (Spark keeps invalid UTF-8 as it is; Python would not)."""
    rows = frame.select(F.col("value").cast("binary").alias("value"), SPARK_FILE).collect()
    return sorted((spark_identity(row[SPARK_FILE]), bytes(row["value"])) for row in rows)


def test_fetched_lines_are_spark_text_readers_lines(
    s3: Any, spark: Any, landing: Landing, s3_settings: S3Settings
) -> None:
    paths = []
    for name, body in BODIES.items():
        s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/{name}", Body=body)
        paths.append(landing.path(name))
    table = Fetcher(s3_settings, 1 << 20).lines(paths, None, SPARK_FILE)
    assert table is not None
    fetched = json_lines.fetched_lines(spark, table, SPARK_FILE)
    targets = [p.replace("s3://", "s3a://") for p in paths]
    read = json_lines.read_lines(spark, targets, SPARK_FILE)
    try:
        spark_lines = lines_of(read)
        assert len(spark_lines) == 19  # every line above with more than whitespace
        assert lines_of(fetched) == spark_lines
    finally:
        fetched.unpersist()
        read.unpersist()


def test_a_file_that_cannot_be_fetched_leaves_the_batch_to_spark(
    s3: Any, spark: Any, landing: Landing, s3_settings: S3Settings
) -> None:
    """A file gone since it was found: Spark reads the batch and names that file's reason,
    and the rest land."""
    s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/here.json", Body=b'{"a":1}\n{"a":2}\n')
    sizes = {landing.path("here.json"): 16, landing.path("gone.json"): 8}
    fell_back = fetched_batches("fell_back")
    reader = BatchReader(spark, landing.spec, sizes, fetcher=Fetcher(s3_settings, 1 << 20))
    try:
        read = reader.read()
    finally:
        reader.release()
    assert fetched_batches("fell_back") == fell_back + 1  # Spark judges each file alone
    assert read.records == {landing.path("here.json"): 2}
    assert list(read.failed) == [landing.path("gone.json")]
    assert "not found" in read.failed[landing.path("gone.json")].lower()


def test_a_fetch_signs_with_the_sources_keys_only(
    s3: Any, spark: Any, landing: Landing, s3_settings: S3Settings
) -> None:
    """Keys the store does not know are refused, by the fetch and by Spark after it: the
    service's own keys, which could read the file, are never tried."""
    s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/a.json", Body=b'{"a":1}\n')
    wrong = {"aws_access_key_id": "nobody", "aws_secret_access_key": "wrong-secret"}
    data = landing.spec.model_dump(mode="json", by_alias=True)
    data["source"]["credentials"] = wrong
    spec = IngestionSpec.model_validate(data)
    fetcher = Fetcher(s3_settings, 1 << 20)
    assert fetcher.fetch([landing.path("a.json")], spec.source.credentials) is None
    reader = BatchReader(spark, spec, {landing.path("a.json"): 8}, fetcher=fetcher)
    try:
        read = reader.read()
    finally:
        reader.release()
    assert read.records == {}
    assert "access denied" in read.failed[landing.path("a.json")]


def test_a_file_grown_since_it_was_found_is_not_held_whole_in_the_processor(
    s3: Any, spark: Any, landing: Landing, s3_settings: S3Settings
) -> None:
    """Found at 10 bytes, 3 MiB now: the fetch stops at the batch's limit and Spark reads
    the file, all of it."""
    body = b'{"a":1}\n' * (3 * 1024 * 1024 // 8)
    s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/grown.json", Body=body)
    sizes = {landing.path("grown.json"): 10}
    fetcher = Fetcher(s3_settings, 1 << 20)
    assert fetcher.takes(landing.spec.format, sizes)
    assert fetcher.fetch(list(sizes), None) is None
    reader = BatchReader(spark, landing.spec, sizes, fetcher=fetcher)
    try:
        read = reader.read()
    finally:
        reader.release()
    assert read.records == {landing.path("grown.json"): len(body) // 8}
