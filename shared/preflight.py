"""Connectivity checks each service runs before it starts work (`<service> check`).

Each check does one real request and returns what it saw, or raises with what failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import (
    DatabaseSettings,
    KafkaSettings,
    PrefectSettings,
    S3Settings,
    SparkSettings,
)
from shared.topics import ALL_TOPICS

Check = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


async def check_database(settings: DatabaseSettings) -> str:
    engine = create_async_engine(settings.url.get_secret_value())
    try:
        async with engine.connect() as connection:
            version = await connection.scalar(text("SHOW server_version"))
    finally:
        await engine.dispose()
    return f"PostgreSQL {version}"


async def check_kafka(settings: KafkaSettings) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=5_000
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = [topic.name for topic in ALL_TOPICS if topic.name not in existing]
    if missing:
        raise RuntimeError(f"topics missing: {', '.join(missing)}; run `autoloader topics ensure`")
    return f"{len(ALL_TOPICS)} topics present"


async def check_prefect(settings: PrefectSettings) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{settings.api_url}/health")
        response.raise_for_status()
    return f"Prefect API at {settings.api_url}"


async def check_s3(settings: S3Settings) -> str:
    def list_buckets() -> int:
        from shared.s3 import s3_client

        return len(s3_client(settings).list_buckets().get("Buckets", []))

    count = await asyncio.to_thread(list_buckets)
    return f"{count} buckets visible"


async def check_spark(settings: SparkSettings) -> str:
    def select_one() -> str:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.remote(settings.remote).create()
        try:
            return str(spark.version)
        finally:
            spark.stop()

    return f"Spark {await asyncio.to_thread(select_one)}"


CHECKS: dict[str, Callable[[Any], Awaitable[str]]] = {
    "database": check_database,
    "kafka": check_kafka,
    "prefect": check_prefect,
    "s3": check_s3,
    "spark": check_spark,
}


def checks_for(settings: object, *components: str) -> dict[str, Check]:
    """The checks of the named components, each given the service's settings of that name."""
    return {name: partial(CHECKS[name], getattr(settings, name)) for name in components}


async def run_checks(checks: dict[str, Check]) -> list[CheckResult]:
    results = []
    for name, check in checks.items():
        try:
            results.append(CheckResult(name, True, await asyncio.wait_for(check(), 30)))
        except Exception as error:  # report every failure, then let the caller decide
            results.append(CheckResult(name, False, f"{type(error).__name__}: {error}"))
    return results


def print_results(results: list[CheckResult]) -> int:
    for result in results:
        print(f"  {result.name:<10} {'ok' if result.ok else 'FAILED':<7} {result.detail}")
    return 0 if all(result.ok for result in results) else 1
