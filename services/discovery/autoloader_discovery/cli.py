"""`autoloader-discovery`: list ingestion sources and publish the files they hold."""

from __future__ import annotations

import argparse
import asyncio

from autoloader_discovery.settings import DiscoverySettings
from shared.preflight import (
    Check,
    checks_for,
    print_results,
    run_checks,
)


def dependency_checks(settings: DiscoverySettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka", "prefect", "s3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-discovery", description=__doc__)
    parser.add_argument("command", choices=["check"], help="check what the service depends on")
    parser.parse_args(argv)
    return print_results(asyncio.run(run_checks(dependency_checks(DiscoverySettings()))))
