"""Connectivity checks each service runs before it starts work (`<service> check`), and the
probes a long-running process answers health requests with.

Each check does one real request and returns what it saw, or raises with what failed. The
probes instead answer a status word (ok, unreachable, timeout, ...) and log what failed: their
answers are shown to callers who should not see hosts, users or driver messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import (
    DatabaseSettings,
    KafkaSettings,
    PrefectSettings,
    S3Settings,
    SparkSettings,
)
from shared.topics import ALL_TOPICS

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

Check = Callable[[], Awaitable[str]]
log = logging.getLogger(__name__)

OK, UNREACHABLE, TIMEOUT, TOPICS_MISSING = "ok", "unreachable", "timeout", "topics_missing"


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


async def database_status(engine: AsyncEngine, within: float) -> str:
    """`SELECT 1` through the service's own engine (its pool): ok, unreachable or timeout."""
    try:
        async with asyncio.timeout(within), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        log.warning("database probe: no answer within %ss", within)
        return TIMEOUT
    except Exception as error:  # the answer is one word; the log keeps what it stands for
        log.warning("database probe failed: %s: %s", type(error).__name__, error)
        return UNREACHABLE
    return OK


class KafkaProbe:
    """Kafka's reachability for a health page: one admin client kept between calls (dropped
    and rebuilt after a failure), and the last answer reused for `ttl` seconds, so polling the
    page neither opens a connection per call nor queues requests behind a dead broker."""

    def __init__(self, settings: KafkaSettings, ttl: float = 10.0, timeout: float = 5.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self.timeout = timeout
        self.admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[float, str] | None = None

    async def status(self) -> str:
        """ok, unreachable, timeout or topics_missing."""
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._last is None or now - self._last[0] >= self.ttl:
                self._last = (now, await self._check())
            return self._last[1]

    async def close(self) -> None:
        admin, self.admin = self.admin, None
        if admin is not None:
            try:
                await admin.close()
            except Exception:  # closing a client of a dead broker: nothing left to do
                log.debug("closing the Kafka admin client failed", exc_info=True)

    async def _check(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                existing = set(await (await self._client()).list_topics())
        except TimeoutError:
            log.warning("Kafka probe: no answer within %ss", self.timeout)
            await self.close()
            return TIMEOUT
        except Exception as error:
            log.warning("Kafka probe failed: %s: %s", type(error).__name__, error)
            await self.close()
            return UNREACHABLE
        missing = [topic.name for topic in ALL_TOPICS if topic.name not in existing]
        if missing:
            log.warning("Kafka probe: topics missing: %s", ", ".join(missing))
            return TOPICS_MISSING
        return OK

    async def _client(self) -> AIOKafkaAdminClient:
        if self.admin is None:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.bootstrap_servers,
                request_timeout_ms=int(self.timeout * 1000),
            )
            self.admin = admin  # set first, so a failed start is closed by close()
            await admin.start()
        return self.admin
