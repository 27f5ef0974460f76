"""The S3-event consumer given the same notification twice, as Kafka redelivers it after a
crash or a rebalance: the file is recorded once and its event published once."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery.consumer import NotificationHandler
from shared.consumers import DeadLetters
from shared.events import FilesDiscovered
from shared.models import FileState, Ingestion, Run, SourceClaim, Tenant
from shared.spec import IngestionSpec
from tests.e2e.test_event_inputs import aws_notification
from tests.integration.runs.rows import remove

pytestmark = pytest.mark.integration


@pytest.fixture
async def notified(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Ingestion]:
    """An active ingestion fed by notifications, on a bucket of its own."""
    name = f"notified-{uuid.uuid4().hex[:8]}"
    spec = IngestionSpec.model_validate(
        {
            "name": name,
            "source": {
                "type": "s3",
                "path": f"s3://{name}/in/",
                "file_pattern": "*.json",
                "notifications": {"enabled": True, "safety_net_interval_minutes": 60},
            },
            "format": {"type": "json"},
            "destination": {"table": "notified_twice"},
        }
    )
    async with sessions() as session, session.begin():
        tenant = Tenant(id=uuid.uuid4(), name=name)
        session.add(tenant)
        await session.flush()
        ingestion = await add_notified(session, tenant, spec, claimed=[""])
    yield ingestion
    await remove(sessions, ingestion)


async def add_notified(
    session: AsyncSession, tenant: Tenant, spec: IngestionSpec, claimed: list[str]
) -> Ingestion:
    """The ingestion, and its tenant's claims on the bucket (as the API records them)."""
    bucket = spec.source.bucket
    assert bucket is not None
    ingestion = Ingestion(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        source_type="s3",
        source_bucket=bucket,
    )
    session.add(ingestion)
    for prefix in claimed:
        session.add(
            SourceClaim(bucket=bucket, prefix=prefix, tenant_id=tenant.id, granted_by="operator")
        )
    await session.flush()
    return ingestion


class Refusals:
    """Dead letters, kept: a notification that is applied sends none."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def publish(self, message: bytes, **kwargs: Any) -> None:
        self.sent.append((message, kwargs))


def notification(bucket: str, key: str) -> bytes:
    body = json.loads(aws_notification(key, 42, "0123456789abcdef0123456789abcdef"))
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    body["Records"][0]["eventTime"] = datetime.now(UTC).isoformat()
    return json.dumps(body).encode()


async def test_the_same_notification_twice_records_one_file_and_publishes_one_event(
    sessions: async_sessionmaker[AsyncSession], notified: Ingestion
) -> None:
    published: list[FilesDiscovered] = []

    async def publish(event: FilesDiscovered) -> None:
        published.append(event)

    refusals = Refusals()
    handler = NotificationHandler(
        sessions=sessions,
        publish=publish,
        dead_letters=DeadLetters(cast(Any, refusals), "autoloader.s3-events", "discovery"),
        join_window=timedelta(seconds=10),
    )
    raw = notification(notified.name, "in/orders 1.json")

    first = await handler.handle(raw, b"k")
    second = await handler.handle(raw, b"k")

    assert (first, second, refusals.sent) == (1, 0, [])
    assert [len(event.files) for event in published] == [1]
    async with sessions() as session:
        files = (
            await session.scalars(select(FileState).where(FileState.ingestion_id == notified.id))
        ).all()
        runs = (await session.scalars(select(Run).where(Run.ingestion_id == notified.id))).all()
    assert [file.path for file in files] == [f"s3://{notified.name}/in/orders 1.json"]
    assert [(run.id, run.files_expected) for run in runs] == [(published[0].run_id, 1)]
