"""The outbox relay: nothing lost while Kafka is down, nothing published twice by two relays."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_api.relay import OutboxRelay, kafka_producer_factory
from autoloader_api.settings import ApiSettings, RelaySettings
from devstack.components.kafka import Kafka
from devstack.layout import Addresses, Layout
from shared.events import IngestionPaused
from shared.models import OutboxEvent
from shared.uow import UnitOfWork
from tests.integration.api.conftest import Events, NewTenant, seed_request

pytestmark = pytest.mark.integration


async def unsent(sessions: async_sessionmaker[AsyncSession], key: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(OutboxEvent.key == key, OutboxEvent.sent_at.is_(None))
        )
    return int(count or 0)


@pytest.mark.slow
@pytest.mark.usefixtures("native_stack")
async def test_create_succeeds_while_kafka_is_down_and_publishes_once_it_returns(
    client: httpx.AsyncClient,
    new_tenant: NewTenant,
    sessions: async_sessionmaker[AsyncSession],
    events: Events,
) -> None:
    kafka = Kafka(Layout.discover(), Addresses())
    headers = await new_tenant()
    await asyncio.to_thread(kafka.stop)
    try:
        response = await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)
        assert response.status_code == 201, response.text
        ingestion_id = response.json()["id"]
        # Committed with the ingestion, whatever the relay does while Kafka is away.
        assert await unsent(sessions, ingestion_id) == 1
    finally:
        await asyncio.to_thread(kafka.ensure_up)

    messages = await events.for_key(ingestion_id, count=1, within=90, settle=3.0)

    assert [message["event"]["event_type"] for message in messages] == ["IngestionCreated"]
    assert await unsent(sessions, ingestion_id) == 0


async def test_two_relays_publish_each_event_once_and_in_order_per_key(
    api_settings: ApiSettings, sessions: async_sessionmaker[AsyncSession], events: Events
) -> None:
    keys = [uuid.uuid4() for _ in range(8)]
    tenant = uuid.uuid4()
    emitted: dict[uuid.UUID, list[str]] = {key: [] for key in keys}
    async with UnitOfWork(sessions) as uow:
        for _ in range(25):
            for key in keys:
                event = IngestionPaused(tenant_id=tenant, ingestion_id=key)
                emitted[key].append(str(event.event_id))
                uow.emit(event)
        await uow.commit()

    settings = RelaySettings(batch_size=7, poll_interval_seconds=0.01)
    producers = kafka_producer_factory(api_settings.kafka.bootstrap_servers)
    relays = [OutboxRelay(sessions, producers, settings) for _ in range(2)]
    published = await asyncio.gather(*(drain(relay) for relay in relays))

    # Rows other tests left unsent may be published too; ours must all be.
    assert sum(published) >= 200
    assert [await unsent(sessions, str(key)) for key in keys] == [0] * len(keys)
    assert all(count > 0 for count in published), f"one relay did all the work: {published}"
    for key in keys:
        messages = await events.for_key(str(key), count=25, settle=0.5)
        received = [message["event"]["event_id"] for message in messages]
        duplicates = {event_id for event_id, n in Counter(received).items() if n > 1}
        assert not duplicates, f"published twice for {key}: {duplicates}"
        assert received == emitted[key], f"{key}: events missing or out of order"


async def drain(relay: OutboxRelay) -> int:
    """Publish until the outbox is empty; return how many rows this relay published."""
    total, idle = 0, 0
    while idle < 3:
        published = await relay.publish_batch()
        total += published
        idle = idle + 1 if published == 0 else 0
        await asyncio.sleep(0)
    await relay._reset_producer()
    return total
