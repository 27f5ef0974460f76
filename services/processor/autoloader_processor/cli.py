"""`autoloader-processor`: claim discovered files and write them to Iceberg."""

from __future__ import annotations

import argparse
import asyncio

from autoloader_processor.settings import ProcessorSettings
from shared.preflight import (
    Check,
    check_database,
    check_kafka,
    check_s3,
    check_spark,
    print_results,
    run_checks,
)


def dependency_checks(settings: ProcessorSettings) -> dict[str, Check]:
    return {
        "database": lambda: check_database(settings.database),
        "kafka": lambda: check_kafka(settings.kafka),
        "s3": lambda: check_s3(settings.s3),
        "spark": lambda: check_spark(settings.spark),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-processor", description=__doc__)
    parser.add_argument("command", choices=["check"], help="check what the service depends on")
    parser.parse_args(argv)
    return print_results(asyncio.run(run_checks(dependency_checks(ProcessorSettings()))))
