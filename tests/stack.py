"""Where the tests find the stack.

In order: the addresses given in the environment (`make test` exports those of the native
stack); else, where a Docker engine answers, containers started with testcontainers; else the
native stack, started with `python -m devstack up`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".local" / "stack.env"
REQUIRED = ("AUTOLOADER_DATABASE_URL", "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS")


def given_in_environment() -> bool:
    return all(os.environ.get(name) for name in REQUIRED)


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def start_native_stack() -> dict[str, str]:
    result = subprocess.run([sys.executable, "-m", "devstack", "up"], cwd=ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError("`python -m devstack up` failed; its output above says why")
    return read_env_file(ENV_FILE)


@contextmanager
def testcontainers_stack() -> Iterator[dict[str, str]]:
    """PostgreSQL, Kafka and an S3 store in containers. Prefect and Spark Connect have no
    container module here, so their tests skip on this path."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer
    from testcontainers.postgres import PostgresContainer

    with ExitStack() as stack:
        postgres = stack.enter_context(PostgresContainer("postgres:15", driver="asyncpg"))
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft())
        minio = stack.enter_context(MinioContainer())
        s3 = minio.get_config()
        yield {
            "AUTOLOADER_DATABASE_URL": postgres.get_connection_url(),
            "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
            "AUTOLOADER_S3_ENDPOINT_URL": f"http://{s3['endpoint']}",
            "AUTOLOADER_S3_ACCESS_KEY_ID": s3["access_key"],
            "AUTOLOADER_S3_SECRET_ACCESS_KEY": s3["secret_key"],
        }


@contextmanager
def stack_environment() -> Iterator[dict[str, str]]:
    """Yield the stack's environment, and export it so settings objects pick it up."""
    with ExitStack() as stack:
        if given_in_environment():
            env = dict(os.environ)
        elif docker_available():
            env = stack.enter_context(testcontainers_stack())
        else:
            env = start_native_stack()
        os.environ.update(env)
        yield env
