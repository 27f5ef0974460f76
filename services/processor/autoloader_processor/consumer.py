"""The FastStream application of the processor pool: wiring only, built from settings."""

from __future__ import annotations

import logging
import os
from typing import cast

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import TypeAdapter, ValidationError

from autoloader_processor.engine import SparkSlots
from autoloader_processor.fetching import Fetcher
from autoloader_processor.folders import FolderSizer
from autoloader_processor.pool import Processor
from autoloader_processor.settings import ProcessorSettings
from shared.consumers import DeadLetters, raw_body
from shared.crypto import CredentialCipher
from shared.db import create_engine, session_factory
from shared.events import FileFailed, FilesDiscovered
from shared.s3 import s3_client
from shared.topics import FILES

log = logging.getLogger(__name__)
FILES_DISCOVERED = TypeAdapter(FilesDiscovered)


# gRPC shares connections between channels to one address, and backs off reconnecting up to
# two minutes after an outage: a session built once Spark Connect is back would still fail for
# that long. Each session connects on its own, and retries a lost connection within seconds.
SPARK_CHANNEL = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def build_processor(settings: ProcessorSettings, dead_letters: DeadLetters) -> Processor:
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client import DefaultChannelBuilder
    from pyspark.sql.connect.client.retries import DefaultPolicy
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    def spark_session() -> SparkSession:
        # What `builder.remote()` sets, so that `pyspark.sql.functions` build Connect columns;
        # the Connect builder is used directly because only it takes channel options.
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        channel = DefaultChannelBuilder(settings.spark.remote, channelOptions=SPARK_CHANNEL)
        session = ConnectSession.builder.channelBuilder(channel).create()
        # Fail within seconds while the server is away, instead of the client's own ten
        # minutes of retries: the pool releases the batch and the sweep retries it.
        session.client.set_retry_policies([DefaultPolicy(max_retries=4, max_backoff=2000)])
        return cast(SparkSession, session)  # the Connect session behind the classic API

    async def dead_letter(event: FileFailed) -> None:
        await dead_letters.send(event.model_dump_json().encode(), event.key, event.error)

    return Processor(
        settings=settings,
        sessions=session_factory(create_engine(settings.database)),
        slots=SparkSlots(spark_session, settings.pool_size),
        dead_letter=dead_letter,
        s3=s3_client(settings.s3),
        cipher=CredentialCipher(settings.credentials.key),
        folders=FolderSizer(settings.s3, settings.folder_read_files_per_page),
        fetcher=Fetcher(settings.s3, settings.fetch_batch_bytes),
    )


def broker_factory(settings: ProcessorSettings) -> tuple[KafkaBroker, Processor]:
    # FastStream's own line per consumed message goes to DEBUG; ours says what a drain did.
    broker = KafkaBroker(
        settings.kafka.bootstrap_servers,
        logger=logging.getLogger("autoloader_processor.kafka"),
        log_level=logging.DEBUG,
    )
    dead_letters = DeadLetters(broker, FILES.name, settings.group_id)
    processor = build_processor(settings, dead_letters)

    @broker.subscriber(
        FILES.name,
        group_id=settings.group_id,
        decoder=raw_body,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        max_workers=settings.pool_size,
        max_poll_interval_ms=3_600_000,
    )
    async def on_files_discovered(body: bytes, message: KafkaMessage) -> None:
        try:
            event = FILES_DISCOVERED.validate_json(body)
        except ValidationError as error:
            key = message.raw_message.key  # type: ignore[union-attr]
            await dead_letters.send(body, key, f"unparseable file event: {error}")
            return
        done = await processor.drain(event.ingestion_id, workers=settings.pool_size)
        log.log(
            logging.INFO if done else logging.DEBUG,  # a drain that found nothing is not news
            "processed %d files",
            done,
            extra={"ingestion_id": event.ingestion_id, "run_id": event.run_id},
        )

    return broker, processor
