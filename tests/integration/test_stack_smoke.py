"""One test per component of the stack that does real work against it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from autoloader_processor.reading import process_scheme_key, source_access
from shared.settings import KafkaSettings, PrefectSettings, S3Settings
from shared.spec import S3Credentials
from shared.topics import ALL_TOPICS
from tests.e2e.conftest import eventually

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

FLOWS = Path(__file__).resolve().parent / "flows"


async def test_postgres_row_round_trip(engine: AsyncEngine, unique: str) -> None:
    table = f"smoke_{unique}"
    async with engine.begin() as connection:
        await connection.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)"))
        await connection.execute(
            text(f"INSERT INTO {table} VALUES (:id, :note)"), {"id": 7, "note": "written"}
        )
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text(f"SELECT id, note FROM {table}"))).all()
        assert [tuple(row) for row in rows] == [(7, "written")]
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE {table}"))


async def test_kafka_has_every_topic_with_its_partitions(kafka_settings: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic.name for topic in ALL_TOPICS])
    finally:
        await admin.close()
    partitions = {item["topic"]: len(item["partitions"]) for item in described}
    assert partitions == {topic.name: topic.partitions for topic in ALL_TOPICS}


async def test_kafka_message_round_trip(kafka_settings: KafkaSettings, unique: str) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    topic = f"smoke-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"smoke-{unique}",
        auto_offset_reset="earliest",
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b'{"hello": "kafka"}', key=b"ingestion-1")
        await consumer.start()
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert (message.key, json.loads(message.value or b"")) == (
            b"ingestion-1",
            {"hello": "kafka"},
        )
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()


def test_s3_put_list_get(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="landing/a.json", Body=b'{"a": 1}\n')
    s3.put_object(Bucket=bucket, Key="landing/b.json", Body=b'{"a": 2}\n')
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="landing/")
    assert [item["Key"] for item in listed["Contents"]] == ["landing/a.json", "landing/b.json"]
    body = s3.get_object(Bucket=bucket, Key="landing/b.json")["Body"].read()
    assert json.loads(body) == {"a": 2}


def test_spark_reads_json_from_s3a(
    spark: Any, s3: S3Client, s3_settings: S3Settings, bucket: str
) -> None:
    """With the keys the read brings: the server's own keys reach the warehouse only."""
    lines = "\n".join(json.dumps({"id": i, "name": f"row-{i}"}) for i in range(5))
    s3.put_object(Bucket=bucket, Key="events/part-0.json", Body=lines.encode())
    secret = s3_settings.secret_access_key
    assert s3_settings.access_key_id and secret
    keys = S3Credentials(aws_access_key_id=s3_settings.access_key_id, aws_secret_access_key=secret)
    access = source_access(keys, process_scheme_key())
    frame = spark.read.options(**access.options).json(access.path(f"s3://{bucket}/events/"))
    rows = sorted((row["id"], row["name"]) for row in frame.collect())
    assert rows == [(i, f"row-{i}") for i in range(5)]


def test_iceberg_table_append_read_and_snapshots(spark: Any, unique: str) -> None:
    table = f"spark_catalog.default.smoke_{unique}"
    spark.sql(f"CREATE TABLE {table} (id bigint, name string) USING iceberg")
    try:
        spark.createDataFrame([(1, "a"), (2, "b")], "id bigint, name string").writeTo(
            table
        ).append()
        spark.createDataFrame([(3, "c")], "id bigint, name string").writeTo(table).append()
        rows = sorted(tuple(row) for row in spark.table(table).collect())
        assert rows == [(1, "a"), (2, "b"), (3, "c")]
        snapshots = spark.sql(f"SELECT operation FROM {table}.snapshots").collect()
        assert [row["operation"] for row in snapshots] == ["append", "append"]
        location = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").filter("col_name = 'Location'")
        assert location.collect()[0]["data_type"].startswith("s3a://warehouse/")
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")


@pytest.mark.slow
async def test_prefect_deployment_runs_on_the_worker(
    prefect_settings: PrefectSettings, unique: str
) -> None:
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments.flow_runs import arun_deployment

    deployable = await Flow.afrom_source(source=str(FLOWS), entrypoint="smoke_flow.py:smoke")
    deployment_id = await deployable.adeploy(
        name=f"smoke-{unique}",
        work_pool_name="autoloader",
        print_next_steps=False,
        ignore_warnings=True,
    )
    async with get_client() as client:
        try:
            flow_run = await arun_deployment(deployment_id, parameters={"value": 7}, timeout=180)
            assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
            # Task run states reach the server as events, after the flow run's own state.
            await eventually(
                lambda: client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                ),
                lambda runs: (
                    [(r.name.split("-")[0], r.state_name) for r in runs]
                    == [("square", "Completed")]
                ),
                30,
                "the flow run's one task run was not recorded as completed",
            )
        finally:
            await client.delete_deployment(deployment_id)
