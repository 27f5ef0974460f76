"""Fixtures for API tests: a database of their own, the app with its relay, tenants, events.

The tests get a fresh, migrated database so that nothing else relays their outbox: what they
see on Kafka was published by the relays they run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from autoloader_api.app import create_app
from autoloader_api.auth import create_key
from autoloader_api.settings import ApiSettings, RelaySettings
from shared.crypto import new_key
from shared.db import session_factory
from shared.models import SourceClaim, TenantNamespace
from shared.settings import CredentialsSettings, DatabaseSettings, KafkaSettings
from shared.topics import INGESTION_EVENTS
from shared.uow import UnitOfWork
from tests.databases import own_database
from tests.kafka_tail import tail

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
async def api_database(database_settings: DatabaseSettings) -> AsyncIterator[DatabaseSettings]:
    """A new database, migrated with `alembic upgrade head`, dropped after the session."""
    async with own_database(database_settings, "autoloader_test") as url:
        yield DatabaseSettings(url=SecretStr(url))


@pytest.fixture(scope="session")
def api_settings(api_database: DatabaseSettings, kafka_settings: KafkaSettings) -> ApiSettings:
    return ApiSettings(
        database=api_database,
        kafka=kafka_settings,
        credentials=CredentialsSettings(key=SecretStr(new_key())),
        relay=RelaySettings(poll_interval_seconds=0.05, backoff_max_seconds=2),
    )


@pytest.fixture(scope="session")
async def sessions(api_settings: ApiSettings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(api_settings.database.url.get_secret_value())
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (and so its outbox relay) running, over ASGI."""
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


NewTenant = Callable[[], Awaitable[dict[str, str]]]
SEED_BUCKET = "test-bucket"


async def grant(
    session: AsyncSession, tenant_id: uuid.UUID, namespace: str | None, bucket: str | None
) -> None:
    """What an operator grants with `autoloader tenants grant`: the seeds' request writes to
    the `default` database and reads test-bucket, which every test tenant shares."""
    if namespace is not None:
        session.add(TenantNamespace(tenant_id=tenant_id, namespace=namespace))
    if bucket is not None:
        claim = SourceClaim(bucket=bucket, prefix="", tenant_id=tenant_id, granted_by="operator")
        session.add(claim)
    await session.flush()


@pytest.fixture
def new_tenant(sessions: async_sessionmaker[AsyncSession]) -> NewTenant:
    """Create a tenant with a fresh API key; return the headers that authenticate as it."""

    async def create() -> dict[str, str]:
        name = f"tenant-{uuid.uuid4().hex[:8]}"
        async with UnitOfWork(sessions) as uow:
            key = await create_key(uow, name)
            tenant = await uow.tenants.get_or_create(name)
            await grant(uow.session, tenant.id, "spark_catalog.default", SEED_BUCKET)
            await uow.commit()
        return {"Authorization": f"Bearer {key}"}

    return create


@dataclass
class Events:
    """Reads `autoloader.ingestion-events` from the offsets it had when the test began,
    keeping every message by key, so several keys can be awaited one after another."""

    consumer: AIOKafkaConsumer
    by_key: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)

    async def for_key(
        self, key: str, count: int, within: float = 30, settle: float = 0.0
    ) -> list[dict[str, Any]]:
        """Wait for ``count`` events of ``key``, then ``settle`` seconds more for extras."""
        found = self.by_key.setdefault(key.encode(), [])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline and len(found) < count:
            await self._poll()
        settle_until = loop.time() + settle
        while loop.time() < settle_until:
            await self._poll()
        return list(found)

    async def _poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                self.by_key.setdefault(message.key or b"", []).append(
                    {
                        "raw": message.value,
                        "headers": dict(message.headers),
                        "event": json.loads(message.value or b""),
                    }
                )


@pytest.fixture
async def events(kafka_settings: KafkaSettings) -> AsyncIterator[Events]:
    consumer = await tail(kafka_settings.bootstrap_servers, INGESTION_EVENTS)
    yield Events(consumer)
    await consumer.stop()


def seed_request(**overrides: Any) -> dict[str, Any]:
    """The request body of the seeds' example, as users send it."""
    body: dict[str, Any] = {
        "name": f"Test Hourly Ingestion {uuid.uuid4().hex[:6]}",
        "cluster_id": "cluster_123",
        "source": {
            "type": "s3",
            "path": f"s3://{SEED_BUCKET}/data/",
            "file_pattern": "*.json",
            "credentials": {
                "aws_access_key_id": "AKIATESTKEY12345",
                "aws_secret_access_key": "sEcReT-never-in-events",
                "aws_region": "us-east-1",
            },
        },
        "format": {"type": "json", "schema": {"inference": "auto", "evolution_enabled": True}},
        "destination": {
            "catalog": "spark_catalog",
            "database": "default",
            "table": "test_table",
            "write_mode": "append",
        },
        "schedule": {"frequency": "hourly", "timezone": "UTC"},
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="session")
def native_stack() -> Iterator[None]:
    """Skip unless the stack is the native one, whose components a test may stop and start."""
    if not (ROOT / ".local" / "run" / "kafka.pid").exists():
        pytest.skip("needs the native stack (`make up`) to stop and restart Kafka")
    yield
