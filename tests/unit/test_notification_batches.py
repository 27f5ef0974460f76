"""The notification consumers take Kafka messages in batches: one transaction and one event per
ingestion for a batch of S3 notifications, a bad message dead-lettered alone, repeats recorded
once, and the SeaweedFS bridge reading the ETags of multipart uploads in threads, at once.
The database is faked here; tests/integration/discovery runs the same handler on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError
from faststream.kafka import KafkaBroker, KafkaResponse, TestKafkaBroker

from autoloader_discovery import consumer, seaweedfs
from autoloader_discovery.consumer import FilerBridge, NotificationHandler
from autoloader_discovery.listing import ListedObject
from autoloader_discovery.notifications import Subscriber, route
from autoloader_discovery.settings import DiscoverySettings
from shared.consumers import DeadLetters, Received
from shared.crypto import new_key
from shared.events import DiscoveredFile, FilesDiscovered
from shared.s3_events import parse_notification
from shared.spec import IngestionSpec
from shared.topics import S3_EVENTS, SEAWEEDFS_FILER

pytestmark = pytest.mark.unit

BUCKET = "landing"


def subscriber(prefix: str, overwrite_policy: str = "ignore") -> Subscriber:
    spec = IngestionSpec.model_validate(
        {
            "name": prefix.strip("/"),
            "source": {
                "type": "s3",
                "path": f"s3://{BUCKET}/{prefix}",
                "file_pattern": "*.json",
                "notifications": {"enabled": True},
            },
            "format": {"type": "json"},
            "destination": {"table": "t"},
            "overwrite_policy": overwrite_policy,
        }
    )
    return Subscriber(uuid.uuid4(), uuid.uuid4(), spec, ("",))


def notification(*keys: str, etag: str = "0123abcd", event: str = "ObjectCreated:Put") -> bytes:
    records = [
        {
            "eventName": event,
            "eventTime": "2026-11-22T10:00:00.000Z",
            "s3": {
                "bucket": {"name": BUCKET},
                "object": {"key": key, "size": 42, "eTag": f'"{etag}"'},
            },
        }
        for key in keys
    ]
    return json.dumps({"Records": records}).encode()


class Database:
    """File state and transactions, faked: what a committed transaction recorded is known,
    what a rolled back one recorded is not. An object whose key holds `refused` cannot be
    recorded (as a key PostgreSQL cannot store)."""

    def __init__(self, *found: Subscriber, refused: str = "\x00") -> None:
        self.found = found
        self.refused = refused
        self.known: set[tuple[uuid.UUID, str, str]] = set()
        self.transactions: list[str] = []  # "commit" or "rollback", in order
        self.next_id = 1

    def session(self) -> Transaction:
        return Transaction(self)

    async def subscribers(self, session: Transaction, buckets: Sequence[str]) -> list[Subscriber]:
        return [found for found in self.found if found.spec.source.bucket in buckets]

    async def record_notified(
        self,
        session: Transaction,
        found: Subscriber,
        objects: Sequence[ListedObject],
        join_window: timedelta,
    ) -> FilesDiscovered | None:
        if any(self.refused in listed.path for listed in objects):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        new = []
        for listed in objects:
            version = (found.ingestion_id, listed.path, listed.etag)
            if version not in self.known and version not in session.recorded:
                session.recorded.add(version)
                new.append(
                    DiscoveredFile(
                        file_id=self.next_id, path=listed.path, etag=listed.etag, size=listed.size
                    )
                )
                self.next_id += 1
        if not new:
            return None
        return FilesDiscovered(
            tenant_id=found.tenant_id,
            ingestion_id=found.ingestion_id,
            run_id=uuid.uuid4(),
            files=new,
        )


class Transaction:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.recorded: set[tuple[uuid.UUID, str, str]] = set()
        self.committed = False

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.database.transactions.append("rollback")

    async def commit(self) -> None:
        self.database.known |= self.recorded
        self.database.transactions.append("commit")
        self.committed = True


class Broker:
    """What the dead letters are sent to."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, Any]]] = []

    async def publish(self, message: bytes, **kwargs: Any) -> None:
        self.sent.append((message, kwargs))


