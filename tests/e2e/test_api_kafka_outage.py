"""Kafka stopped for two minutes: the API's liveness and readiness probes stay green, creates
and patches keep succeeding, and once Kafka is back the outbox drains onto the topic.

The test stops a component every other test uses, so it holds the stack lock exclusively
(/tmp/autoloader-stack.lock, the lock `make chaos` also takes)."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.components.kafka import Kafka
from devstack.layout import Addresses, Layout
from shared.models import OutboxEvent
from shared.settings import KafkaSettings
from shared.topics import INGESTION_EVENTS
from tests.e2e.conftest import scheduled_ingestion
from tests.integration.api.conftest import Events
from tests.kafka_tail import tail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTAGE_SECONDS = 120  # the two minutes: what a liveness probe checking Kafka failed on
PROBE_EVERY_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 5.0  # the Helm chart's timeoutSeconds
WRITE_EVERY_SECONDS = 10.0
DRAINED_WITHIN = 150  # Kafka's start, the relay's back-off (at most 30 s), then the publishing
MARKED_WITHIN = 60  # a round timed out as Kafka came back: resent and marked after its back-off


@pytest.fixture
def kafka() -> Iterator[Kafka]:
    component = Kafka(Layout.discover(), Addresses())
    if component.pid() is None:
        pytest.skip("needs the native stack (`make up`) to stop and start Kafka")
    with open("/tmp/autoloader-stack.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield component
        finally:
            component.ensure_up()
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
async def probes(running_api: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the tenant's key, as the kubelet calls."""
    async with httpx.AsyncClient(base_url=running_api, timeout=PROBE_TIMEOUT_SECONDS) as client:
        yield client


@dataclass
class Outage:
    """What the API answered while Kafka was away, and the events its writes owe the topic."""

    probes: list[tuple[float, str, int | str]] = field(default_factory=list)
    writes: list[tuple[str, int, str]] = field(default_factory=list)
    expected: dict[str, list[str]] = field(default_factory=dict)

    async def probe(self, client: httpx.AsyncClient, elapsed: float) -> None:
        for path in ("/livez", "/readyz"):
            try:
                answer: int | str = (await client.get(path)).status_code
            except httpx.HTTPError as error:
                answer = type(error).__name__
            self.probes.append((elapsed, path, answer))

    async def write(self, api: httpx.AsyncClient, number: int) -> None:
        """Odd writes create an ingestion, even ones patch the last one created."""
        if number % 2 or not self.expected:
            response = await api.post("/api/v1/ingestions", json=scheduled_ingestion())
            self.writes.append(("POST", response.status_code, response.text[:300]))
            if response.status_code == 201:
                self.expected[response.json()["id"]] = ["IngestionCreated"]
            return
        ingestion_id = list(self.expected)[-1]
        response = await api.patch(
            f"/api/v1/ingestions/{ingestion_id}",
            json={"schedule": {"frequency": "daily", "time": f"03:{number:02d}"}},
        )
        self.writes.append(("PATCH", response.status_code, response.text[:300]))
        if response.status_code == 200:
            self.expected[ingestion_id].append("IngestionUpdated")


@pytest.fixture
async def outage(api: httpx.AsyncClient) -> AsyncIterator[Outage]:
    """The outage's record; afterwards its ingestions (daily schedules) are deleted, with
    their deployments."""
    record = Outage()
    yield record
    for ingestion_id in record.expected:
        await api.delete(f"/api/v1/ingestions/{ingestion_id}")


