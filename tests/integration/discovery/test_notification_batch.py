"""A batch of S3 notifications on PostgreSQL: one transaction, one event per ingestion, repeats
recorded once, and a message that cannot be applied (an ETag longer than file_state takes)
dead-lettered alone while its neighbours land, leaving no empty run behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery.consumer import NotificationHandler
from shared.consumers import DeadLetters, Received
from shared.events import FilesDiscovered
from shared.models import FileState, Ingestion, Run, Tenant
from shared.spec import IngestionSpec
from tests.integration.discovery.test_notification_delivered_twice import (
    Refusals,
    add_notified,
    notification,
)
from tests.integration.runs.rows import remove

pytestmark = pytest.mark.integration


def notified_spec(name: str, bucket: str, prefix: str) -> IngestionSpec:
    return IngestionSpec.model_validate(
        {
            "name": name,
            "source": {
                "type": "s3",
                "path": f"s3://{bucket}/{prefix}",
                "file_pattern": "*.json",
                "notifications": {"enabled": True, "safety_net_interval_minutes": 60},
            },
            "format": {"type": "json"},
            "destination": {"table": "notified_batch"},
        }
    )


@pytest.fixture
async def two_notified(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[str, Ingestion, Ingestion]]:
    """One tenant's bucket, with an ingestion on orders/ and one on invoices/."""
    bucket = f"batch-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        tenant = Tenant(id=uuid.uuid4(), name=bucket)
        session.add(tenant)
        await session.flush()
        orders = await add_notified(
            session, tenant, notified_spec(f"{bucket}-orders", bucket, "orders/"), claimed=[""]
        )
        invoices = await add_notified(
            session, tenant, notified_spec(f"{bucket}-invoices", bucket, "invoices/"), claimed=[]
        )
    yield bucket, orders, invoices
    for ingestion in (orders, invoices):
        await remove(sessions, ingestion)


class Handled:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.published: list[FilesDiscovered] = []
        self.refusals = Refusals()
        self.handler = NotificationHandler(
            sessions=sessions,
            publish=self.publish,
            dead_letters=DeadLetters(cast(Any, self.refusals), "autoloader.s3-events", "discovery"),
            join_window=timedelta(seconds=10),
        )

    async def publish(self, event: FilesDiscovered) -> None:
        self.published.append(event)


async def files_and_runs(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion
) -> tuple[list[str], list[tuple[uuid.UUID, int | None]]]:
    async with sessions() as session:
        paths = await session.scalars(
            select(FileState.path)
            .where(FileState.ingestion_id == ingestion.id)
            .order_by(FileState.path)
        )
        runs = await session.execute(
            select(Run.id, Run.files_expected).where(Run.ingestion_id == ingestion.id)
        )
        return [path.rsplit("/", 1)[-1] for path in paths], [(id_, n) for id_, n in runs]


async def test_a_batch_records_in_one_go_publishes_one_event_per_ingestion_and_lands_once(
    sessions: async_sessionmaker[AsyncSession], two_notified: tuple[str, Ingestion, Ingestion]
) -> None:
    bucket, orders, invoices = two_notified
    handled = Handled(sessions)
    batch = [
        Received(notification(bucket, "orders/1.json"), b"orders/1.json"),
        Received(b"not json", b"poison"),
        Received(notification(bucket, "orders/1.json"), b"orders/1.json"),  # a repeat
        Received(notification(bucket, "orders/2.json"), b"orders/2.json"),
        Received(notification(bucket, "invoices/1.json"), b"invoices/1.json"),
    ]

    first = await handled.handler.handle_batch(batch)
    again = await handled.handler.handle_batch(batch)  # the batch redelivered after a crash

    assert (first, again) == (3, 0)
    by_ingestion = {event.ingestion_id: len(event.files) for event in handled.published}
    assert by_ingestion == {orders.id: 2, invoices.id: 1}
    assert len(handled.published) == 2, "one event per ingestion, none for the redelivery"
    assert [message for message, _ in handled.refusals.sent] == [b"not json", b"not json"]
    for ingestion, names in ((orders, ["1.json", "2.json"]), (invoices, ["1.json"])):
        files, runs = await files_and_runs(sessions, ingestion)
        assert files == names
        [event] = [e for e in handled.published if e.ingestion_id == ingestion.id]
        assert runs == [(event.run_id, len(names))]


def with_etag(raw: bytes, etag: str) -> bytes:
    body = json.loads(raw)
    body["Records"][0]["s3"]["object"]["eTag"] = etag
    return json.dumps(body).encode()


async def test_a_notification_that_cannot_be_applied_fails_alone(
    sessions: async_sessionmaker[AsyncSession], two_notified: tuple[str, Ingestion, Ingestion]
) -> None:
    bucket, orders, invoices = two_notified
    handled = Handled(sessions)
    unstorable = with_etag(notification(bucket, "orders/bad.json"), "e" * 300)
    batch = [
        Received(notification(bucket, "orders/1.json"), b"orders/1.json"),
        Received(unstorable, b"orders/bad"),
        Received(notification(bucket, "invoices/1.json"), b"invoices/1.json"),
    ]

    async with asyncio.timeout(60):  # a refusal taken for an outage would retry forever
        assert await handled.handler.handle_batch(batch) == 2

    [(message, sent)] = handled.refusals.sent
    assert (message, sent["key"]) == (unstorable, b"orders/bad")
    assert sent["headers"]["reason"].startswith("S3 event notification not applied")
    for ingestion in (orders, invoices):
        files, runs = await files_and_runs(sessions, ingestion)
        assert files == ["1.json"]
        assert [expected for _, expected in runs] == [1], "one run, no empty one left behind"
