"""Applying one message of `autoloader.ingestion-events` to Prefect.

A message that does not parse, or an event Prefect refuses, goes to the DLQ with its reason
and the next message is handled. While Prefect or the database is unreachable the handler
retries with backoff and does not return, so the offset is not committed and nothing behind
it in the partition is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter
from pydantic import ValidationError

from autoloader_sync.prefect_gateway import is_unavailable
from autoloader_sync.sync import Syncer
from shared import consumers
from shared.errors import public_error
from shared.events import (
    BackfillRequested,
    IngestionEvent,
    IngestionTriggered,
    parse_ingestion_event,
)

log = logging.getLogger(__name__)

APPLIED = Counter("autoloader_sync_events_total", "Ingestion events applied", ["event_type"])
DEAD_LETTERED = Counter("autoloader_sync_dead_lettered_total", "Events sent to the DLQ")
SYNC_ERRORS = Counter(
    "autoloader_sync_errors_total",
    "Failed attempts to apply an ingestion event to Prefect, by kind: transient (retried "
    "with backoff) or permanent (the event is dead-lettered)",
    ["kind"],
)

DeadLetter = Callable[[bytes, bytes | None, str], Awaitable[None]]


def is_transient(error: BaseException) -> bool:
    return consumers.is_transient(error) or is_unavailable(error)


@dataclass
class EventHandler:
    syncer: Syncer
    dead_letter: DeadLetter
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0

    async def handle(self, raw: bytes, key: bytes | None) -> str:
        try:
            event = parse_ingestion_event(raw)
        except ValidationError as error:
            return await self._reject(raw, key, f"unparseable ingestion event: {error}")
        try:
            outcome = await self._apply_with_retry(event)
        except Exception as error:
            reason = public_error(error, log, where=f"{event.event_type} could not be applied")
            await self.syncer.record_failure(event.ingestion_id, reason)
            return await self._reject(raw, key, reason)
        APPLIED.labels(event.event_type).inc()
        log.info(
            "%s for ingestion %s: %s",
            event.event_type,
            event.ingestion_id,
            outcome,
            extra={"ingestion_id": str(event.ingestion_id)},
        )
        return outcome

    async def _reject(self, raw: bytes, key: bytes | None, reason: str) -> str:
        log.error("dead-lettering a message: %s", reason)
        await self.dead_letter(raw, key, reason)
        DEAD_LETTERED.inc()
        return "dead-lettered"

    async def apply(self, event: IngestionEvent) -> str:
        if isinstance(event, IngestionTriggered | BackfillRequested):
            # A backfill is a flow run like any other: the flow sees the run's trigger.
            return await self.syncer.trigger(event.ingestion_id, event.run_id)
        return await self.syncer.sync_ingestion(event.ingestion_id)

    async def _counted_apply(self, event: IngestionEvent) -> str:
        try:
            return await self.apply(event)
        except Exception as error:
            SYNC_ERRORS.labels("transient" if is_transient(error) else "permanent").inc()
            raise

    async def _apply_with_retry(self, event: IngestionEvent) -> str:
        return await consumers.retrying(
            lambda: self._counted_apply(event),
            f"{event.event_type} for ingestion {event.ingestion_id}",
            is_transient,
            self.retry_initial_seconds,
            self.retry_max_seconds,
        )
