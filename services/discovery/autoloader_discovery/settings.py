"""The autoloader-discovery process's one settings object."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings, PrefectSettings, S3Settings


class DiscoverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_DISCOVERY_")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
