"""`autoloader-processor`: claim discovered files and write them to Iceberg.

run    consume `autoloader.files` with a pool of AUTOLOADER_PROCESSOR_POOL_SIZE workers,
       sweeping periodically for retries that came due and expired leases
check  check the database, Kafka, the S3 store and Spark Connect
"""

from __future__ import annotations

import asyncio

from autoloader_processor.consumer import broker_factory
from autoloader_processor.settings import ProcessorSettings
from shared.local_stack import load_stack_env
from shared.metrics import LagReporter
from shared.periodic import every
from shared.preflight import Check, checks_for
from shared.service import run_or_check, serve


def dependency_checks(settings: ProcessorSettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka", "s3", "spark")


async def _run(settings: ProcessorSettings) -> None:
    broker, processor = broker_factory(settings)

    async def sweeping(stop: asyncio.Event) -> None:
        await every(settings.sweep_interval_seconds, stop, processor.sweep, "sweep")

    lag = LagReporter(settings.kafka.bootstrap_servers, [settings.group_id])
    await serve(broker, sweeping, lag.run, metrics=(settings.metrics_host, settings.metrics_port))


def main(argv: list[str] | None = None) -> int:
    load_stack_env()
    return run_or_check(
        "autoloader-processor", __doc__, ProcessorSettings, dependency_checks, _run, argv
    )
