"""The processor process's one settings object."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings, S3Settings, SparkSettings


def _worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_PROCESSOR_")

    group_id: str = "processor"
    pool_size: int = Field(default=2, ge=1, description="batches processed at once")
    worker_id: str = Field(default_factory=_worker_id)
    lease_seconds: int = Field(default=900, ge=10, description="longer than any batch takes")
    max_attempts: int = Field(default=3, ge=1)
    retry_base_seconds: float = Field(default=30.0, ge=0)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    crash_point: Literal["", "before-commit", "after-commit"] = Field(
        default="",
        description="fault injection for crash tests: stop dead at this point of a batch",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
