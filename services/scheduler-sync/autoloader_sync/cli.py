"""`autoloader-sync`: mirror ingestion events into Prefect deployments and flow runs.

run        consume `autoloader.ingestion-events` (group `scheduler-sync`), reconciling
           periodically as a safety net, and watch unfinished runs: retry or close those
           whose flow run crashed
reconcile  compare the database with Prefect and repair the difference (--dry-run first)
rebuild    replay the whole topic into Prefect, e.g. after losing Prefect's database
check      check Kafka, Prefect and the database
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from autoloader_sync.consumer import broker_factory, build_syncer, commands_group
from autoloader_sync.handler import EventHandler
from autoloader_sync.reconcile import periodic_reconcile, rebuild, reconcile
from autoloader_sync.settings import SyncSettings
from autoloader_sync.watchdog import Watchdog, periodic_watchdog
from shared.local_stack import load_stack_env
from shared.logs import configure_logging
from shared.metrics import LagReporter
from shared.preflight import (
    Check,
    checks_for,
    print_results,
    run_checks,
)
from shared.service import invalid_settings, reporting_unreachable, serve


def dependency_checks(settings: SyncSettings) -> dict[str, Check]:
    return checks_for(settings, "kafka", "prefect", "database")


async def _run(settings: SyncSettings) -> None:
    syncer = build_syncer(settings)

    watchdog = Watchdog(syncer, settings)

    async def watching(stop: asyncio.Event) -> None:
        await asyncio.gather(
            periodic_reconcile(syncer, settings.reconcile_interval_seconds, stop),
            periodic_watchdog(watchdog, stop),
        )

    lag = LagReporter(
        settings.kafka.bootstrap_servers, [settings.group_id, commands_group(settings)]
    )
    await serve(
        broker_factory(settings, syncer),
        watching,
        lag.run,
        metrics=(settings.metrics_host, settings.metrics_port),
    )


async def _reconcile(settings: SyncSettings, dry_run: bool) -> int:
    report = await reconcile(build_syncer(settings), dry_run=dry_run)
    print(report.summary(dry_run))
    return 0


async def _rebuild(settings: SyncSettings) -> int:
    syncer = build_syncer(settings)

    async def dead_letter(raw: bytes, key: bytes | None, reason: str) -> None:
        print(f"  skipped a message: {reason}", file=sys.stderr)

    handler = EventHandler(syncer, dead_letter)

    def progress(message: str) -> None:
        print(f"  {message}", flush=True)

    count = await rebuild(handler, settings.kafka.bootstrap_servers, progress)
    report = await reconcile(syncer)
    print(f"replayed {count} events; then {report.summary(dry_run=False)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    load_stack_env()
    parser = argparse.ArgumentParser(
        prog="autoloader-sync", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run")
    reconcile_cmd = commands.add_parser("reconcile")
    reconcile_cmd.add_argument("--dry-run", action="store_true", help="print, change nothing")
    commands.add_parser("rebuild")
    commands.add_parser("check")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = SyncSettings()
    except ValidationError as error:
        print(invalid_settings("autoloader-sync", error), file=sys.stderr)
        return 2
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    if args.command == "reconcile":
        return reporting_unreachable(
            "autoloader-sync reconcile", lambda: asyncio.run(_reconcile(settings, args.dry_run))
        )
    if args.command == "rebuild":
        return reporting_unreachable(
            "autoloader-sync rebuild", lambda: asyncio.run(_rebuild(settings))
        )
    asyncio.run(_run(settings))
    return 0
