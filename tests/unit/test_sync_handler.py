"""scheduler-sync's handler: retries while Prefect is down, dead-letters what can never apply."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from autoloader_sync.handler import EventHandler
from autoloader_sync.sync import Syncer
from shared.events import BackfillRequested, IngestionPaused, IngestionTriggered

pytestmark = pytest.mark.unit


class FakeSyncer:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.synced: list[uuid.UUID] = []
        self.triggered: list[uuid.UUID] = []
        self.failed: list[tuple[uuid.UUID, str]] = []

    async def sync_ingestion(self, ingestion_id: uuid.UUID) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.synced.append(ingestion_id)
        return "synced"

    async def trigger(self, ingestion_id: uuid.UUID, run_id: uuid.UUID) -> str:
        self.triggered.append(run_id)
        return "triggered"

    async def record_failure(self, ingestion_id: uuid.UUID, reason: str) -> None:
        self.failed.append((ingestion_id, reason))


def handler_for(syncer: FakeSyncer) -> tuple[EventHandler, list[tuple[bytes, str]]]:
    letters: list[tuple[bytes, str]] = []

    async def dead_letter(raw: bytes, key: bytes | None, reason: str) -> None:
        letters.append((raw, reason))

    handler = EventHandler(cast(Syncer, syncer), dead_letter, retry_initial_seconds=0.001)
    return handler, letters


def paused() -> bytes:
    return (
        IngestionPaused(tenant_id=uuid.uuid4(), ingestion_id=uuid.uuid4())
        .model_dump_json()
        .encode()
    )


async def test_retries_while_prefect_is_unreachable_then_applies() -> None:
    syncer = FakeSyncer([httpx.ConnectError("refused"), httpx.ConnectError("refused")])
    handler, letters = handler_for(syncer)

    assert await handler.handle(paused(), b"key") == "synced"
    assert len(syncer.synced) == 1 and letters == []


async def test_an_event_prefect_refuses_is_dead_lettered_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tenant sees a reason and a ref in sync_error; the full text is logged under it."""
    syncer = FakeSyncer([ValueError("cron rejected")])
    handler, letters = handler_for(syncer)

    assert await handler.handle(paused(), b"key") == "dead-lettered"
    shown = syncer.failed[0][1]
    assert shown.startswith("IngestionPaused could not be applied: ") and "(ref " in shown
    assert "cron rejected" not in shown and letters[0][1] == shown
    ref = shown.rsplit("(ref ", 1)[1].rstrip(")")
    assert any(ref in r.getMessage() and "cron rejected" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"event_type": "IngestionExploded"}'])
async def test_unparseable_messages_are_dead_lettered_with_the_reason(raw: bytes) -> None:
    syncer = FakeSyncer([])
    handler, letters = handler_for(syncer)

    assert await handler.handle(raw, None) == "dead-lettered"
    assert letters[0][0] == raw
    assert letters[0][1].startswith("unparseable ingestion event")
    assert syncer.synced == []


async def test_a_trigger_creates_a_flow_run_through_the_syncer() -> None:
    syncer = FakeSyncer([])
    handler, _ = handler_for(syncer)
    run_id = uuid.uuid4()
    event: Any = IngestionTriggered(
        tenant_id=uuid.uuid4(), ingestion_id=uuid.uuid4(), run_id=run_id, trigger="manual"
    )

    assert await handler.handle(event.model_dump_json().encode(), None) == "triggered"
    assert syncer.triggered == [run_id]


async def test_a_backfill_request_starts_a_flow_run_of_its_run() -> None:
    syncer = FakeSyncer([])
    handler, letters = handler_for(syncer)
    run_id = uuid.uuid4()
    event = BackfillRequested(
        tenant_id=uuid.uuid4(),
        ingestion_id=uuid.uuid4(),
        run_id=run_id,
        since=datetime(2026, 11, 1, tzinfo=UTC),
        reprocess=True,
    )

    outcome = await handler.handle(event.model_dump_json().encode(), b"key")

    assert (outcome, syncer.triggered, letters) == ("triggered", [run_id], [])
