"""No credential a full run used shows up anywhere the run leaves traces: neither the secret
key and session token the ingestion was given, nor the service's credentials key and S3 secret.

An ingestion reads its source with credentials of its own; the run goes to the end; then every
place the run wrote to is searched for the secret values: the stack's log files, Prefect's
home (its local result storage), Prefect's flow runs, task runs and logs of the run, every
table of every PostgreSQL database of the stack (the service's, Prefect's and the Iceberg
catalog's), and every `autoloader.*` Kafka topic from its beginning. Each search must also find
the ingestion's id where the run surely wrote it, so a search that reads nothing fails too.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.components.seaweedfs import SOURCE_READER_ROLE
from shared.settings import DatabaseSettings, KafkaSettings
from tests.e2e.conftest import ROOT, deployment_of, eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files, run_and_wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LOGS = ROOT / ".local" / "logs"
PREFECT_HOME = Path(os.environ.get("PREFECT_HOME", ROOT / ".local" / "data" / "prefect"))
FINAL_FLOW_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Credentials:
    """What the ingestion is given, and which of its values must never be seen again."""

    given: dict[str, str]
    hunted: dict[str, str]  # name -> value


def fresh_credentials(stack_env: dict[str, str]) -> Credentials:
    """Temporary credentials from the store's STS, as an AWS user would bring them: a key, a
    secret and a session token no earlier run can have used. Both secret values are hunted;
    the key id is not a secret."""
    sts = boto3.client(
        "sts",
        endpoint_url=stack_env["AUTOLOADER_S3_ENDPOINT_URL"],
        aws_access_key_id=stack_env["AUTOLOADER_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=stack_env["AUTOLOADER_S3_SECRET_ACCESS_KEY"],
        region_name=stack_env["AUTOLOADER_S3_REGION"],
    )
    minted = sts.assume_role(
        RoleArn=SOURCE_READER_ROLE,
        RoleSessionName=f"leak-hunt-{uuid.uuid4().hex[:8]}",
        DurationSeconds=3600,
    )["Credentials"]
    given = {
        "aws_access_key_id": minted["AccessKeyId"],
        "aws_secret_access_key": minted["SecretAccessKey"],
        "aws_session_token": minted["SessionToken"],
        "aws_region": stack_env["AUTOLOADER_S3_REGION"],
    }
    hunted = {name: given[name] for name in ("aws_secret_access_key", "aws_session_token")}
    return Credentials(given, hunted)


def service_secrets(stack_env: dict[str, str]) -> dict[str, str]:
    """The service's own secrets the run used: the key that decrypts source credentials, and
    the S3 secret key the warehouse is written with."""
    names = {
        "AUTOLOADER_CREDENTIALS_KEY": "the credentials key",
        "AUTOLOADER_S3_SECRET_ACCESS_KEY": "the service's S3 secret key",
    }
    return {label: stack_env[name] for name, label in names.items() if stack_env.get(name)}


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("e2e")


async def test_no_credential_of_a_full_run_is_in_logs_prefect_databases_or_kafka(
    api: httpx.AsyncClient,
    s3: Any,
    table: str,
    prefect: PrefectClient,
    stack_env: dict[str, str],
) -> None:
    credentials = fresh_credentials(stack_env)
    prefix = f"e2e/{table}"
    records = put_json_files(s3, prefix, 0, 3)
    body = ingestion(prefix, table)
    body["source"]["credentials"] = credentials.given
    created = await api.post("/api/v1/ingestions", json=body)
    assert created.status_code == 201, created.text
    ingestion_id = created.json()["id"]

    run = await run_and_wait(api, ingestion_id)
    assert (run["status"], run["records"]) == ("success", records), run
    await prefect_done_with(prefect, ingestion_id)

    hunted = {**credentials.hunted, **service_secrets(stack_env)}
    found: list[str] = []
    found += search_files(LOGS, hunted, ingestion_id, "the stack's logs")
    found += search_files(PREFECT_HOME, hunted, None, "Prefect's home")
    found += await search_prefect(prefect, ingestion_id, hunted)
    found += await search_databases(hunted, ingestion_id)
    found += await search_kafka(hunted, ingestion_id)
    assert not found, "credentials leaked:\n" + "\n".join(found)


async def prefect_done_with(prefect: PrefectClient, ingestion_id: str) -> None:
    """Every flow run of the ingestion is final, so its logs have been sent to the server."""
    deployment = await deployment_of(prefect, ingestion_id)
    assert deployment is not None, "the ingestion has no deployment"

    async def states() -> list[str]:
        runs = await prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
        return [r.state.type.value if r.state else "NONE" for r in runs]

    await eventually(
        states,
        lambda found: bool(found) and set(found) <= FINAL_FLOW_STATES,
        60,
        "the ingestion's flow runs did not end",
    )


def search_files(
    root: Path, hunted: dict[str, str], must_find: str | None, place: str
) -> list[str]:
    """Every file under ``root``, read as bytes."""
    found, seen = [], False
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        found += [
            f"{place}: {name} in {path}" for name, v in hunted.items() if v.encode() in content
        ]
        seen = seen or (must_find is not None and must_find.encode() in content)
    if must_find is not None:
        assert seen, f"{place}: the search of {root} found not even the ingestion id"
    return found


async def search_prefect(
    prefect: PrefectClient, ingestion_id: str, hunted: dict[str, str]
) -> list[str]:
    """The ingestion's flow runs (parameters, states), their task runs and all their logs."""
    deployment = await deployment_of(prefect, ingestion_id)
    assert deployment is not None
    flow_runs = await prefect.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
    )
    assert flow_runs, "the ingestion has no flow run"
    for flow_run in flow_runs:  # ids only: nothing else can hold a secret
        assert set(flow_run.parameters) <= {"ingestion_id", "run_id"}, flow_run.parameters
    ids = [flow_run.id for flow_run in flow_runs]
    task_runs = await prefect.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
    )
    logs = await prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
    assert logs, "the flow runs left no log in Prefect"
    documents = {
        "flow runs": [r.model_dump_json() for r in flow_runs],
        "task runs": [r.model_dump_json() for r in task_runs],
        "logs": [entry.model_dump_json() for entry in logs],
    }
    assert ingestion_id in "".join(documents["flow runs"]), "flow runs without the ingestion id"
    return [
        f"Prefect's {kind}: {name}"
        for kind, texts in documents.items()
        for name, value in hunted.items()
        if any(value in t for t in texts)
    ]


