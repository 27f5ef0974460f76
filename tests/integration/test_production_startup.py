"""With AUTOLOADER_ENV=production and one development value left in place, each service's real
console script exits at start-up, naming the variable to set, before it joins its consumer
group (each run gets a consumer group of its own, looked up in the stack's Kafka afterwards)."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devstack import layout
from shared.crypto import new_key
from shared.topics import FILES

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
# Imports (Prefect, pyspark) take a few seconds on a busy machine; a service that got past its
# settings would run until stopped, far beyond this.
EXIT_WITHIN_SECONDS = 30
KAFKA_PATIENCE_SECONDS = 180
GROUP_VARIABLE = {
    "autoloader-sync": "AUTOLOADER_SYNC_GROUP_ID",
    "autoloader-discovery": "AUTOLOADER_DISCOVERY_GROUP_ID",
    "autoloader-processor": "AUTOLOADER_PROCESSOR_GROUP_ID",
}
# (command, the one development value left in place or None for a variable left unset, the
# variable the message must name)
CASES: dict[str, tuple[list[str], dict[str, str | None], str]] = {
    "api serve, dev database password": (
        ["autoloader-api", "serve"],
        {"AUTOLOADER_DATABASE_URL": "dev"},
        "AUTOLOADER_DATABASE_URL",
    ),
    "api relay, no credentials key": (
        ["autoloader-api", "relay"],
        {"AUTOLOADER_CREDENTIALS_KEY": None},
        "AUTOLOADER_CREDENTIALS_KEY",
    ),
    "sync, no command signing secret": (
        ["autoloader-sync", "run"],
        {"AUTOLOADER_COMMANDS_SIGNING_SECRET": None},
        "AUTOLOADER_COMMANDS_SIGNING_SECRET",
    ),
    "sync, dev database password": (
        ["autoloader-sync", "run"],
        {"AUTOLOADER_DATABASE_URL": "dev"},
        "AUTOLOADER_DATABASE_URL",
    ),
    "discovery, dev S3 keys": (
        ["autoloader-discovery", "run"],
        {
            "AUTOLOADER_S3_ACCESS_KEY_ID": layout.S3_ACCESS_KEY,
            "AUTOLOADER_S3_SECRET_ACCESS_KEY": layout.S3_SECRET_KEY,
        },
        "AUTOLOADER_S3_ACCESS_KEY_ID",
    ),
    "discovery, dev credentials key": (
        ["autoloader-discovery", "run"],
        {"AUTOLOADER_CREDENTIALS_KEY": layout.CREDENTIALS_KEY},
        "AUTOLOADER_CREDENTIALS_KEY",
    ),
    "processor, dev S3 endpoint": (
        ["autoloader-processor", "run"],
        {"AUTOLOADER_S3_ENDPOINT_URL": "dev"},
        "AUTOLOADER_S3_ENDPOINT_URL",
    ),
    "processor, dev database password": (
        ["autoloader-processor", "run"],
        {"AUTOLOADER_DATABASE_URL": "dev"},
        "AUTOLOADER_DATABASE_URL",
    ),
}


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def production_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The running stack's addresses with every development secret replaced: a production
    set-up (that would not get into the stack's database, which the services never reach)."""
    env = {
        name: value
        for name, value in stack_env.items()
        if not name.startswith(("AUTOLOADER_S3_ACCESS", "AUTOLOADER_S3_SECRET", "AWS_"))
    }
    env.update(
        {
            "AUTOLOADER_ENV": "production",
            "AUTOLOADER_DATABASE_URL": _with_password(
                stack_env["AUTOLOADER_DATABASE_URL"], "not-the-dev-password"
            ),
            "AUTOLOADER_S3_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
            "AUTOLOADER_CREDENTIALS_KEY": new_key(),
            "AUTOLOADER_COMMANDS_SIGNING_SECRET": uuid.uuid4().hex * 2,
        }
    )
    return env


async def run_to_exit(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Its exit code and stderr; killed, and the test failed, if it outlives the budget."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), EXIT_WITHIN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{argv[0]} still ran after {EXIT_WITHIN_SECONDS}s: it started")
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def consumer_groups(bootstrap: str) -> set[str]:
    """The groups Kafka knows, waiting out a broker that is restarting (the stack is shared,
    and other tests stop Kafka)."""
    deadline = asyncio.get_running_loop().time() + KAFKA_PATIENCE_SECONDS
    while True:
        try:
            return await _list_groups(bootstrap)
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(2)


async def _list_groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group[0] for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def test_the_group_probe_sees_a_group_that_joined(stack_env: dict[str, str]) -> None:
    bootstrap = stack_env["AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS"]
    group = f"test-production-probe-{uuid.uuid4().hex[:8]}"
    # From the end and committing nothing: joining reads and changes nothing.
    consumer = AIOKafkaConsumer(
        FILES.name,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=2000)
        assert group in await consumer_groups(bootstrap)
    finally:
        await consumer.stop()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
async def test_a_service_refuses_to_start_with_a_development_value(
    stack_env: dict[str, str], case: str
) -> None:
    command, change, variable = CASES[case]
    env = production_env(stack_env)
    dev_values = {
        "AUTOLOADER_DATABASE_URL": stack_env["AUTOLOADER_DATABASE_URL"],
        "AUTOLOADER_S3_ENDPOINT_URL": stack_env["AUTOLOADER_S3_ENDPOINT_URL"],
    }
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = dev_values.get(name, value) if value == "dev" else value
    group = f"test-production-{uuid.uuid4().hex[:8]}"
    if command[0] in GROUP_VARIABLE:
        env[GROUP_VARIABLE[command[0]]] = group
    # Not the running API's port: a clash must not pass for a refusal.
    env["AUTOLOADER_API_PORT"] = str(free_port())

    returncode, stderr = await run_to_exit([str(BIN / command[0]), *command[1:]], env)

    assert returncode != 0, f"{case}: exited 0\n{stderr}"
    assert variable in stderr, f"{case}: stderr does not name {variable}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    groups = await consumer_groups(stack_env["AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS"])
    assert group not in groups, f"{case}: the service joined its consumer group before exiting"
