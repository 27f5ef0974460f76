"""S3 notifications, SeaweedFS filer events, upstream commands and backfill windows, parsed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from google.protobuf.message import DecodeError
from pydantic import ValidationError

from autoloader_discovery.backfill import Window
from autoloader_discovery.consumer import NotificationHandler
from autoloader_discovery.notifications import Subscriber, route
from autoloader_discovery.seaweedfs import to_notification
from shared.commands import RequestBackfill, TriggerIngestion, parse_command
from shared.consumers import DeadLetters
from shared.s3_events import NotAnS3Event, parse_notification
from shared.spec import BackfillSpec, IngestionSpec

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data"


def record(key: str, event: str = "ObjectCreated:Put", bucket: str = "landing") -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-22T10:00:00.000Z",
        "eventName": event,
        "s3": {
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": key, "size": 42, "eTag": '"0123abcd"', "sequencer": "0A1B"},
        },
    }


def test_an_aws_record_decodes_its_url_encoded_key() -> None:
    raw = json.dumps({"Records": [record("in/M%C3%A4rz+Bestellungen/%C3%84rger+%26+%C3%96l.json")]})
    [parsed] = parse_notification(raw)
    assert parsed.created
    assert parsed.key == "in/März Bestellungen/Ärger & Öl.json"
    assert parsed.path == "s3://landing/in/März Bestellungen/Ärger & Öl.json"
    assert parsed.etag == "0123abcd"


def test_minio_event_names_sns_envelopes_and_test_events_are_understood() -> None:
    minio = json.dumps({"Records": [record("a.json", "s3:ObjectCreated:Put")]})
    assert parse_notification(minio)[0].created
    removed = json.dumps({"Records": [record("a.json", "ObjectRemoved:Delete")]})
    assert not parse_notification(removed)[0].created
    envelope = json.dumps({"Type": "Notification", "Message": minio})
    assert parse_notification(envelope)[0].key == "a.json"
    assert parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1, 2]", b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', b"{}"],
)
def test_what_is_not_a_notification_is_refused_with_the_reason(raw: bytes) -> None:
    with pytest.raises(NotAnS3Event):
        parse_notification(raw)


def subscriber(
    path: str, pattern: str = "*.json", enabled: bool = True, claimed: tuple[str, ...] = ("",)
) -> Subscriber:
    spec = IngestionSpec.model_validate(
        {
            "name": "n",
            "source": {
                "type": "s3",
                "path": path,
                "file_pattern": pattern,
                "notifications": {"enabled": enabled},
            },
            "format": {"type": "json"},
            "destination": {"table": "t"},
        }
    )
    return Subscriber(uuid.uuid4(), uuid.uuid4(), spec, claimed)


def test_a_record_reaches_only_tenants_whose_claim_covers_its_key() -> None:
    """Tenant B's ingestion on the whole bucket, but B's operator grant covers only b/:
    an upload under a/ (tenant A's part) does not reach it."""
    owner = subscriber("s3://landing/", "*", claimed=("a/",))
    granted = subscriber("s3://landing/", "*", claimed=("b/",))
    unclaimed = subscriber("s3://landing/", "*", claimed=())
    records = parse_notification(json.dumps({"Records": [record("a/1.json"), record("b/2.json")]}))
    routed = route(records, [owner, granted, unclaimed])
    assert [o.path for o in routed[owner]] == ["s3://landing/a/1.json"]
    assert [o.path for o in routed[granted]] == ["s3://landing/b/2.json"]
    assert unclaimed not in routed


def test_records_go_to_the_ingestions_whose_bucket_prefix_and_pattern_match() -> None:
    orders, everything = subscriber("s3://landing/orders/"), subscriber("s3://landing/", "*")
    other_bucket = subscriber("s3://elsewhere/orders/")
    records = parse_notification(
        json.dumps(
            {
                "Records": [
                    record("orders/2026/a.json"),
                    record("orders/a.csv"),
                    record("orders/a.json", "ObjectRemoved:Delete"),
                    record("invoices/b.json"),
                    record("orders/2026/a.json"),  # a repeat within the message
                ]
            }
        )
    )
    routed = route(records, [orders, everything, other_bucket])
    assert [o.path for o in routed[orders]] == ["s3://landing/orders/2026/a.json"]
    assert sorted(o.path for o in routed[everything]) == [
        "s3://landing/invoices/b.json",
        "s3://landing/orders/2026/a.json",
        "s3://landing/orders/a.csv",
    ]
    assert other_bucket not in routed


def test_a_seaweedfs_filer_event_becomes_an_aws_notification() -> None:
    raw = (DATA / "seaweedfs-filer-event.bin").read_bytes()  # captured from SeaweedFS 4.48
    key = "/buckets/autoloader-landing/probe/my file é.json".encode()
    notification = to_notification(raw, key)
    assert notification is not None
    [parsed] = parse_notification(notification)
    assert (parsed.bucket, parsed.key) == ("autoloader-landing", "probe/my file é.json")
    assert (parsed.etag, parsed.s3.object.size) == ("4588ff3797b78d819d858fa3bdd82b09", 8)
    assert b"probe/my+file+%C3%A9.json" in notification


def test_filer_bytes_that_do_not_parse_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        to_notification(b"not json 1234", b"poison")


def command(**fields: object) -> dict[str, object]:
    return {
        "command_type": "TriggerIngestion",
        "tenant": "acme",
        "ingestion_id": str(uuid.uuid4()),
        "idempotency_key": "k1",
        "requested_by": "orders-pipeline",
        **fields,
    }


def test_commands_name_one_ingestion_and_carry_a_key_and_who_asked() -> None:
    assert isinstance(parse_command(command()), TriggerIngestion)
    by_name = command(ingestion_id=None, ingestion_name="orders")
    assert parse_command(by_name).ingestion_name == "orders"
    backfill = command(command_type="RequestBackfill", backfill={"since": "2026-11-01T00:00:00Z"})
    assert isinstance(parse_command(backfill), RequestBackfill)
    for bad in (
        command(ingestion_name="orders"),  # both
        command(ingestion_id=None),  # neither
        command(idempotency_key=""),
        {k: v for k, v in command().items() if k != "requested_by"},
        command(command_type="DropTable"),
        command(extra="field"),
    ):
        with pytest.raises(ValidationError):
            parse_command(bad)


def test_a_backfill_window_round_trips_through_the_run_parameters() -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    spec = BackfillSpec(since=since, reprocess=True, target_table="db.copy")
    window = Window.of(spec.model_dump(mode="json"))
    assert (window.since, window.until, window.reprocess) == (since, None, True)
    assert window.statuses == ["SUCCESS", "FAILED", "SKIPPED"]
    assert Window.of({"since": since.isoformat()}).statuses == ["FAILED"]
    with pytest.raises(ValidationError, match="in the future"):
        BackfillSpec(since=datetime.now(UTC) + timedelta(hours=1))


def test_notifications_bring_a_safety_net_listing_unless_there_is_a_schedule() -> None:
    base = subscriber("s3://landing/orders/").spec.model_dump(by_alias=True)
    assert IngestionSpec.model_validate(base).listing_cron() == ("0 */1 * * *", "UTC")
    base["source"]["notifications"]["safety_net_interval_minutes"] = 15
    assert IngestionSpec.model_validate(base).listing_cron() == ("*/15 * * * *", "UTC")
    base["schedule"] = {"frequency": "hourly"}
    with pytest.raises(ValidationError, match="safety net"):
        IngestionSpec.model_validate(base)
    # The default interval gives way to a schedule, and the stored spec says so when read back.
    stored = subscriber("s3://landing/orders/").spec.stored()
    stored["schedule"] = {"frequency": "hourly"}
    stored = IngestionSpec.model_validate(stored).stored()
    assert IngestionSpec.model_validate(stored).listing_cron() == ("0 * * * *", "UTC")


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, Any]]] = []

    async def publish(self, message: bytes, **kwargs: Any) -> None:
        self.published.append((message, kwargs))


async def test_a_notification_that_cannot_be_applied_is_dead_lettered_with_the_reason() -> None:
    def broken_sessions() -> Any:
        raise ValueError("a stored spec no longer validates")

    broker = FakeBroker()
    handler = NotificationHandler(
        sessions=cast(Any, broken_sessions),
        publish=cast(Any, None),
        dead_letters=DeadLetters(cast(Any, broker), "autoloader.s3-events", "discovery"),
        join_window=timedelta(seconds=10),
    )
    raw = json.dumps({"Records": [record("orders/a.json")]}).encode()

    assert await handler.handle(raw, b"k") == 0
    [(message, kwargs)] = broker.published
    assert message == raw and kwargs["topic"] == "autoloader.dlq"
    assert "ValueError: a stored spec no longer validates" in kwargs["headers"]["reason"]
