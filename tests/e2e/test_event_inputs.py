"""Kafka inputs through the running stack: S3 event notifications, upstream commands signed
with their tenant's key, and what each consumer does with a message it cannot parse or must
refuse."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from shared.command_signing import sign, tenant_key
from shared.settings import CommandSettings
from shared.topics import COMMANDS, DLQ, FILES, S3_EVENTS, SEAWEEDFS_FILER, Topic
from tests.e2e.conftest import _cli, deployment_of, eventually
from tests.e2e.ledger import Ledger
from tests.kafka_tail import consumed_to, tail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "autoloader-landing"


def notified_ingestion(prefix: str, table: str, enabled: bool = True) -> dict[str, Any]:
    return {
        "name": f"notified-{table}",
        "source": {
            "type": "s3",
            "path": f"s3://{BUCKET}/{prefix}/",
            "file_pattern": "*.json",
            "notifications": {"enabled": enabled, "safety_net_interval_minutes": 60},
        },
        "format": {"type": "json"},
        "destination": {"table": table},
    }


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("e2e")


@pytest.fixture
async def producer(kafka_settings: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()


def rows_in(spark: Any, table: str) -> list[Any]:
    name = f"spark_catalog.default.{table}"
    if not spark.catalog.tableExists(name):
        return []
    return list(spark.table(name).select("n", "_source_file").collect())


def aws_notification(key: str, size: int, etag: str) -> bytes:
    """An S3 event notification as AWS writes it: the key URL-encoded, '+' for a space."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T10:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "autoloader",
            "bucket": {
                "name": BUCKET,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{BUCKET}",
            },
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }
    return json.dumps({"Records": [record]}).encode()


async def test_an_upload_lands_in_iceberg_within_seconds(
    api: httpx.AsyncClient, s3: Any, spark: Any, table: str
) -> None:
    prefix = f"e2e/{table}"
    created = await api.post("/api/v1/ingestions", json=notified_ingestion(prefix, table))
    assert created.status_code == 201, created.text
    lines = "\n".join(json.dumps({"n": n}) for n in range(3))

    uploaded = time.monotonic()
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/first.json", Body=lines.encode())
    rows = await eventually(
        lambda: _async(rows_in, spark, table), lambda r: len(r) == 3, 10, "no rows"
    )
    latency = time.monotonic() - uploaded

    print(f"\nupload to rows in Iceberg, no run triggered by hand: {latency:.1f}s")
    assert sorted(row["n"] for row in rows) == [0, 1, 2]
    runs = (await api.get(f"/api/v1/ingestions/{created.json()['id']}/runs")).json()["items"]
    assert [run["trigger"] for run in runs] == ["s3_event"]


async def test_a_hand_written_notification_delivered_three_times_lands_once(
    api: httpx.AsyncClient,
    s3: Any,
    spark: Any,
    table: str,
    producer: AIOKafkaProducer,
    kafka_settings: Any,
) -> None:
    prefix = f"e2e/{table}"
    key = f"{prefix}/März Bestellungen/Ärger & Öl 2026.json"
    body = "\n".join(json.dumps({"n": n}) for n in range(4)).encode()
    # Notifications off while the store's own notification of the upload goes by, so that
    # only the hand-written one below can bring the file in.
    created = await api.post("/api/v1/ingestions", json=notified_ingestion(prefix, table, False))
    ingestion_id = created.json()["id"]
    etag = await _upload_unnoticed(s3, kafka_settings.bootstrap_servers, key, body)
    enabled = {"source": {"notifications": {"enabled": True}}}
    assert (await api.patch(f"/api/v1/ingestions/{ingestion_id}", json=enabled)).status_code == 200

    notification = aws_notification(key, len(body), etag)
    assert b"M%C3%A4rz+Bestellungen" in notification
    for _ in range(3):
        await producer.send_and_wait(S3_EVENTS.name, notification, key=key.encode())
    rows = await eventually(
        lambda: _async(rows_in, spark, table), lambda r: len(r) == 4, 30, "rows"
    )

    await _settled(api, ingestion_id)
    rows = rows_in(spark, table)
    assert sorted(row["n"] for row in rows) == [0, 1, 2, 3], "each row exactly once"
    files = (await api.get(f"/api/v1/ingestions/{ingestion_id}/files")).json()["items"]
    assert [(f["path"], f["etag"], f["status"]) for f in files] == [
        (f"s3://{BUCKET}/{key}", etag, "SUCCESS")
    ]
    runs = (await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")).json()["items"]
    assert [(r["trigger"], r["status"], r["records"]) for r in runs] == [("s3_event", "success", 4)]


async def _async(function: Any, *args: Any) -> Any:
    return function(*args)


async def _upload_unnoticed(s3: Any, bootstrap: str, key: str, body: bytes) -> str:
    """Upload, then wait until discovery has consumed the store's notification of it."""
    events = await tail(bootstrap, S3_EVENTS)
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

        async def notified() -> list[Any]:
            batches = await events.getmany(timeout_ms=500)
            return [m for ms in batches.values() for m in ms if m.key.decode().endswith(key)]

        [seen] = await eventually(notified, bool, 15, "the store sent no notification")
    finally:
        await events.stop()
    await eventually(
        lambda: _committed(bootstrap, "discovery", S3_EVENTS, seen.partition),
        lambda offset: offset > seen.offset,
        15,
        "discovery did not consume the notification",
    )
    return str(s3.head_object(Bucket=BUCKET, Key=key)["ETag"]).strip('"')


async def _committed(bootstrap: str, group: str, topic: Topic, partition: int) -> int:
    from aiokafka import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic.name, partition))
    return found.offset if found else -1


