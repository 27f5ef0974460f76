"""The processor process's one settings object."""

from __future__ import annotations

import os
import socket

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CredentialsSettings,
    DatabaseSettings,
    KafkaSettings,
    S3Settings,
    SparkSettings,
    TenancySettings,
    metrics_port,
)


def _worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_PROCESSOR_")

    group_id: str = "processor"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = metrics_port(9403)
    pool_size: int = Field(default=2, ge=1, description="batches processed at once")
    worker_id: str = Field(default_factory=_worker_id)
    lease_seconds: int = Field(
        default=20,
        ge=6,
        description="a claim's lease, renewed every third of it while the batch runs: how long "
        "the files of a processor that died wait before another takes them",
    )
    commit_margin_seconds: float = Field(
        default=5.0, gt=0, description="lease a holder must have left to publish a commit"
    )
    batch_timeout_seconds: float = Field(
        default=900.0,
        gt=0,
        description="a batch still running after this long gives its claim up: its lease runs "
        "out and another processor takes the files",
    )
    max_attempts: int = Field(default=3, ge=1)
    retry_base_seconds: float = Field(default=30.0, ge=0)
    outage_backoff_seconds: float = Field(
        default=5.0, ge=0, description="wait before a batch released for an outage is retried"
    )
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    listing_tasks: int = Field(
        default=16,
        ge=1,
        description="Spark tasks that look up a batch's files before reading them (Spark's "
        "default is a task per file, which costs more than the lookups)",
    )
    folder_read_files_per_page: int = Field(
        default=100,
        ge=0,
        description="a folder without subfolders is listed whole, instead of its files looked "
        "up one by one, when the batch has at least this many files in it for each page of "
        "1,000 keys the folder takes to list; 0 looks every file up",
    )
    fetch_batch_bytes: int = Field(
        default=4 * 1024 * 1024,  # where fetching 50 files of 80 KB ties with Spark's read
        ge=0,
        le=16 * 1024 * 1024,  # the lines travel inside every Spark call of the batch
        description="an uncompressed JSON-lines batch whose files total at most this many bytes "
        "is fetched by the processor and handed to Spark as lines, instead of Spark opening "
        "each file; 0 leaves every read to Spark",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    # decrypts each ingestion's source credentials, with which Spark reads its files
    credentials: CredentialsSettings = Field(default_factory=CredentialsSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _margin_inside_lease(self) -> ProcessorSettings:
        if self.commit_margin_seconds >= self.lease_seconds / 3 * 2:
            raise ValueError("commit_margin_seconds must be under two thirds of lease_seconds")
        return self
