"""The AsyncAPI document of Autoloader's Kafka interface, generated from the event schemas.

`make asyncapi` writes it to docs/asyncapi.yaml with `faststream docs gen`.
"""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.commands import UpstreamCommand
from shared.events import FilesDiscovered, IngestionEvent, RunCompleted
from shared.s3_events import S3EventNotification
from shared.topics import COMMANDS, FILES, INGESTION_EVENTS, RUN_EVENTS, S3_EVENTS


async def upstream_command(body: UpstreamCommand) -> None:
    """TriggerIngestion or RequestBackfill; see the README for an example."""


async def s3_event_notification(body: S3EventNotification) -> None:
    """AWS's record format; an SNS envelope of it and s3:TestEvent are accepted too."""


def asyncapi() -> FastStream:
    # The address of the local stack, for the document only: it must not vary by environment.
    broker = KafkaBroker("127.0.0.1:9092")
    broker.publisher(
        INGESTION_EVENTS.name,
        title=INGESTION_EVENTS.name,
        description=INGESTION_EVENTS.description,
        schema=IngestionEvent,
    )
    for topic, schema in ((FILES, FilesDiscovered), (RUN_EVENTS, RunCompleted)):
        broker.publisher(topic.name, title=topic.name, description=topic.description, schema=schema)
    for topic, handler in ((COMMANDS, upstream_command), (S3_EVENTS, s3_event_notification)):
        broker.subscriber(topic.name, title=topic.name, description=topic.description)(handler)
    specification = AsyncAPI(
        title="Autoloader events",
        version="0.1.0",
        description="Kafka topics Autoloader's services publish and consume.",
    )
    return FastStream(broker, specification=specification)
