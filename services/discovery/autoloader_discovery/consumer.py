"""The discovery process's Kafka consumers: S3 event notifications, and on the local stack the
SeaweedFS filer events that become them. Wiring only, built from settings."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from botocore.exceptions import ClientError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery import seaweedfs
from autoloader_discovery.notifications import record_notified, route, subscribers
from autoloader_discovery.settings import DiscoverySettings
from shared.consumers import DeadLetters, raw_body, retrying
from shared.db import create_engine, session_factory
from shared.events import FilesDiscovered
from shared.s3 import s3_client
from shared.s3_events import NotAnS3Event, S3EventRecord, parse_notification
from shared.topics import FILES, S3_EVENTS, SEAWEEDFS_FILER

log = logging.getLogger(__name__)

NOTIFIED_FILES = Counter("autoloader_notified_files_total", "Files recorded from S3 notifications")


@dataclass
class NotificationHandler:
    sessions: async_sessionmaker[AsyncSession]
    publish: Callable[[FilesDiscovered], Awaitable[None]]
    dead_letters: DeadLetters
    join_window: timedelta

    async def handle(self, raw: bytes, key: bytes | None) -> int:
        """Record and publish the new files of one notification; return how many."""
        try:
            records = parse_notification(raw)
        except NotAnS3Event as error:
            await self.dead_letters.send(raw, key, f"unparseable S3 event notification: {error}")
            return 0
        try:
            events = await retrying(lambda: self._record(records), "recording notified files")
        except Exception as error:
            reason = f"S3 event notification not applied: {type(error).__name__}: {error}"
            await self.dead_letters.send(raw, key, reason)
            return 0
        for event in events:
            await retrying(partial(self.publish, event), "publishing notified files")
            log.info(
                "%d notified files",
                len(event.files),
                extra={"ingestion_id": event.ingestion_id, "run_id": event.run_id},
            )
        count = sum(len(event.files) for event in events)
        NOTIFIED_FILES.inc(count)
        return count

    async def _record(self, records: list[S3EventRecord]) -> list[FilesDiscovered]:
        created = [record for record in records if record.created]
        if not created:
            return []
        events = []
        async with self.sessions() as session:
            candidates = await subscribers(session, [record.bucket for record in created])
            for subscriber, objects in route(created, candidates).items():
                event = await record_notified(session, subscriber, objects, self.join_window)
                if event is not None:
                    events.append(event)
        return events


def broker_factory(settings: DiscoverySettings) -> KafkaBroker:
    broker = KafkaBroker(settings.kafka.bootstrap_servers)

    async def publish(event: FilesDiscovered) -> None:
        await broker.publish(event.model_dump_json().encode(), topic=FILES.name, key=event.key)

    handler = NotificationHandler(
        sessions=session_factory(create_engine(settings.database)),
        publish=publish,
        dead_letters=DeadLetters(broker, S3_EVENTS.name, settings.group_id),
        join_window=timedelta(seconds=settings.notification_join_seconds),
    )

    @broker.subscriber(
        S3_EVENTS.name,
        group_id=settings.group_id,
        decoder=raw_body,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def on_s3_event(body: bytes, message: KafkaMessage) -> None:
        await handler.handle(body, message.raw_message.key)  # type: ignore[union-attr]

    if settings.seaweedfs_bridge:
        _subscribe_seaweedfs(broker, settings)
    return broker


def _subscribe_seaweedfs(broker: KafkaBroker, settings: DiscoverySettings) -> None:
    """Translate SeaweedFS filer events into S3 notifications on autoloader.s3-events."""
    dead_letters = DeadLetters(broker, SEAWEEDFS_FILER.name, f"{settings.group_id}-seaweedfs")
    client = s3_client(settings.s3)

    def etag_of(bucket: str, key: str) -> str:
        """The object's ETag; '' once it is gone (the notification is then dropped)."""
        try:
            return str(client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except ClientError:
            return ""

    @broker.subscriber(
        SEAWEEDFS_FILER.name,
        group_id=f"{settings.group_id}-seaweedfs",
        decoder=raw_body,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def on_filer_event(body: bytes, message: KafkaMessage) -> None:
        key = message.raw_message.key  # type: ignore[union-attr]
        try:
            notification = seaweedfs.to_notification(body, key, etag_of)
        except DecodeError as error:
            await dead_letters.send(body, key, f"unparseable SeaweedFS filer event: {error}")
            return
        if notification is not None:  # keyed by the object's path, so its writes stay in order
            await broker.publish(notification, topic=S3_EVENTS.name, key=key)
