"""The discovery process's Kafka consumers: S3 event notifications, and on the local stack the
SeaweedFS filer events that become them. Both take their messages in batches, so a burst of
uploads becomes a few transactions and a few large claims rather than one of each per file;
a message that cannot be parsed or applied is dead-lettered alone, and its neighbours in the
batch are still applied. The offsets of a batch are committed once it is handled (recorded
and published), so a crash in between gives it again, and handling it again adds nothing.
Log lines: one INFO line per batch that did something, the rest DEBUG."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as StoreConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from google.protobuf.message import DecodeError
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_discovery import seaweedfs
from autoloader_discovery.notifications import record_notified, route, subscribers
from autoloader_discovery.settings import DiscoverySettings
from shared.consumers import DeadLetters, Received, batch_of, is_transient, raw_body, retrying
from shared.db import create_engine, session_factory
from shared.events import FilesDiscovered
from shared.s3 import s3_client
from shared.s3_events import NotAnS3Event, S3EventRecord, parse_notification
from shared.topics import FILES, S3_EVENTS, SEAWEEDFS_FILER

if TYPE_CHECKING:
    from faststream.kafka.subscriber.usecase import BatchSubscriber
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

NOTIFIED_FILES = Counter("autoloader_notified_files_total", "Files recorded from S3 notifications")

# How many multipart uploads of one batch of filer events have their ETag read at once; below
# botocore's pool of 10 connections per client, so no thread waits for a connection.
ETAG_LOOKUPS = 8


@dataclass
class NotificationHandler:
    """S3 event notifications, a batch at a time, to PENDING files and their events."""

    sessions: async_sessionmaker[AsyncSession]
    publish: Callable[[FilesDiscovered], Awaitable[None]]
    dead_letters: DeadLetters
    join_window: timedelta

    async def handle(self, raw: bytes, key: bytes | None) -> int:
        """Record and publish the new files of one notification (a batch of one)."""
        return await self.handle_batch([Received(raw, key)])

    async def handle_batch(self, messages: Sequence[Received]) -> int:
        """Record the new files of a batch of notifications in one transaction, publish one
        event per ingestion that got files, and return how many files were new."""
        parsed: list[tuple[Received, list[S3EventRecord]]] = []
        rejected = 0
        for message in messages:
            try:
                parsed.append((message, parse_notification(message.value)))
            except NotAnS3Event as error:
                await self._reject(message, f"unparseable S3 event notification: {error}")
                rejected += 1
        events, refused = await self._record_batch(parsed)
        await retrying(partial(self._publish, events), "publishing notified files")
        count = sum(len(event.files) for event in events)
        NOTIFIED_FILES.inc(count)
        _log_batch(len(messages), count, events, rejected + refused)
        return count

    async def _record_batch(
        self, parsed: Sequence[tuple[Received, list[S3EventRecord]]]
    ) -> tuple[list[FilesDiscovered], int]:
        """The events of the batch, recorded in one transaction; if that fails for a reason
        other than an outage, one transaction per message, so that only the message at fault
        is dead-lettered. Returns the events and how many messages were dead-lettered."""
        applicable = [(message, records) for message, records in parsed if records]
        if not applicable:
            return [], 0
        everything = [record for _, records in applicable for record in records]
        try:
            return await retrying(partial(self._record, everything), "recording notified files"), 0
        except Exception as error:
            if len(applicable) == 1:
                await self._reject(applicable[0][0], _not_applied(error))
                return [], 1
            log.warning(
                "a batch of %d notifications was not applied (%s: %s); applying them one by one",
                len(applicable),
                type(error).__name__,
                error,
            )
        events: list[FilesDiscovered] = []
        refused = 0
        for message, records in applicable:
            try:
                events += await retrying(partial(self._record, records), "recording notified files")
            except Exception as error:
                await self._reject(message, _not_applied(error))
                refused += 1
        return events, refused

    async def _record(self, records: list[S3EventRecord]) -> list[FilesDiscovered]:
        """One transaction: the new files of the records, per ingestion, and their events."""
        created = [record for record in records if record.created]
        if not created:
            return []
        events = []
        async with self.sessions() as session:
            candidates = await subscribers(session, [record.bucket for record in created])
            routed = route(created, candidates)
            # Runs are locked in one order, so two consumers' batches cannot deadlock.
            for subscriber in sorted(routed, key=lambda found: found.ingestion_id):
                objects = routed[subscriber]
                event = await record_notified(session, subscriber, objects, self.join_window)
                if event is not None:
                    events.append(event)
            await session.commit()
        return events

    async def _publish(self, events: Sequence[FilesDiscovered]) -> None:
        """All at once; a retry publishes them all again, which the processor shrugs off."""
        await asyncio.gather(*(self.publish(event) for event in events))
        for event in events:
            log.debug(
                "%d notified files published",
                len(event.files),
                extra={"ingestion_id": event.ingestion_id, "run_id": event.run_id},
            )

    async def _reject(self, message: Received, reason: str) -> None:
        send = partial(self.dead_letters.send, message.value, message.key, reason)
        await retrying(send, "dead-lettering a notification")


def _not_applied(error: Exception) -> str:
    return f"S3 event notification not applied: {type(error).__name__}: {error}"


def _log_batch(
    received: int, files: int, events: Sequence[FilesDiscovered], dead_lettered: int
) -> None:
    level = logging.INFO if files or dead_lettered else logging.DEBUG
    only = events[0] if len(events) == 1 else None
    log.log(
        level,
        "%d notifications: %d new files for %d ingestions, %d dead-lettered",
        received,
        files,
        len({event.ingestion_id for event in events}),
        dead_lettered,
        extra={"ingestion_id": only.ingestion_id, "run_id": only.run_id} if only else None,
    )


def store_unreachable(error: BaseException) -> bool:
    """Failures of an S3 request that pass when the store comes back."""
    if isinstance(error, StoreConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status >= 500 or status in (408, 429)
    return is_transient(error)


def etag_reader(client: S3Client) -> Callable[[str, str], str]:
    """head_object for the ETag of an object (blocking); '' once the object is gone."""

    def etag_of(bucket: str, key: str) -> str:
        try:
            return str(client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return ""
            raise

    return etag_of


@dataclass
class FilerBridge:
    """SeaweedFS filer events, a batch at a time, to S3 notifications on autoloader.s3-events.

    Each notification keeps its filer event's key, the object's path, so one object's writes
    stay on one partition in the order they were made (its first version is the one an
    `ignore` ingestion keeps). The ETags of multipart uploads are read from the store in
    threads, several at once, off the event loop."""

    etag_of: Callable[[str, str], str]  # blocking: runs in the bridge's threads
    republish: Callable[[Sequence[Received]], Awaitable[None]]  # in order, keys kept
    dead_letters: DeadLetters
    lookups: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(ETAG_LOOKUPS, thread_name_prefix="etag")
    )

    async def handle_batch(self, messages: Sequence[Received]) -> int:
        """Republish the batch's file writes as notifications; return how many."""
        written: list[tuple[Received, seaweedfs.FileWritten]] = []
        rejected = 0
        for message in messages:
            try:
                found = seaweedfs.file_written(message.value, message.key)
            except DecodeError as error:
                await self._reject(message, f"unparseable SeaweedFS filer event: {error}")
                rejected += 1
                continue
            if found is not None:
                written.append((message, found))
        etags = await asyncio.gather(
            *(self._etag(file) for _, file in written), return_exceptions=True
        )
        notifications = []
        for (message, file), etag in zip(written, etags, strict=True):
            if isinstance(etag, BaseException) and not isinstance(etag, Exception):
                raise etag  # cancelled: the batch is given again
            if isinstance(etag, Exception):
                reason = f"ETag of s3://{file.bucket}/{file.key} not read: {_described(etag)}"
                await self._reject(message, reason)
                rejected += 1
            elif etag:
                notifications.append(Received(seaweedfs.notification(file, etag), message.key))
            else:
                log.debug("s3://%s/%s is gone before its ETag was read", file.bucket, file.key)
        if notifications:
            await retrying(partial(self.republish, notifications), "republishing filer events")
        level = logging.INFO if notifications or rejected else logging.DEBUG
        log.log(
            level,
            "%d filer events: %d notifications, %d dead-lettered",
            len(messages),
            len(notifications),
            rejected,
        )
        return len(notifications)

    async def _etag(self, file: seaweedfs.FileWritten) -> str:
        if file.md5:
            return file.md5
        loop = asyncio.get_running_loop()

        def lookup() -> Awaitable[str]:
            return loop.run_in_executor(self.lookups, self.etag_of, file.bucket, file.key)

        return await retrying(lookup, "reading the ETag of a multipart upload", store_unreachable)

    async def _reject(self, message: Received, reason: str) -> None:
        send = partial(self.dead_letters.send, message.value, message.key, reason)
        await retrying(send, "dead-lettering a filer event")


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def broker_factory(settings: DiscoverySettings) -> KafkaBroker:
    # FastStream's own line per consumed batch goes to DEBUG, ours says what the batch did.
    broker = KafkaBroker(
        settings.kafka.bootstrap_servers,
        logger=logging.getLogger("autoloader_discovery.kafka"),
        log_level=logging.DEBUG,
    )

    async def publish(event: FilesDiscovered) -> None:
        await broker.publish(event.model_dump_json().encode(), topic=FILES.name, key=event.key)

    handler = NotificationHandler(
        sessions=session_factory(create_engine(settings.database)),
        publish=publish,
        dead_letters=DeadLetters(broker, S3_EVENTS.name, settings.group_id),
        join_window=timedelta(seconds=settings.notification_join_seconds),
    )
    subscribe_notifications(broker, settings, handler.handle_batch)
    if settings.seaweedfs_bridge:
        group = seaweedfs_group(settings)
        bridge = FilerBridge(
            etag_of=etag_reader(s3_client(settings.s3)),
            republish=partial(republish, broker),
            dead_letters=DeadLetters(broker, SEAWEEDFS_FILER.name, group),
        )
        subscribe_seaweedfs(broker, settings, bridge.handle_batch)
    return broker


