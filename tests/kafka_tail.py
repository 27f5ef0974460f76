"""Reading a topic from its end at the moment a test starts, and telling when a consumer group
has got past given messages."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.topics import ALL_TOPICS, SEAWEEDFS_FILER, Topic


async def tail(bootstrap_servers: str, topic: Topic) -> AIOKafkaConsumer:
    """A started consumer of every partition of ``topic``, positioned at its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(partitions)
    # The end offsets read now, before the test publishes, and sought explicitly: nothing the
    # test causes can fall before the consumer's position.
    for partition, end in (await consumer.end_offsets(partitions)).items():
        consumer.seek(partition, end)
    return consumer


async def consumed_to(group: str, ends: dict[TopicPartition, int], bootstrap: str) -> bool:
    """Whether the group's committed offsets have reached `ends`: it got past those messages."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {tp: meta.offset for tp, meta in committed.items()}
    return all(done.get(tp, 0) >= end for tp, end in ends.items())  # an empty partition: 0


async def end_offsets(topic: str, bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of the topic (as shared/topics.py declares them);
    never empty, so a wait for a group to reach them always proves something."""
    declared = next(t for t in (*ALL_TOPICS, SEAWEEDFS_FILER) if t.name == topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(declared.partitions)]
        ends = dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()
    assert ends and len(ends) == declared.partitions, f"no end offsets for {topic}: {ends}"
    return ends
