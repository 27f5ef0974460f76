"""The outbox relay: publishes committed outbox rows to Kafka, in order per key.

Several relays may run at once. Each claims a batch with `FOR UPDATE SKIP LOCKED`, so no row is
published by two relays at the same time, and publishes for each key only the unbroken run of
that key's oldest unsent rows it holds, so a key's events never overtake each other.
Publishing is at least once: a relay that dies after sending and before marking rows sent
sends them again, and consumers deduplicate on the event id.

A relay polls the outbox every `poll_interval_seconds` while it is empty. In the API process it
is also woken as soon as a transaction that added outbox rows commits (see
`wake_after_outbox_commits`), so an API call's event leaves without waiting for the next poll.
The wake-up only makes a round come sooner: the poll still finds every row, including those
committed by other processes, so nothing depends on a wake-up arriving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from autoloader_api.settings import RelaySettings
from shared.events import RunCompleted
from shared.models import OutboxEvent

log = logging.getLogger(__name__)

PUBLISHED = Counter("autoloader_outbox_published_total", "Outbox events published to Kafka")
FAILURES = Counter("autoloader_outbox_publish_failures_total", "Failed outbox publish rounds")
# Every run ends with a RunCompleted event in the outbox, whichever process ended it (the
# processor, a flow run, the watchdog): counted here as it is published, once.
RUNS_COMPLETED = Counter(
    "autoloader_runs_completed_total", "Runs ended, by status: success, partial, failed", ["status"]
)

ProducerFactory = Callable[[], Awaitable[AIOKafkaProducer]]

_ADDED_OUTBOX_ROWS = "autoloader.added_outbox_rows"  # a key of Session.info


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
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Start the next round now rather than at the next poll: rows were committed."""
        self._woken.set()

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
            sent = [by_id[row_id] for row_id in ready]
            await self._send(sent)
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(ready))
                .values(sent_at=func.now(), attempts=OutboxEvent.attempts + 1)
            )
        PUBLISHED.inc(len(sent))
        for row in sent:
            if row.event_type == RunCompleted.model_fields["event_type"].default:
                RUNS_COMPLETED.labels(row.payload["status"]).inc()
        return len(sent)

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
            # Cleared before the round: rows committed while it runs wake the next one.
            self._woken.clear()
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
                await _sleep_unless(backoff, stop)
                backoff = min(backoff * 2, self.settings.backoff_max_seconds)
                continue
            if published == 0:
                await _sleep_unless(self.settings.poll_interval_seconds, stop, self._woken)
        await self._reset_producer()

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as error:
                log.debug("outbox relay: stopping the producer failed: %s", error)


async def _sleep_unless(seconds: float, *events: asyncio.Event) -> None:
    """Sleep ``seconds``, or less if one of ``events`` is set meanwhile."""
    waits = [asyncio.ensure_future(flag.wait()) for flag in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def wake_after_outbox_commits(
    sessions: async_sessionmaker[AsyncSession], wake: Callable[[], None]
) -> None:
    """Make each session of ``sessions`` call ``wake`` after it commits new outbox rows.

    The sessions get a Session class of their own, so that these listeners see no other
    session of the process. A missed or needless wake-up costs at most one poll interval or
    one empty round: correctness rests on the poll, never on this.
    """
    base: type[Session] = sessions.kw.get("sync_session_class") or Session
    session_class = type("OutboxWakingSession", (base,), {})
    sessions.configure(sync_session_class=session_class)

    def note_outbox_rows(session: Session, _: UOWTransaction) -> None:
        # After a flush `session.new` still lists what the flush inserted.
        if any(isinstance(row, OutboxEvent) for row in session.new):
            session.info[_ADDED_OUTBOX_ROWS] = True

    def wake_if_rows_were_added(session: Session) -> None:
        # A savepoint's commit commits nothing yet; the outermost one does.
        if not session.in_nested_transaction() and session.info.pop(_ADDED_OUTBOX_ROWS, False):
            wake()

    def forget_rows(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # committed (woken above), rolled back, or closed
            session.info.pop(_ADDED_OUTBOX_ROWS, None)

    event.listen(session_class, "after_flush", note_outbox_rows)
    event.listen(session_class, "after_commit", wake_if_rows_were_added)
    event.listen(session_class, "after_transaction_end", forget_rows)
