"""`autoloader`: operator commands shared by every deployment (topics, database, backfill,
status)."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from shared import backfill_cli, commands_cli, status_cli, tenants_cli
from shared.kafka_admin import ensure_topics
from shared.local_stack import load_stack_env
from shared.service import reporting_unreachable
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, DAY_MS, SEAWEEDFS_FILER, Topic


def _topics(args: argparse.Namespace) -> int:
    if args.action == "list":
        for topic in ALL_TOPICS:
            print(_describe(topic))
        return 0
    wanted = (*ALL_TOPICS, SEAWEEDFS_FILER) if args.seaweedfs else ALL_TOPICS
    created = asyncio.run(ensure_topics(KafkaSettings().bootstrap_servers, wanted))
    print(f"created {len(created)} topics: {', '.join(created)}" if created else "all topics exist")
    return 0


def _describe(topic: Topic) -> str:
    days = topic.retention_ms // DAY_MS
    retention = "forever" if topic.retention_ms < 0 else f"{days}d"
    return f"{topic.name:<30} {topic.partitions:>3} partitions {retention:>8}  {topic.description}"


def _db(args: argparse.Namespace) -> int:
    ini = Path(args.config)
    if not ini.exists():
        print(f"{ini} not found: run from the project root or pass --config", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"])


def main(argv: list[str] | None = None) -> int:
    load_stack_env()
    parser = argparse.ArgumentParser(prog="autoloader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("topics", help="Kafka topics of shared/topics.py")
    topics.add_argument("action", choices=["ensure", "list"])
    topics.add_argument(
        "--seaweedfs",
        action="store_true",
        help=f"also {SEAWEEDFS_FILER.name} (S3 store: SeaweedFS)",
    )
    topics.set_defaults(handler=_topics)
    db = commands.add_parser("db", help="the application database")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--config", default="alembic.ini", help="path to alembic.ini")
    db.set_defaults(handler=_db)
    backfill_cli.add_parser(commands)
    status_cli.add_parser(commands)
    tenants_cli.add_parser(commands)
    commands_cli.add_parser(commands)
    args = parser.parse_args(argv)
    return reporting_unreachable(f"autoloader {args.command}", lambda: int(args.handler(args)))
