"""The outbox relay is woken by the API's own commits of outbox rows, and only by those; the
poll stays the safety net."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from autoloader_api.relay import OutboxRelay, wake_after_outbox_commits
from autoloader_api.settings import RelaySettings
from shared.events import IngestionPaused
from shared.models import OutboxEvent
from shared.uow import UnitOfWork

pytestmark = pytest.mark.unit

# The outbox table as SQLite can hold it: the model's PostgreSQL types stay out of the DDL.
OUTBOX_DDL = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, topic TEXT, key TEXT, event_type TEXT, payload JSON,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, sent_at TIMESTAMP, attempts INTEGER,
    last_error TEXT
)
"""


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(OUTBOX_DDL)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def paused() -> IngestionPaused:
    return IngestionPaused(tenant_id=uuid.uuid4(), ingestion_id=uuid.uuid4())


async def test_each_commit_that_adds_outbox_rows_wakes_the_relay_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wakes: list[None] = []
    wake_after_outbox_commits(sessions, lambda: wakes.append(None))

    async with UnitOfWork(sessions) as uow:  # the way every API write emits its event
        uow.emit(paused())
        uow.emit(paused())
        await uow.commit()
    assert len(wakes) == 1

    async with sessions() as session, session.begin():
        async with session.begin_nested():
            session.add(OutboxEvent(topic="t", key="k", event_type="e", payload={}))
        assert len(wakes) == 1  # not at the savepoint: at the commit
    assert len(wakes) == 2


async def test_rolled_back_rows_and_commits_without_outbox_rows_do_not_wake(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wakes: list[None] = []
    wake_after_outbox_commits(sessions, lambda: wakes.append(None))

    async with sessions() as session:
        session.add(OutboxEvent(topic="t", key="k", event_type="e", payload={}))
        await session.flush()  # inserted, then undone
        await session.rollback()
        await session.execute(update(OutboxEvent).values(attempts=1))
        await session.commit()
    async with UnitOfWork(sessions) as uow:  # left without a commit: rolled back on close
        uow.emit(paused())
        await uow.session.flush()
    async with sessions() as session:
        async with session.begin_nested():
            session.add(OutboxEvent(topic="t", key="k", event_type="e", payload={}))
        assert wakes == []  # a savepoint's release commits nothing yet
        await session.rollback()

    assert wakes == []


async def test_other_session_factories_are_not_affected(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wakes: list[None] = []
    other = async_sessionmaker(sessions.kw["bind"], expire_on_commit=False)
    wake_after_outbox_commits(sessions, lambda: wakes.append(None))

    async with other() as session:
        session.add(OutboxEvent(topic="t", key="k", event_type="e", payload={}))
        await session.commit()

    assert wakes == []


async def no_kafka() -> AIOKafkaProducer:
    raise AssertionError("a unit test reached for Kafka")


class CountingRelay(OutboxRelay):
    """A relay whose rounds publish nothing and are timed, instead of touching a database."""

    def __init__(self, settings: RelaySettings) -> None:
        super().__init__(async_sessionmaker(), no_kafka, settings)
        self.rounds: list[float] = []

    async def publish_batch(self) -> int:
        self.rounds.append(time.monotonic())
        return 0


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_wake_starts_a_round_at_once_instead_of_after_the_poll_interval() -> None:
    relay = CountingRelay(RelaySettings(poll_interval_seconds=60))
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    await until(lambda: len(relay.rounds) == 1)

    woken_at = time.monotonic()
    relay.wake()
    await until(lambda: len(relay.rounds) == 2)
    assert relay.rounds[1] - woken_at < 1.0

    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert len(relay.rounds) == 2


async def test_without_a_wake_the_relay_still_polls() -> None:
    relay = CountingRelay(RelaySettings(poll_interval_seconds=0.05))
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    await until(lambda: len(relay.rounds) >= 3)
    stop.set()
    await asyncio.wait_for(running, timeout=5)