Batch = Callable[[Sequence[Received]], Awaitable[Any]]


def seaweedfs_group(settings: DiscoverySettings) -> str:
    """The consumer group of the SeaweedFS bridge."""
    return f"{settings.group_id}-seaweedfs"


def _batch_subscriber(
    broker: KafkaBroker, topic: str, group: str, settings: DiscoverySettings
) -> BatchSubscriber:
    """A batch is what Kafka holds for the consumer when it asks, up to the maximum: under a
    burst the batches grow while one is handled, and a trickle comes a message at a time.
    The offsets are committed after the handler returns: the batch is recorded and
    published (an outage is retried inside the handler, which does not return meanwhile)."""
    return broker.subscriber(
        topic,
        group_id=group,
        batch=True,
        max_records=settings.notification_batch_max,
        batch_timeout_ms=settings.notification_poll_ms,
        decoder=raw_body,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )


def subscribe_notifications(
    broker: KafkaBroker, settings: DiscoverySettings, handle: Batch
) -> None:
    @_batch_subscriber(broker, S3_EVENTS.name, settings.group_id, settings)
    async def on_s3_events(bodies: list[bytes], message: KafkaMessage) -> None:
        await handle(batch_of(bodies, message))


def subscribe_seaweedfs(broker: KafkaBroker, settings: DiscoverySettings, handle: Batch) -> None:
    """Translate SeaweedFS filer events into S3 notifications on autoloader.s3-events."""

    @_batch_subscriber(broker, SEAWEEDFS_FILER.name, seaweedfs_group(settings), settings)
    async def on_filer_events(bodies: list[bytes], message: KafkaMessage) -> None:
        await handle(batch_of(bodies, message))


async def republish(broker: KafkaBroker, notifications: Sequence[Received]) -> None:
    """Send every notification, then wait for Kafka to take them all: the producer keeps the
    order of sends within a partition, so one object's notifications stay in order."""
    sent = [
        await broker.publish(item.value, topic=S3_EVENTS.name, key=item.key, no_confirm=True)
        for item in notifications
    ]
    # (FastStream's test broker delivers each at once, and hands back no future to wait on.)
    await asyncio.gather(*(delivery for delivery in sent if delivery is not None))