async def _settled(api: httpx.AsyncClient, ingestion_id: str) -> None:
    """Wait until no run of the ingestion is open."""
    await eventually(
        lambda: api.get(f"/api/v1/ingestions/{ingestion_id}/runs"),
        lambda r: all(
            run["status"] in ("success", "partial", "failed") for run in r.json()["items"]
        ),
        60,
        "a run stayed open",
    )


COMMANDS_GROUP = "scheduler-sync-commands"


@pytest.fixture(scope="session")
def signing_secret(stack_env: dict[str, str]) -> str:
    """The secret scheduler-sync derives tenants' keys from, as the stack gives it."""
    secret = CommandSettings().signing_secret
    if secret is None or not secret.get_secret_value():
        pytest.fail("AUTOLOADER_COMMANDS_SIGNING_SECRET is not in the stack's environment")
    return secret.get_secret_value()


def trigger_command(tenant: str, ingestion_id: str, key: str, **extra: Any) -> bytes:
    command = {
        "command_type": "TriggerIngestion",
        "tenant": tenant,
        "ingestion_id": ingestion_id,
        "idempotency_key": key,
        "requested_by": "orders-pipeline",
        **extra,
    }
    return json.dumps(command).encode()


async def test_a_signed_trigger_command_gives_one_upstream_run_per_idempotency_key(
    api: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    kafka_settings: Any,
    tenant_name: str,
    signing_secret: str,
) -> None:
    created = await api.post("/api/v1/ingestions", json=_local_ingestion())
    ingestion_id = created.json()["id"]
    key = ingestion_id.encode()
    tenant_signing_key = tenant_key(signing_secret, tenant_name).hex()  # as the CLI prints it

    for _ in range(2):  # two commands, each with its own command id, one idempotency key
        command = trigger_command(tenant_name, ingestion_id, "nightly-2026-11-22")
        headers = sign(command, tenant_signing_key)
        await producer.send_and_wait(COMMANDS.name, command, key=key, headers=headers)
    # The very same signed message again, as a replay within the window would bring it.
    await producer.send_and_wait(COMMANDS.name, command, key=key, headers=headers)
    by_name = json.loads(trigger_command(tenant_name, ingestion_id, "by-name"))
    del by_name["ingestion_id"]
    by_name["ingestion_name"] = created.json()["name"]
    named = json.dumps(by_name).encode()
    sent = await producer.send_and_wait(
        COMMANDS.name, named, key=key, headers=sign(named, tenant_signing_key)
    )

    await eventually(
        lambda: api.get(f"/api/v1/ingestions/{ingestion_id}/runs"),
        lambda r: (
            len(r.json()["items"]) == 2
            and all(run["status"] == "success" for run in r.json()["items"])
        ),
        90,
        "two upstream runs did not both succeed",
    )
    await _consumed(kafka_settings.bootstrap_servers, sent.partition, sent.offset)
    items = (await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")).json()["items"]
    assert len(items) == 2, "four signed commands with two idempotency keys gave two runs"
    assert {run["trigger"] for run in items} == {"upstream"}
    assert {run["requested_by"] for run in items} == {"upstream:orders-pipeline"}
    assert all(run["prefect_flow_run_id"] for run in items)


# How tenant A (the attacker) or a stranger might try to run tenant B's ingestion, and the
# words of the dead letter's reason that say why it was refused.
REFUSALS = {
    "unsigned": b"unsigned: no autoloader-signature header",
    "signed with a random key": b"does not match",
    "naming B, signed with A's key": b"does not match",
    "naming A and B's ingestion, signed with A's key": b"refused: tenant",
    "expired": b"outside the 900s window",
    "tampered after signing": b"does not match",
}


@pytest.mark.parametrize("attempt", list(REFUSALS))
async def test_a_command_not_signed_by_the_ingestions_tenant_is_dead_lettered_and_runs_nothing(
    attempt: str,
    api: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    kafka_settings: Any,
    prefect: PrefectClient,
    tenant_name: str,
    signing_secret: str,
) -> None:
    created = await api.post("/api/v1/ingestions", json=_local_ingestion())
    assert created.status_code == 201, created.text
    ingestion_id = created.json()["id"]
    attacker = f"e2e-a-{uuid.uuid4().hex[:8]}"
    _cli("autoloader-api", "keys", "create", "--tenant", attacker)  # tenant A exists too
    value, headers = _attempt(attempt, tenant_name, attacker, ingestion_id, signing_secret)
    dlq = await tail(kafka_settings.bootstrap_servers, DLQ)
    try:
        sent = await producer.send_and_wait(
            COMMANDS.name, value, key=ingestion_id.encode(), headers=headers
        )
        (letter,) = await _dead_letters(dlq, [value])
    finally:
        await dlq.stop()
    await _consumed(kafka_settings.bootstrap_servers, sent.partition, sent.offset)

    reason = dict(letter.headers)["reason"]
    assert REFUSALS[attempt] in reason, reason
    for secret in (signing_secret, tenant_key(signing_secret, attacker).hex()):
        assert secret.encode() not in reason
    runs = (await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")).json()
    assert runs["total"] == 0, runs
    deployment = await deployment_of(prefect, ingestion_id)
    if deployment is not None:  # its deployment may not be made yet; then it has no flow run
        flow_runs = await prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
        assert flow_runs == []


def _attempt(
    attempt: str, owner: str, attacker: str, ingestion_id: str, secret: str
) -> tuple[bytes, list[tuple[str, bytes]]]:
    marker = f"attempt-{uuid.uuid4().hex}"
    value = trigger_command(owner, ingestion_id, marker)
    owners_key, attackers_key = tenant_key(secret, owner), tenant_key(secret, attacker)
    if attempt == "unsigned":
        return value, []
    if attempt == "signed with a random key":
        return value, sign(value, uuid.uuid4().bytes)
    if attempt == "naming B, signed with A's key":
        return value, sign(value, attackers_key)
    if attempt == "naming A and B's ingestion, signed with A's key":
        own = trigger_command(attacker, ingestion_id, marker)
        return own, sign(own, attackers_key)
    if attempt == "expired":
        return value, sign(value, owners_key, timestamp=int(time.time()) - 16 * 60)
    assert attempt == "tampered after signing"
    headers = sign(value, owners_key)
    backfill = json.loads(value) | {
        "command_type": "RequestBackfill",
        "backfill": {"since": "2026-01-01T00:00:00Z", "reprocess": True},
    }
    return json.dumps(backfill).encode(), headers


async def _consumed(bootstrap: str, partition: int, offset: int) -> None:
    """Wait until scheduler-sync's command consumer has committed past the message."""
    ends = {TopicPartition(COMMANDS.name, partition): offset + 1}
    await eventually(
        lambda: consumed_to(COMMANDS_GROUP, ends, bootstrap),
        bool,
        30,
        f"{COMMANDS_GROUP} did not commit past the command",
    )


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        (S3_EVENTS, b"unparseable S3 event notification"),
        (COMMANDS, b"invalid command"),
        (FILES, b"unparseable file event"),
        (SEAWEEDFS_FILER, b"unparseable SeaweedFS filer event"),
    ],
    ids=lambda value: value.name if isinstance(value, Topic) else None,
)
async def test_a_malformed_message_goes_to_the_dlq_and_the_consumer_keeps_going(
    topic: Topic, reason: bytes, producer: AIOKafkaProducer, kafka_settings: Any
) -> None:
    dlq = await tail(kafka_settings.bootstrap_servers, DLQ)
    first, second = (f"not json {uuid.uuid4().hex}".encode() for _ in range(2))
    try:
        # Same key, so the same partition: the second is handled only after the first.
        await producer.send_and_wait(topic.name, first, key=b"poison")
        await producer.send_and_wait(topic.name, second, key=b"poison")
        letters = await _dead_letters(dlq, [first, second])
    finally:
        await dlq.stop()
    for letter in letters:
        headers = dict(letter.headers)
        assert reason in headers["reason"], headers["reason"]
        assert headers["source_topic"] == topic.name.encode()
        assert letter.key == b"poison"


async def _dead_letters(dlq: AIOKafkaConsumer, values: list[bytes]) -> list[Any]:
    """The dead letters of these values, in the order given. One fetch may bring several, so
    every letter fetched is kept until all are found."""
    fetched: list[Any] = []

    async def arrived() -> dict[bytes, list[Any]]:
        batches = await dlq.getmany(timeout_ms=500)
        fetched.extend(m for ms in batches.values() for m in ms)
        return {value: [m for m in fetched if m.value == value] for value in values}

    found = await eventually(
        arrived,
        lambda found: all(len(letters) == 1 for letters in found.values()),
        20,
        f"{values!r} not each once in the DLQ",
    )
    return [found[value][0] for value in values]


def _local_ingestion() -> dict[str, Any]:
    return {
        "name": f"commanded-{uuid.uuid4().hex[:8]}",
        "source": {
            "type": "local",
            "path": "file:///tmp/autoloader-e2e/empty",
            "file_pattern": "*",
        },
        "format": {"type": "json"},
        "destination": {"table": "e2e_commanded"},
    }
