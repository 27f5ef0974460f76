"""Compare the database with Prefect and repair the difference; replay the event log.

`reconcile` creates the deployments that are missing (ingestions made before scheduler-sync ran,
or while it was down), updates those that drifted, and deletes deployments whose ingestion is
gone. `rebuild` replays `autoloader.ingestion-events` from the beginning into Prefect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy import select

from autoloader_sync.handler import EventHandler
from autoloader_sync.sync import Syncer
from shared.events import BackfillRequested, IngestionTriggered, parse_ingestion_event
from shared.models import Ingestion, Tenant
from shared.periodic import every
from shared.topics import INGESTION_EVENTS

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self, dry_run: bool) -> str:
        verb = "would be" if dry_run else "were"
        lines = [
            f"{len(self.created)} deployments {verb} created, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted; {self.unchanged} already matched"
        ]
        for label, names in (
            ("create", self.created),
            ("update", self.updated),
            ("delete", self.deleted),
        ):
            lines += [f"  {label} {name}" for name in names]
        return "\n".join(lines)


async def reconcile(syncer: Syncer, dry_run: bool = False) -> ReconcileReport:
    async with syncer.sessions() as session:
        live = (
            await session.execute(
                select(Ingestion, Tenant.name)
                .join(Tenant, Tenant.id == Ingestion.tenant_id)
                .where(Ingestion.deleted_at.is_(None))
            )
        ).all()
    deployed = {state.name: state for state in await syncer.prefect.deployments()}
    report = ReconcileReport()
    for ingestion, tenant in live:
        spec = syncer.deployment_spec(ingestion, tenant)
        state = deployed.pop(spec.name, None)
        if (
            state is not None
            and state.matches(spec)
            and ingestion.prefect_deployment_id == state.id
        ):
            report.unchanged += 1
            continue
        (report.created if state is None else report.updated).append(spec.name)
        if not dry_run:
            await syncer.sync_ingestion(ingestion.id)
    for name in sorted(deployed):
        if name.startswith("ingestion-"):
            report.deleted.append(name)
            if not dry_run:
                await syncer.prefect.delete_deployment_named(name)
    return report


async def rebuild(
    handler: EventHandler, bootstrap_servers: str, progress: Callable[[str], None]
) -> int:
    """Replay the topic, up to its end at the start, into Prefect; return the events read.

    Applying an event syncs its ingestion's current state, so the replay applies each
    ingestion's last event once, and each trigger once, in the order they were read.
    """
    latest: dict[tuple[str, str], tuple[bytes, bytes | None]] = {}
    count = 0
    async for raw, key in _read_topic(bootstrap_servers):
        count += 1
        event = _identity(raw)
        latest.pop(event, None)  # keep the order of each one's last appearance
        latest[event] = (raw, key)
        if count % 1000 == 0:
            progress(f"read {count} events")
    progress(f"read {count} events; applying {len(latest)}")
    for done, (raw, key) in enumerate(latest.values(), start=1):
        await handler.handle(raw, key)
        if done % 50 == 0 or done == len(latest):
            progress(f"applied {done}/{len(latest)}")
    return count


def _identity(raw: bytes) -> tuple[str, str]:
    """What an event is about: its ingestion, or its run for a trigger or a backfill."""
    try:
        event = parse_ingestion_event(raw)
    except ValidationError:
        return ("unparseable", str(hash(raw)))
    if isinstance(event, IngestionTriggered | BackfillRequested):
        return ("run", str(event.run_id))
    return ("ingestion", str(event.ingestion_id))


async def _read_topic(bootstrap_servers: str) -> AsyncIterator[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(INGESTION_EVENTS.name, p) for p in range(INGESTION_EVENTS.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        yield message.value or b"", message.key
    finally:
        await consumer.stop()


async def periodic_reconcile(syncer: Syncer, interval: float, stop: asyncio.Event) -> None:
    """Reconcile every ``interval`` seconds: the safety net for anything events missed."""

    async def once() -> None:
        report = await reconcile(syncer)
        log.info("periodic reconcile: %s", report.summary(dry_run=False).splitlines()[0])

    await every(interval, stop, once, "periodic reconcile")
