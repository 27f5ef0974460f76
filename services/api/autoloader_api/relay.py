"""The outbox relay: publishes committed outbox rows to Kafka, in order per key.

Several relays may run at once. Each claims a batch with `FOR UPDATE SKIP LOCKED`, so no row is
published by two relays at the same time, and publishes for each key only the unbroken run of
that key's oldest unsent rows it holds, so a key's events never overtake each other.
Publishing is at least once: a relay that dies after sending and before marking rows sent
sends them again, and consumers deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_api.settings import RelaySettings
from shared.models import OutboxEvent

log = logging.getLogger(__name__)

PUBLISHED = Counter("autoloader_outbox_published_total", "Outbox events published to Kafka")
FAILURES = Counter("autoloader_outbox_publish_failures_total", "Failed outbox publish rounds")

ProducerFactory = Callable[[], Awaitable[AIOKafkaProducer]]


def kafka_producer_factory(bootstrap_servers: str) -> ProducerFactory:
    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    return start


def publishable(claimed: Sequence[OutboxEvent], unsent: Sequence[tuple[int, str]]) -> list[int]:
    """Ids of claimed rows that are the oldest unsent rows of their key, without a gap.

    ``unsent`` lists (id, key) of every unsent row of the claimed keys, in id order; a row
    held by another relay breaks its key's run.
    """
    held = {row.id for row in claimed}
    blocked: set[str] = set()
    ready = []
    for row_id, key in unsent:
        if key in blocked:
            continue
        if row_id in held:
            ready.append(row_id)
        else:
            blocked.add(key)
    return ready


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer_factory: ProducerFactory,
        settings: RelaySettings,
    ) -> None:
        self.sessions = sessions
        self.producer_factory = producer_factory
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; return how many rows were published."""
        async with self.sessions() as session, session.begin():
            claimed = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.sent_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self.settings.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not claimed:
                return 0
            unsent = (
                await session.execute(
                    select(OutboxEvent.id, OutboxEvent.key)
                    .where(
                        OutboxEvent.sent_at.is_(None),
                        OutboxEvent.key.in_({row.key for row in claimed}),
                    )
                    .order_by(OutboxEvent.id)
                )
            ).all()
            ready = publishable(claimed, [(row_id, key) for row_id, key in unsent])
            by_id = {row.id: row for row in claimed}
            await self._send([by_id[row_id] for row_id in ready])
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ready))
                .values(sent_at=func.now(), attempts=OutboxEvent.attempts + 1)
            )
        PUBLISHED.inc(len(ready))
        return len(ready)

    async def _send(self, rows: Sequence[OutboxEvent]) -> None:
        if self._producer is None:
            self._producer = await self.producer_factory()
        futures = [
            await self._producer.send(
                row.topic,
                value=json.dumps(row.payload).encode(),
                key=row.key.encode(),
                headers=[
                    ("event_type", row.event_type.encode()),
                    ("event_id", str(row.payload.get("event_id", "")).encode()),
                ],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, backing off exponentially while Kafka fails."""
        backoff = self.settings.backoff_initial_seconds
        while not stop.is_set():
            try:
                published = await self.publish_batch()
                backoff = self.settings.backoff_initial_seconds
            except Exception as error:
                FAILURES.inc()
                log.warning(
                    "outbox relay: publishing failed (%s: %s); retrying in %.1fs",
                    type(error).__name__,
                    error,
                    backoff,
                )
                await self._reset_producer()
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_seconds)
                continue
            if published == 0:
                await _sleep_unless(stop, self.settings.poll_interval_seconds)
        await self._reset_producer()

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as error:
                log.debug("outbox relay: stopping the producer failed: %s", error)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
