"""The autoloader-processor process's one settings object."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings, S3Settings, SparkSettings


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_PROCESSOR_")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
