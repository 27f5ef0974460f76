"""`autoloader-discovery`: S3 event notifications into files to ingest.

run    consume `autoloader.s3-events` (group `discovery`): record the new objects of matching
       ingestions and publish them to `autoloader.files`, with no listing. With
       AUTOLOADER_DISCOVERY_SEAWEEDFS_BRIDGE=true it also turns SeaweedFS filer events into
       S3 notifications. (Listing runs as the Prefect flow `run_ingestion`, on a worker.)
check  check the database, Kafka, Prefect and the S3 store
"""

from __future__ import annotations

from autoloader_discovery.consumer import broker_factory, seaweedfs_group
from autoloader_discovery.settings import DiscoverySettings
from shared.local_stack import load_stack_env
from shared.metrics import LagReporter
from shared.preflight import Check, checks_for
from shared.service import run_or_check, serve


def dependency_checks(settings: DiscoverySettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka", "prefect", "s3")


async def _run(settings: DiscoverySettings) -> None:
    groups = [settings.group_id]
    if settings.seaweedfs_bridge:
        groups.append(seaweedfs_group(settings))
    lag = LagReporter(settings.kafka.bootstrap_servers, groups)
    await serve(
        broker_factory(settings), lag.run, metrics=(settings.metrics_host, settings.metrics_port)
    )


def main(argv: list[str] | None = None) -> int:
    load_stack_env()
    return run_or_check(
        "autoloader-discovery", __doc__, DiscoverySettings, dependency_checks, _run, argv
    )
