"""`autoloader-sync`: mirror ingestion events into Prefect deployments and flow runs."""

from __future__ import annotations

import argparse
import asyncio

from autoloader_sync.settings import SyncSettings
from shared.preflight import (
    Check,
    check_database,
    check_kafka,
    check_prefect,
    print_results,
    run_checks,
)


def dependency_checks(settings: SyncSettings) -> dict[str, Check]:
    return {
        "kafka": lambda: check_kafka(settings.kafka),
        "prefect": lambda: check_prefect(settings.prefect),
        "database": lambda: check_database(settings.database),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-sync", description=__doc__)
    parser.add_argument("command", choices=["check"], help="check what the service depends on")
    parser.parse_args(argv)
    return print_results(asyncio.run(run_checks(dependency_checks(SyncSettings()))))
