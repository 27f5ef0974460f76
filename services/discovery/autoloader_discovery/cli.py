"""`autoloader-discovery`: list ingestion sources and publish the files they hold."""

from __future__ import annotations

import argparse
import asyncio

from autoloader_discovery.settings import DiscoverySettings
from shared.preflight import (
    Check,
    check_database,
    check_kafka,
    check_prefect,
    check_s3,
    print_results,
    run_checks,
)


def dependency_checks(settings: DiscoverySettings) -> dict[str, Check]:
    return {
        "database": lambda: check_database(settings.database),
        "kafka": lambda: check_kafka(settings.kafka),
        "prefect": lambda: check_prefect(settings.prefect),
        "s3": lambda: check_s3(settings.s3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-discovery", description=__doc__)
    parser.add_argument("command", choices=["check"], help="check what the service depends on")
    parser.parse_args(argv)
    return print_results(asyncio.run(run_checks(dependency_checks(DiscoverySettings()))))
