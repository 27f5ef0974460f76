"""Fixtures shared by every test: the stack's addresses and clients for each component."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.s3 import s3_client
from shared.settings import (
    DatabaseSettings,
    KafkaSettings,
    PrefectSettings,
    S3Settings,
    SparkSettings,
)
from tests.stack import stack_environment

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    with stack_environment() as env:
        yield env


def _require(env: dict[str, str], name: str, component: str) -> None:
    if not env.get(name):
        pytest.skip(f"{component} is not part of this stack ({name} unset): run `make test`")


@pytest.fixture(scope="session")
def database_settings(stack_env: dict[str, str]) -> DatabaseSettings:
    return DatabaseSettings()


@pytest.fixture(scope="session")
def kafka_settings(stack_env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings()


@pytest.fixture(scope="session")
def s3_settings(stack_env: dict[str, str]) -> S3Settings:
    _require(stack_env, "AUTOLOADER_S3_ENDPOINT_URL", "an S3 store")
    return S3Settings()


@pytest.fixture(scope="session")
def spark_settings(stack_env: dict[str, str]) -> SparkSettings:
    _require(stack_env, "AUTOLOADER_SPARK_REMOTE", "Spark Connect")
    return SparkSettings()


@pytest.fixture(scope="session")
def prefect_settings(stack_env: dict[str, str]) -> PrefectSettings:
    _require(stack_env, "PREFECT_API_URL", "Prefect")
    return PrefectSettings()


@pytest.fixture
async def engine(database_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_settings.url.get_secret_value())
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def s3(s3_settings: S3Settings) -> S3Client:
    return s3_client(s3_settings)


@pytest.fixture
def bucket(s3: S3Client) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def spark(spark_settings: SparkSettings) -> Iterator[Any]:
    """A Spark Connect session of the test's own: fault tests restart the Spark server, which
    forgets every session it had."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_settings.remote).create()
    # Without the shared release thread pool: a session garbage-collected on one of its
    # threads joins that thread and hangs every later stop() (pyspark 4.1).
    session.client.disable_reattachable_execute()
    yield session
    session.stop()


@pytest.fixture(scope="session", autouse=True)
def _garbage_collected_between_tests() -> Iterator[None]:
    """pyspark 4.1's Spark Connect `SparkSession.__del__` shuts down the client's shared release
    thread pool and waits for it. Run by the cyclic garbage collector inside a thread that pool
    is starting, it waits for itself, and the batch thread that asked for the new thread hangs
    in `Thread.start` (seen: a processor test stuck until its timeout, after earlier tests had
    dropped their sessions). So the collector runs only between tests, on the main thread, when
    no batch is in flight. The processor itself never drops a session (`SparkSlots`)."""
    gc.collect()
    gc.freeze()  # what the imports made is never garbage: later collections skip it
    gc.disable()
    yield
    gc.enable()


@pytest.fixture(autouse=True)
def _collected_after_each_test(_garbage_collected_between_tests: None) -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names of tables, topics and deployments."""
    return uuid.uuid4().hex[:10]
