"""Reading a topic from its end at the moment a test starts."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.topics import Topic


async def tail(bootstrap_servers: str, topic: Topic) -> AIOKafkaConsumer:
    """A started consumer of every partition of ``topic``, positioned at its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:  # resolve the end offsets now, before the test publishes
        await consumer.position(partition)
    return consumer
