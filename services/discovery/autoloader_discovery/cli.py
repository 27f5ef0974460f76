"""`autoloader-discovery`: S3 event notifications into files to ingest.

run    consume `autoloader.s3-events` (group `discovery`): record the new objects of matching
       ingestions and publish them to `autoloader.files`, with no listing. With
       AUTOLOADER_DISCOVERY_SEAWEEDFS_BRIDGE=true it also turns SeaweedFS filer events into
       S3 notifications. (Listing runs as the Prefect flow `run_ingestion`, on a worker.)
check  check the database, Kafka, Prefect and the S3 store
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from autoloader_discovery.consumer import broker_factory
from autoloader_discovery.settings import DiscoverySettings
from shared.logs import configure_logging
from shared.preflight import Check, checks_for, print_results, run_checks


def dependency_checks(settings: DiscoverySettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka", "prefect", "s3")


async def _run(settings: DiscoverySettings) -> None:
    broker = broker_factory(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    try:
        await stop.wait()
    finally:
        await broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="autoloader-discovery",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("command", choices=["run", "check"])
    args = parser.parse_args(argv)
    configure_logging()
    settings = DiscoverySettings()
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    asyncio.run(_run(settings))
    return 0
