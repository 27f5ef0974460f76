"""A bucket's notifications reach only the tenants whose claims cover the object's key, even
when an ingestion's own prefix would take it (one stored before claims existed, or edited
below the API)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery.consumer import NotificationHandler
from shared.consumers import DeadLetters
from shared.events import FilesDiscovered
from shared.models import FileState, Ingestion, Tenant
from shared.spec import IngestionSpec
from tests.integration.discovery.test_notification_delivered_twice import (
    Refusals,
    add_notified,
    notification,
)
from tests.integration.runs.rows import remove

pytestmark = pytest.mark.integration


def whole_bucket(name: str, bucket: str) -> IngestionSpec:
    return IngestionSpec.model_validate(
        {
            "name": name,
            "source": {
                "type": "s3",
                "path": f"s3://{bucket}/",
                "file_pattern": "*.json",
                "notifications": {"enabled": True},
            },
            "format": {"type": "json"},
            "destination": {"table": "claimed"},
        }
    )


@pytest.fixture
async def three_tenants(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[str, dict[str, Ingestion]]]:
    """One bucket, three tenants' ingestions on all of it: `owner` claims it whole, `granted`
    holds an operator's grant of b/, `outsider` holds no claim."""
    bucket = f"claims-{uuid.uuid4().hex[:8]}"
    claims = {"owner": [""], "granted": ["b/"], "outsider": []}
    ingestions = {}
    async with sessions() as session, session.begin():
        for role, claimed in claims.items():
            tenant = Tenant(id=uuid.uuid4(), name=f"{role}-{uuid.uuid4().hex[:8]}")
            session.add(tenant)
            await session.flush()
            spec = whole_bucket(tenant.name, bucket)
            ingestions[role] = await add_notified(session, tenant, spec, claimed)
    yield bucket, ingestions
    for ingestion in ingestions.values():
        await remove(sessions, ingestion)


async def test_an_upload_reaches_only_the_tenants_whose_claims_cover_its_key(
    sessions: async_sessionmaker[AsyncSession], three_tenants: tuple[str, dict[str, Ingestion]]
) -> None:
    bucket, ingestions = three_tenants
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
    for key in ("a/1.json", "b/2.json"):
        await handler.handle(notification(bucket, key), b"k")

    async with sessions() as session:
        rows = await session.execute(
            select(FileState.ingestion_id, FileState.path).where(
                FileState.ingestion_id.in_([i.id for i in ingestions.values()])
            )
        )
        seen = {(ingestion_id, path) for ingestion_id, path in rows}
    by_role = {
        role: sorted(path.rsplit("/", 2)[-2] for i, path in seen if i == ingestion.id)
        for role, ingestion in ingestions.items()
    }
    assert by_role == {"owner": ["a", "b"], "granted": ["b"], "outsider": []}
    assert refusals.sent == []