async def search_databases(hunted: dict[str, str], ingestion_id: str) -> list[str]:
    """Every row of every table of every database on the stack's PostgreSQL, as text."""
    url = make_url(DatabaseSettings().url.get_secret_value())
    found: list[str] = []
    seen = False
    for database in await _databases(url.render_as_string(hide_password=False)):
        looked_for = {**hunted, "the ingestion id": ingestion_id}
        try:
            hits = await _search_database(url.set(database=database), looked_for)
        except DBAPIError as error:
            if f'database "{database}" does not exist' in str(error):
                continue  # another test's scratch database, dropped since it was listed
            raise
        seen = seen or any(key == "the ingestion id" for key, _ in hits)
        found += [f"PostgreSQL: {key} in {database}.{where}" for key, where in hits]
    assert seen, "the databases' search found not even the ingestion id"
    return [line for line in found if "the ingestion id" not in line]


async def _search_database(url: URL, looked_for: dict[str, str]) -> list[tuple[str, str]]:
    """(what, schema.table) for each value found in a table of the database."""
    hits = []
    engine = create_async_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            for schema, name in await _tables(connection):
                relation = f'"{schema}"."{name}"'
                for key, value in looked_for.items():
                    count = await connection.scalar(
                        text(f"SELECT count(*) FROM {relation} t WHERE strpos(t::text, :v) > 0"),
                        {"v": value},
                    )
                    if count:
                        hits.append((key, f"{schema}.{name}"))
    finally:
        await engine.dispose()
    return hits


async def _databases(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                text("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn")
            )
            return list(rows)
    finally:
        await engine.dispose()


async def _tables(connection: Any) -> Iterable[tuple[str, str]]:
    rows = await connection.execute(
        text(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    )
    return [(row[0], row[1]) for row in rows]


async def search_kafka(hunted: dict[str, str], ingestion_id: str) -> list[str]:
    """Every message (key, value and headers) of every `autoloader.*` topic, from the start."""
    bootstrap = KafkaSettings().bootstrap_servers
    partitions = await _autoloader_partitions(bootstrap)
    assert partitions, "no autoloader.* topic"
    found: set[str] = set()
    seen = False
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        async for topic, raw in _messages(consumer, partitions):
            seen = seen or ingestion_id.encode() in raw
            found |= {f"Kafka: {n} in {topic}" for n, v in hunted.items() if v.encode() in raw}
    finally:
        await consumer.stop()
    assert seen, "the Kafka search found not even the ingestion id"
    return sorted(found)


async def _autoloader_partitions(bootstrap: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith("autoloader.")]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0  # not another test's topic, deleted since it was listed
        for partition in topic["partitions"]
    ]


async def _messages(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> AsyncIterator[tuple[str, bytes]]:
    """Each message up to the partitions' current ends: its topic, and its key, value and
    headers in bytes."""
    ends = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    remaining = {tp for tp, end in ends.items() if end > 0}
    for tp in list(remaining):  # messages deleted by retention: nothing left to read
        if await consumer.position(tp) >= ends[tp]:
            remaining.discard(tp)
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=5000, max_records=5000)
        for tp, messages in batches.items():
            for message in messages:
                headers = b"".join(k.encode() + v for k, v in message.headers or ())
                key, value = message.key or b"", message.value or b""
                yield tp.topic, key + b"\0" + value + b"\0" + headers
        # By position, not by the last message's offset: a partition may end in records that
        # are no messages (transaction markers), which the consumer steps over.
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        assert batches or not remaining, (
            f"no message within 5 s from {sorted(map(str, remaining))[:3]}"
        )


def test_the_hunt_itself_finds_a_planted_value(tmp_path: Path) -> None:
    """The file search reports what it looks for, naming the file."""
    planted = uuid.uuid4().hex
    (tmp_path / "a.log").write_text(json.dumps({"message": f"key={planted}"}))
    found = search_files(tmp_path, {"secret": planted}, None, "here")
    assert found == [f"here: secret in {tmp_path / 'a.log'}"]
