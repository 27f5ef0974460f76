"""scheduler-sync's command handler against PostgreSQL and Kafka: a command signed with its
tenant's key gives one run, however often it arrives; without a signing secret on the service,
every command is dead-lettered and creates nothing, and no dead letter carries a key."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_sync.commands import CommandHandler
from shared.command_signing import sign, tenant_key
from shared.consumers import DeadLetters
from shared.models import Ingestion, Run, Tenant
from shared.settings import KafkaSettings
from shared.topics import COMMANDS, DLQ
from tests.e2e.conftest import eventually
from tests.integration.runs.rows import new_ingestion
from tests.kafka_tail import tail

pytestmark = pytest.mark.integration

SECRET = "integration-test-signing-secret"
CONSUMER = "scheduler-sync-commands-test"


@pytest.fixture
async def broker(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(kafka_settings.bootstrap_servers)
    await broker.connect()
    yield broker
    await broker.stop()


@pytest.fixture
async def dlq(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = await tail(kafka_settings.bootstrap_servers, DLQ)
    yield consumer
    await consumer.stop()


@pytest.fixture
async def ingestion(own_sessions: async_sessionmaker[AsyncSession]) -> Ingestion:
    return await new_ingestion(own_sessions, deleted=False)


def handler(
    sessions: async_sessionmaker[AsyncSession], broker: KafkaBroker, secret: str | None
) -> CommandHandler:
    return CommandHandler(
        sessions,
        DeadLetters(broker, COMMANDS.name, CONSUMER),
        signing_secret=SecretStr(secret) if secret is not None else None,
        max_age_seconds=900,
    )


async def command_for(sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion) -> bytes:
    async with sessions() as session:
        tenant = await session.scalar(select(Tenant.name).where(Tenant.id == ingestion.tenant_id))
    command = {
        "command_type": "TriggerIngestion",
        "tenant": tenant,
        "ingestion_id": str(ingestion.id),
        "idempotency_key": f"nightly-{uuid.uuid4().hex[:8]}",
        "requested_by": "orders-pipeline",
    }
    return json.dumps(command).encode()


async def runs_of(sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Run).where(Run.ingestion_id == ingestion.id)
        return int(await session.scalar(query) or 0)


async def test_a_signed_command_delivered_twice_gives_one_run(
    own_sessions: async_sessionmaker[AsyncSession], broker: KafkaBroker, ingestion: Ingestion
) -> None:
    commands = handler(own_sessions, broker, SECRET)
    value = await command_for(own_sessions, ingestion)
    headers = sign(value, tenant_key(SECRET, json.loads(value)["tenant"]))

    first = await commands.handle(value, b"k", headers)
    again = await commands.handle(value, b"k", headers)

    assert first is not None and again is not None
    assert again.id == first.id
    assert (first.trigger, first.requested_by) == ("upstream", "upstream:orders-pipeline")
    assert await runs_of(own_sessions, ingestion) == 1


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
async def test_without_a_signing_secret_a_signed_command_is_dead_lettered_and_creates_nothing(
    secret: str | None,
    own_sessions: async_sessionmaker[AsyncSession],
    broker: KafkaBroker,
    dlq: AIOKafkaConsumer,
    ingestion: Ingestion,
) -> None:
    value = await command_for(own_sessions, ingestion)
    key = tenant_key("", json.loads(value)["tenant"])  # what a key of an empty secret would be
    headers = sign(value, key)

    assert await handler(own_sessions, broker, secret).handle(value, b"k", headers) is None

    letter = await _dead_letter(dlq, value)
    letter_headers = dict(letter.headers)
    assert b"AUTOLOADER_COMMANDS_SIGNING_SECRET is not set" in letter_headers["reason"]
    assert letter_headers["consumer"] == CONSUMER.encode()
    assert await runs_of(own_sessions, ingestion) == 0


async def test_a_dead_letter_carries_neither_the_key_nor_the_signature(
    own_sessions: async_sessionmaker[AsyncSession],
    broker: KafkaBroker,
    dlq: AIOKafkaConsumer,
    ingestion: Ingestion,
) -> None:
    value = await command_for(own_sessions, ingestion)
    other_key = tenant_key(SECRET, "someone-else")
    headers = sign(value, other_key)

    assert await handler(own_sessions, broker, SECRET).handle(value, b"k", headers) is None

    letter = await _dead_letter(dlq, value)
    reason = dict(letter.headers)["reason"]
    assert b"not authenticated" in reason and b"does not match" in reason
    signature = dict(headers)["autoloader-signature"].split(b"=", 1)[1]
    own_key = tenant_key(SECRET, json.loads(value)["tenant"])
    for secret in (other_key.hex().encode(), own_key.hex().encode(), signature, SECRET.encode()):
        assert all(secret not in content for _, content in letter.headers)
    assert not [name for name, _ in letter.headers if name.startswith("autoloader-")]
    assert await runs_of(own_sessions, ingestion) == 0


async def _dead_letter(dlq: AIOKafkaConsumer, value: bytes) -> Any:
    found: list[Any] = []

    async def arrived() -> list[Any]:
        batches = await dlq.getmany(timeout_ms=500)
        found.extend(m for ms in batches.values() for m in ms)
        return [m for m in found if m.value == value]

    [letter] = await eventually(arrived, bool, 20, f"{value[:40]!r} not in the DLQ")
    return letter
