"""Consumer lag as the consumers export it, against the stack's Kafka: end offset minus the
group's committed offset, per partition."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from shared.metrics import CONSUMER_LAG, LagReporter
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_lag_is_what_the_group_has_not_committed(kafka_settings: KafkaSettings) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        await send(bootstrap, topic, {0: 7, 1: 3})
        await commit(bootstrap, group, {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 3})

        reporter = LagReporter(bootstrap, [group])
        stop = asyncio.Event()
        stop.set()  # run() reports nothing more, and closes its clients
        await reporter.report()
        await reporter.run(stop)

        lag = {
            p: REGISTRY.get_sample_value(
                CONSUMER_LAG._name, {"group": group, "topic": topic, "partition": str(p)}
            )
            for p in (0, 1)
        }
        assert lag == {0: 2, 1: 0}
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def send(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in counts.items():
            for n in range(count):
                await producer.send_and_wait(topic, f"m{n}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()