class Notified:
    """A NotificationHandler on the fake database, with what it published and dead-lettered."""

    def __init__(self, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(consumer, "subscribers", database.subscribers)
        monkeypatch.setattr(consumer, "record_notified", database.record_notified)
        self.published: list[FilesDiscovered] = []
        self.refusals = Broker()
        self.handler = NotificationHandler(
            sessions=cast(Any, database.session),
            publish=self.publish,
            dead_letters=DeadLetters(cast(Any, self.refusals), S3_EVENTS.name, "discovery"),
            join_window=timedelta(seconds=10),
        )

    async def publish(self, event: FilesDiscovered) -> None:
        self.published.append(event)

    def files(self) -> dict[uuid.UUID, list[str]]:
        """The file names published, per ingestion."""
        names: dict[uuid.UUID, list[str]] = {}
        for event in self.published:
            names.setdefault(event.ingestion_id, []).extend(
                file.path.rsplit("/", 1)[-1] for file in event.files
            )
        return names

    def dead_letters(self) -> list[tuple[bytes, bytes | None, str]]:
        return [(raw, sent["key"], sent["headers"]["reason"]) for raw, sent in self.refusals.sent]


async def test_a_batch_is_one_transaction_and_one_event_per_ingestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orders, invoices = subscriber("orders/"), subscriber("invoices/")
    database = Database(orders, invoices)
    notified = Notified(database, monkeypatch)
    batch = [
        Received(notification("orders/1.json"), b"orders/1.json"),
        Received(notification("invoices/1.json"), b"invoices/1.json"),
        Received(notification("orders/2.json", "orders/3.json"), b"orders/2.json"),
        Received(notification("invoices/2.json", event="ObjectRemoved:Delete"), b"x"),
        Received(json.dumps({"Event": "s3:TestEvent"}).encode(), None),
    ]

    assert await notified.handler.handle_batch(batch) == 4

    assert database.transactions == ["commit"]
    assert notified.files() == {
        orders.ingestion_id: ["1.json", "2.json", "3.json"],
        invoices.ingestion_id: ["1.json"],
    }
    assert len(notified.published) == 2
    assert notified.dead_letters() == []


async def test_an_unparseable_message_in_the_middle_is_dead_lettered_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orders = subscriber("orders/")
    database = Database(orders)
    notified = Notified(database, monkeypatch)
    poison = b"not json 1234"
    batch = [
        Received(notification("orders/1.json"), b"a"),
        Received(poison, b"poison"),
        Received(notification("orders/2.json"), b"b"),
    ]

    assert await notified.handler.handle_batch(batch) == 2

    [(raw, key, reason)] = notified.dead_letters()
    assert (raw, key) == (poison, b"poison")
    assert reason.startswith("unparseable S3 event notification")
    assert notified.files() == {orders.ingestion_id: ["1.json", "2.json"]}
    assert database.transactions == ["commit"]


async def test_a_message_that_cannot_be_applied_is_dead_lettered_alone_and_its_neighbours_land(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orders = subscriber("orders/")
    database = Database(orders, refused="bad")
    notified = Notified(database, monkeypatch)
    refused = notification("orders/bad.json")
    batch = [
        Received(notification("orders/1.json"), b"a"),
        Received(refused, b"orders/bad.json"),
        Received(notification("orders/2.json"), b"b"),
    ]

    assert await notified.handler.handle_batch(batch) == 2

    [(raw, key, reason)] = notified.dead_letters()
    assert (raw, key) == (refused, b"orders/bad.json")
    assert reason == (
        "S3 event notification not applied: ValueError: "
        "invalid byte sequence for encoding UTF8: 0x00"
    )
    assert notified.files() == {orders.ingestion_id: ["1.json", "2.json"]}
    # The batch's transaction rolled back; then each message alone, the refused one rolled back.
    assert database.transactions == ["rollback", "commit", "rollback", "commit"]


async def test_repeats_within_a_batch_and_a_batch_delivered_twice_land_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orders = subscriber("orders/")
    database = Database(orders)
    notified = Notified(database, monkeypatch)
    batch = [
        Received(notification("orders/1.json"), b"orders/1.json"),
        Received(notification("orders/1.json"), b"orders/1.json"),
        Received(notification("orders/2.json"), b"orders/2.json"),
    ]

    first = await notified.handler.handle_batch(batch)
    again = await notified.handler.handle_batch(batch)  # redelivered after a crash

    assert (first, again) == (2, 0)
    assert notified.files() == {orders.ingestion_id: ["1.json", "2.json"]}
    assert len(notified.published) == 1, "nothing new, nothing published"


async def test_a_batch_of_one_bad_message_is_dead_lettered_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = Database(subscriber("orders/"), refused="bad")
    notified = Notified(database, monkeypatch)

    assert await notified.handler.handle(notification("orders/bad.json"), b"k") == 0

    [(_, key, reason)] = notified.dead_letters()
    assert key == b"k" and "ValueError" in reason
    assert notified.published == []


def test_an_overwrite_within_a_batch_keeps_the_first_version_unless_reingested() -> None:
    ignore, reingest = subscriber("orders/"), subscriber("orders/", "reingest")
    records = [
        *parse_notification(notification("orders/a.json", etag="first")),
        *parse_notification(notification("orders/a.json", etag="second")),
        *parse_notification(notification("orders/a.json", etag="first")),
    ]

    routed = route(records, [ignore, reingest])

    assert [listed.etag for listed in routed[ignore]] == ["first"]
    assert [listed.etag for listed in routed[reingest]] == ["first", "second"]


# ---------------------------------------------------------------- the SeaweedFS bridge


def filer_event(path: str, md5: bytes = b"", directory: bool = False) -> Received:
    """A filer event of a file (or directory) written at `path`, keyed by the path as the
    filer keys it; without md5 it is a multipart upload."""
    event = seaweedfs._event_notification_class()()
    parent, name = path.rsplit("/", 1)
    event.new_parent_path = parent
    event.new_entry.name = name
    event.new_entry.is_directory = directory
    event.new_entry.attributes.file_size = 8
    event.new_entry.attributes.mtime = 1_795_000_000
    if md5:
        event.new_entry.attributes.md5 = md5
    return Received(event.SerializeToString(), path.encode())


class Store:
    """head_object, blocking as boto3's is, slowly."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def etag_of(self, bucket: str, key: str) -> str:
        time.sleep(self.seconds)
        if key.startswith("gone"):
            return ""
        if key.startswith("denied"):
            denied: Any = {"Error": {"Code": "403"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            raise ClientError(denied, "HeadObject")
        return f"multipart-{key}"


async def test_the_bridge_reads_etags_in_threads_at_once_and_dead_letters_alone() -> None:
    republished: list[Received] = []

    async def republish(notifications: Sequence[Received]) -> None:
        republished.extend(notifications)

    refusals = Broker()
    bridge = FilerBridge(
        etag_of=Store(seconds=0.4).etag_of,
        republish=republish,
        dead_letters=DeadLetters(cast(Any, refusals), SEAWEEDFS_FILER.name, "discovery-seaweedfs"),
    )
    batch = [
        filer_event(
            "/buckets/landing/in/one.json", md5=bytes.fromhex("4588ff3797b78d819d858fa3bdd82b09")
        ),
        filer_event("/buckets/landing/in/big-1.json"),
        Received(b"not a filer event", b"poison"),
        filer_event("/buckets/landing/in", directory=True),
        filer_event("/buckets/landing/denied.json"),
        filer_event("/buckets/landing/big-2.json"),
        filer_event("/buckets/landing/gone.json"),
        filer_event("/elsewhere/file.json", md5=b"\x01"),
    ]
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(ticking())
    began = time.monotonic()
    try:
        assert await bridge.handle_batch(batch) == 3
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - began

    assert elapsed < 1.2, f"four lookups of 0.4 s took {elapsed:.2f} s: not at once"
    assert ticks >= 10, "the event loop was blocked while the ETags were read"
    assert [item.key for item in republished] == [
        b"/buckets/landing/in/one.json",
        b"/buckets/landing/in/big-1.json",
        b"/buckets/landing/big-2.json",
    ], "in the order of the batch, each under its object's path"
    etags = [parse_notification(item.value)[0].etag for item in republished]
    assert etags == [
        "4588ff3797b78d819d858fa3bdd82b09",
        "multipart-in/big-1.json",
        "multipart-big-2.json",
    ]
    reasons = {sent["key"]: sent["headers"]["reason"] for _, sent in refusals.sent}
    assert set(reasons) == {b"poison", b"/buckets/landing/denied.json"}
    assert reasons[b"poison"].startswith("unparseable SeaweedFS filer event")
    assert "ClientError" in reasons[b"/buckets/landing/denied.json"]


# ---------------------------------------------------------------- wiring, on the test broker


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> DiscoverySettings:
    monkeypatch.setenv("AUTOLOADER_CREDENTIALS_KEY", new_key())
    return DiscoverySettings()


async def test_filer_events_reach_the_notification_consumer_as_batches_keyed_by_path(
    settings: DiscoverySettings,
) -> None:
    broker = KafkaBroker()
    batches: list[list[Received]] = []

    async def handle(messages: Sequence[Received]) -> None:
        batches.append(list(messages))

    bridge = FilerBridge(
        etag_of=Store(seconds=0).etag_of,
        republish=lambda notifications: consumer.republish(broker, notifications),
        dead_letters=DeadLetters(broker, SEAWEEDFS_FILER.name, "discovery-seaweedfs"),
    )
    consumer.subscribe_notifications(broker, settings, handle)
    consumer.subscribe_seaweedfs(broker, settings, bridge.handle_batch)
    written = [filer_event("/buckets/landing/a.json"), filer_event("/buckets/landing/b.json")]

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish_batch(
            *(KafkaResponse(item.value, key=item.key) for item in written),
            topic=SEAWEEDFS_FILER.name,
        )
        await test_broker.publish_batch(
            KafkaResponse(notification("x.json"), key=b"k1"),
            KafkaResponse(b"not json", key=b"k2"),
            topic=S3_EVENTS.name,
        )

    # The test broker hands each republished notification on at once: two batches of one.
    assert [[item.key for item in batch] for batch in batches] == [
        [b"/buckets/landing/a.json"],
        [b"/buckets/landing/b.json"],
        [b"k1", b"k2"],
    ]
    assert batches[2][1].value == b"not json"
