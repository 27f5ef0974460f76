"""The AsyncAPI document of Autoloader's Kafka interface, generated from the event schemas.

`make asyncapi` writes it to docs/asyncapi.yaml with `faststream docs gen`.
"""

from __future__ import annotations

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.events import IngestionEvent
from shared.topics import INGESTION_EVENTS


def asyncapi() -> FastStream:
    # The address of the local stack, for the document only: it must not vary by environment.
    broker = KafkaBroker("127.0.0.1:9092")
    broker.publisher(
        INGESTION_EVENTS.name,
        title=INGESTION_EVENTS.name,
        description=INGESTION_EVENTS.description,
        schema=IngestionEvent,
    )
    specification = AsyncAPI(
        title="Autoloader events",
        version="0.1.0",
        description="Kafka topics Autoloader's services publish and consume.",
    )
    return FastStream(broker, specification=specification)