async def during_outage(outage: Outage, api: httpx.AsyncClient, probes: httpx.AsyncClient) -> None:
    """Probe every second and write every few seconds for OUTAGE_SECONDS, on a fixed clock
    (a slow answer does not stretch the outage or thin out the probes)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    tick, next_write, number = began, began, 1
    while (elapsed := loop.time() - began) < OUTAGE_SECONDS:
        await outage.probe(probes, elapsed)
        if loop.time() >= next_write:
            await outage.write(api, number)
            next_write, number = next_write + WRITE_EVERY_SECONDS, number + 1
        tick += PROBE_EVERY_SECONDS
        await asyncio.sleep(max(0.0, tick - loop.time()))


async def unsent(engine: AsyncEngine, keys: list[str]) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(OutboxEvent.key.in_(keys), OutboxEvent.sent_at.is_(None))
        )
    return int(count or 0)


async def drained(engine: AsyncEngine, keys: list[str], within: float) -> int:
    """Unsent rows of ``keys`` once none are left or ``within`` seconds have passed.

    A round whose send timed out while Kafka came back may have delivered its events; the
    relay marks the rows on its next round, after its back-off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        left = await unsent(engine, keys)
        if not left or loop.time() >= deadline:
            return left
        await asyncio.sleep(1)


async def first_deliveries(events: Events, key: str, count: int, within: float) -> list[str]:
    """The event types of ``key`` in order of first delivery, a redelivered event id dropped
    as consumers drop it; waits until ``count`` distinct events or ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        first: dict[str, str] = {}
        for message in events.by_key.get(key.encode(), []):
            first.setdefault(message["event"]["event_id"], message["event"]["event_type"])
        remaining = deadline - loop.time()
        if len(first) >= count or remaining <= 0:
            return list(first.values())
        seen = len(events.by_key.get(key.encode(), []))
        await events.for_key(key, count=seen + 1, within=min(5.0, remaining))


async def topic_end(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of each partition of the ingestion events' topic, now."""
    consumer = await tail(bootstrap, INGESTION_EVENTS)
    try:
        return {tp: await consumer.position(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()


async def reader(bootstrap: str, offsets: dict[TopicPartition, int]) -> AIOKafkaConsumer:
    """A consumer of the topic from the offsets it had before the outage."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(list(offsets))
    for partition, offset in offsets.items():
        consumer.seek(partition, offset)
    return consumer


async def test_kafka_down_two_minutes_probes_stay_green_writes_succeed_and_the_outbox_drains(
    api: httpx.AsyncClient,
    probes: httpx.AsyncClient,
    kafka: Kafka,
    kafka_settings: KafkaSettings,
    engine: AsyncEngine,
    outage: Outage,
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    before = await topic_end(bootstrap)

    await asyncio.to_thread(kafka.stop)
    try:
        await during_outage(outage, api, probes)
        still_down = not await asyncio.to_thread(kafka.healthy)
        waiting = await unsent(engine, list(outage.expected))
    finally:
        await asyncio.to_thread(kafka.ensure_up)

    failed_probes = [probe for probe in outage.probes if probe[2] != 200]
    assert not failed_probes, f"probes not 200 while Kafka was down: {failed_probes[:10]}"
    for path in ("/livez", "/readyz"):
        count = sum(1 for probe in outage.probes if probe[1] == path)
        assert count >= OUTAGE_SECONDS / PROBE_EVERY_SECONDS - 2, f"{path} probed {count} times"
    failed_writes = [w for w in outage.writes if w[1] not in (200, 201)]
    assert not failed_writes, f"writes failed while Kafka was down: {failed_writes}"
    assert {method for method, _, _ in outage.writes} == {"POST", "PATCH"}
    assert still_down, "Kafka answered before the outage ended"
    owed = sum(len(types) for types in outage.expected.values())
    assert waiting == owed, f"{waiting} outbox rows unsent at the outage's end, {owed} written"

    consumer = await reader(bootstrap, before)
    try:
        events = Events(consumer)
        for ingestion_id, types in outage.expected.items():
            found = await first_deliveries(events, ingestion_id, len(types), DRAINED_WITHIN)
            assert found == types, ingestion_id
    finally:
        await consumer.stop()
    left = await drained(engine, list(outage.expected), within=MARKED_WITHIN)
    assert left == 0, f"{left} outbox rows still unsent {MARKED_WITHIN} s after their events landed"
