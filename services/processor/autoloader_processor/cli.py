"""`autoloader-processor`: claim discovered files and write them to Iceberg.

run    consume `autoloader.files` with a pool of AUTOLOADER_PROCESSOR_POOL_SIZE workers,
       sweeping periodically for retries that came due and expired leases
check  check the database, Kafka, the S3 store and Spark Connect
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from autoloader_processor.consumer import broker_factory
from autoloader_processor.settings import ProcessorSettings
from shared.logs import configure_logging
from shared.periodic import every
from shared.preflight import (
    Check,
    checks_for,
    print_results,
    run_checks,
)

log = logging.getLogger(__name__)


def dependency_checks(settings: ProcessorSettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka", "s3", "spark")


async def _run(settings: ProcessorSettings) -> None:
    broker, processor = broker_factory(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    sweeper = asyncio.create_task(
        every(settings.sweep_interval_seconds, stop, processor.sweep, "sweep")
    )
    try:
        await stop.wait()
    finally:
        await sweeper
        await broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="autoloader-processor",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("command", choices=["run", "check"])
    args = parser.parse_args(argv)
    configure_logging()
    settings = ProcessorSettings()
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    asyncio.run(_run(settings))
    return 0
